//! `serve`'s shutdown and limit state, as each request carries it: the
//! graceful-shutdown signal every WebSocket watches, the tracker the server
//! waits on, the cap on open WebSockets, and (on HTTP/2) the count of a
//! connection's open streams that decides when it is idle.
//! [`serve`](crate::serve) puts one in every request; the upgrade picks it
//! up. Without `serve` there is none, and none of this applies.
//!
//! Vocabulary: a *connection* is what `serve` accepts (TCP or TLS); a
//! *WebSocket* is one upgraded stream on it; a *session* is the task that
//! runs a WebSocket's `on_upgrade` callback.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::transport::Unwrap;

/// The server's shutdown and limits, as one request sees them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lifecycle {
    /// Fired when the server shuts down: every WebSocket closes with 1001.
    pub(crate) shutdown: Signal,
    /// Every session task, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// At most this many WebSockets at once.
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// The open streams of the HTTP/2 connection this request came on.
    pub(crate) streams: Option<Arc<Streams>>,
    /// How an upgraded connection of the server's own I/O type gives its
    /// `TcpStream` back (see `transport::Unwrap`).
    pub(crate) unwrap_io: Option<Unwrap>,
    /// The connection's peer (also in the request as `ConnectInfo`).
    pub(crate) peer: Option<std::net::SocketAddr>,
}

/// What a WebSocket needs of the server's graceful shutdown: the signal,
/// and the tracker that the server waits on (a hub writer joins it).
#[derive(Clone, Debug)]
pub(crate) struct Shutdown {
    pub(crate) signal: Signal,
    pub(crate) tracker: TaskTracker,
}

/// Fired once, seen by every waiter: the server's shutdown, or one
/// connection's abort. What `CancellationToken` gave here, for less: a
/// clone or a drop is a reference count (a token's takes a lock), and
/// asking whether it fired is one atomic load (a token's takes a lock).
/// Every request clones the server's, and every WebSocket asks on each
/// read.
#[derive(Clone, Debug, Default)]
pub(crate) struct Signal(Arc<SignalState>);

#[derive(Debug, Default)]
struct SignalState {
    fired: AtomicBool,
    notify: Notify,
}

impl Signal {
    /// Fires it: every waiter wakes, and it stays fired.
    pub(crate) fn fire(&self) {
        if !self.0.fired.swap(true, Ordering::SeqCst) {
            self.0.notify.notify_waiters();
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Completes once it has fired (at once if it already has).
    pub(crate) async fn fired(&self) {
        // Made before the flag is read: a fire in between still wakes it.
        let notified = self.0.notify.notified();
        if self.is_fired() {
            return;
        }
        notified.await;
    }

    /// [`fired`](Self::fired) as a future of its own, for a struct to hold.
    pub(crate) fn waiter(&self) -> Waiter {
        let signal = self.clone();
        Waiter {
            signal: self.clone(),
            fired: Box::pin(async move { signal.fired().await }),
        }
    }
}

/// Completes once its [`Signal`] has fired. Cheap to poll when it has
/// not: polling only renews the waker (one uncontended lock), and
/// [`is_fired`](Self::is_fired) asks without registering at all.
pub(crate) struct Waiter {
    signal: Signal,
    fired: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Waiter").field(&self.is_fired()).finish()
    }
}

impl Waiter {
    pub(crate) fn is_fired(&self) -> bool {
        self.signal.is_fired()
    }
}

impl Future for Waiter {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_fired() {
            return Poll::Ready(());
        }
        self.fired.as_mut().poll(cx)
    }
}

/// A WebSocket's place under the limit (and its stream on an HTTP/2
/// connection), held for its whole life.
#[derive(Debug)]
pub(crate) struct Admission(
    #[allow(dead_code)] Option<OwnedSemaphorePermit>,
    #[allow(dead_code)] Option<StreamGuard>,
);

impl Lifecycle {
    pub(crate) fn shutdown(&self) -> Shutdown {
        Shutdown {
            signal: self.shutdown.clone(),
            tracker: self.tracker.clone(),
        }
    }

    /// A place for one more WebSocket, or `None` when the server is full.
    pub(crate) fn admit(&self) -> Option<Admission> {
        let stream = self.streams.as_ref().map(Streams::open);
        match &self.limit {
            None => Some(Admission(None, stream)),
            Some(limit) => limit
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|p| Admission(Some(p), stream)),
        }
    }
}

/// How many streams (requests still answering, WebSockets) an HTTP/2
/// connection has open; a connection with none for a while is idle.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    open: AtomicUsize,
    changed: Notify,
}

/// One open stream; dropping it closes it.
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<Streams>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

impl Streams {
    pub(crate) fn open(self: &Arc<Self>) -> StreamGuard {
        if self.open.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_waiters();
        }
        StreamGuard(self.clone())
    }

    /// Completes once no stream has been open for `timeout` in a row.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    pub(crate) async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the count is read: no change is missed.
            changed.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => {
                        if self.open.load(Ordering::Acquire) == 0 {
                            return;
                        }
                    }
                    () = &mut changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(fut).poll(&mut cx)
    }

    #[tokio::test]
    async fn every_waiter_sees_one_fire_whenever_it_was_made_or_polled() {
        let signal = Signal::default();
        let mut polled = signal.waiter();
        assert!(poll_once(&mut polled).is_pending());
        // Made before the fire and first polled after it.
        let mut unpolled = signal.waiter();
        let clone = signal.clone();
        let borrowed = tokio::spawn(async move { clone.fired().await });
        tokio::task::yield_now().await;
        assert!(!signal.is_fired() && !unpolled.is_fired());

        signal.fire();
        signal.fire();
        assert!(signal.is_fired() && unpolled.is_fired());
        assert!(poll_once(&mut polled).is_ready());
        assert!(poll_once(&mut unpolled).is_ready());
        tokio::time::timeout(Duration::from_secs(5), borrowed)
            .await
            .expect("the spawned waiter was woken")
            .unwrap();
        // Made after the fire: done at once.
        assert!(poll_once(&mut signal.waiter()).is_ready());
        let mut late = std::pin::pin!(signal.fired());
        assert!(poll_fn(|cx| Poll::Ready(late.as_mut().poll(cx)))
            .await
            .is_ready());
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_the_fire() {
        let signal = Signal::default();
        let waiter = signal.waiter();
        let woken = tokio::spawn(waiter);
        tokio::task::yield_now().await;
        assert!(!woken.is_finished());
        signal.fire();
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("woken")
            .unwrap();
    }
}
