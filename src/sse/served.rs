//! What [`serve`](crate::serve) adds to an event stream: it ends cleanly
//! when the server shuts down (an event stream never ends by itself, and a
//! graceful shutdown waits for every response), and the connection is
//! dropped when the client stops reading.
//!
//! A stalled client is seen from the body's side: the stream has woken its
//! task (an event, or a keep-alive comment, is ready) but hyper has not
//! polled it for the stall timeout, because the connection cannot take
//! more bytes. Nothing more can be said to such a peer; dropping the
//! connection frees what it holds (a hub member's queue, the socket's
//! buffers) in bounded time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::Frame;
use tokio::time::Instant;

use crate::lifecycle::{Signal, Waiter};
use crate::response::{Body, BoxError};

/// `body`, ended once `shutdown` (the server's) fires, and, with a stall
/// limit, watched: the connection's abort is fired when the body
/// has been ready to send, but not polled, for that long.
pub(crate) fn served(body: Body, shutdown: &Signal, stall: Option<(Duration, &Signal)>) -> Body {
    let watch = stall.map(|(limit, abort)| {
        let watch = Arc::new(Watch {
            start: Instant::now(),
            woken_at: AtomicU64::new(0),
            task: AtomicWaker::new(),
            done: Signal::default(),
        });
        tokio::spawn(watchdog(watch.clone(), limit, abort.clone()));
        watch
    });
    let waker = watch.clone().map(Waker::from);
    Body::new(Served {
        body,
        shutdown: shutdown.waiter(),
        watch,
        waker,
    })
}

/// Between the body and the task that polls it.
struct Watch {
    start: Instant,
    /// When the body woke its task and has not been polled since, in
    /// milliseconds after `start` plus one (0: not waiting).
    woken_at: AtomicU64,
    /// The connection's task.
    task: AtomicWaker,
    /// The body is gone.
    done: Signal,
}

impl Watch {
    fn now(&self) -> u64 {
        let elapsed = self.start.elapsed().as_millis();
        u64::try_from(elapsed).unwrap_or(u64::MAX - 1) + 1
    }
}

impl Wake for Watch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let now = self.now();
        let _ = self
            .woken_at
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        self.task.wake();
    }
}

/// Fires `abort` once the body has waited `limit` for a poll; ends with
/// the body.
async fn watchdog(watch: Arc<Watch>, limit: Duration, abort: Signal) {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX / 2);
    loop {
        let woken_at = watch.woken_at.load(Ordering::Acquire);
        let waited = if woken_at == 0 {
            0
        } else {
            watch.now().saturating_sub(woken_at)
        };
        if woken_at != 0 && waited >= limit_ms {
            tracing::debug!(
                limit = ?limit,
                "dropping a connection whose event stream's client stopped reading"
            );
            abort.fire();
            return;
        }
        let next = Duration::from_millis(limit_ms - waited);
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = abort.fired() => return,
            () = watch.done.fired() => return,
        }
    }
}

struct Served {
    body: Body,
    shutdown: Waiter,
    watch: Option<Arc<Watch>>,
    /// The waker the body is polled with: it marks the watch, then wakes
    /// the connection's task.
    waker: Option<Waker>,
}

impl http_body::Body for Served {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if Pin::new(&mut self.shutdown).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match (&this.watch, &this.waker) {
            (Some(watch), Some(waker)) => {
                watch.task.register(cx.waker());
                watch.woken_at.store(0, Ordering::Release);
                let mut cx = Context::from_waker(waker);
                Pin::new(&mut this.body).poll_frame(&mut cx)
            }
            _ => Pin::new(&mut this.body).poll_frame(cx),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.done.fire();
        }
    }
}
