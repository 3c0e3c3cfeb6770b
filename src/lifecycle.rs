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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::transport::Unwrap;

/// The server's shutdown and limits, as one request sees them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lifecycle {
    /// Cancelled when the server shuts down: every WebSocket closes with 1001.
    pub(crate) shutdown: CancellationToken,
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
    pub(crate) token: CancellationToken,
    pub(crate) tracker: TaskTracker,
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
            token: self.shutdown.clone(),
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
