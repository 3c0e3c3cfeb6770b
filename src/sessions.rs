//! The server's view of its open WebSocket sessions: a shutdown signal they
//! watch, a tracker to wait for them, and an optional cap on how many may be
//! open. [`serve`](crate::serve) puts one in every request; the upgrade
//! picks it up.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug, Default)]
pub(crate) struct Sessions {
    /// Cancelled when the server shuts down: every session closes with 1001.
    pub(crate) shutdown: CancellationToken,
    /// Every session task, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// At most this many sessions at once.
    pub(crate) limit: Option<Arc<Semaphore>>,
}

/// A session's place under the limit, held for its whole life.
#[derive(Debug)]
pub(crate) struct Admission(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Sessions {
    /// A place for one more session, or `None` when the server is full.
    pub(crate) fn admit(&self) -> Option<Admission> {
        match &self.limit {
            None => Some(Admission(None)),
            Some(limit) => limit
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|p| Admission(Some(p))),
        }
    }
}
