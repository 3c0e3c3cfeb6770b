//! A hub member's handles: its [`ConnectionId`], the [`Connection`] that
//! sends to it and moves it between rooms, and the [`Inbox`] of what its
//! peer sends.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use super::Hub;
use crate::error::Error;
use crate::message::Message;
use crate::socket::WebSocketReceiver;

/// A connection's id: unique within the process, printable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The id as a number.
    #[must_use]
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Ids are unique across every hub of the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ConnectionId {
    pub(super) fn next() -> Self {
        Self(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// One connection of a [`Hub`]: its id, its rooms, its queue. Cheap to
/// clone; keeps working (as a no-op) after the connection is gone.
#[derive(Clone)]
pub struct Connection {
    id: ConnectionId,
    hub: Hub,
    outbox: Arc<Outbox>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("queued", &self.outbox.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Connection {
    pub(super) fn new(id: ConnectionId, hub: Hub, outbox: Arc<Outbox>) -> Self {
        Self { id, hub, outbox }
    }

    /// The connection's id.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Queues a message for this connection; `false` if it is gone or its
    /// queue refused it.
    pub fn send(&self, msg: impl Into<Message>) -> bool {
        self.outbox.push(msg.into()).is_ok()
    }

    /// Joins a room; `false` if already in or gone.
    pub fn join(&self, room: &str) -> bool {
        self.hub.join(self.id, room)
    }

    /// Leaves a room; `false` if not in.
    pub fn leave(&self, room: &str) -> bool {
        self.hub.leave(self.id, room)
    }

    /// The rooms this connection is in.
    #[must_use]
    pub fn rooms(&self) -> Vec<String> {
        self.hub.rooms_of(self.id)
    }

    /// How many messages the `DropOldest` policy dropped for this
    /// connection.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.outbox.dropped()
    }
}

/// What the peer of a hub connection sends, from [`Hub::connect`]. Dropping
/// it ends the connection's time in the hub:
/// the connection leaves the hub and its rooms, and its writer sends what
/// is still queued, then closes.
pub struct Inbox {
    rx: WebSocketReceiver,
    outbox: Arc<Outbox>,
    hub: Hub,
    id: ConnectionId,
    failed: bool,
    /// The server's shutdown signal, until it has been passed on.
    shutdown: Option<CancellationToken>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    pub(super) fn new(
        rx: WebSocketReceiver,
        outbox: Arc<Outbox>,
        hub: Hub,
        id: ConnectionId,
        shutdown: Option<CancellationToken>,
    ) -> Self {
        Self {
            rx,
            outbox,
            hub,
            id,
            failed: false,
            shutdown,
        }
    }

    /// Receives the next message; `None` once the connection is closed.
    /// When this connection's queue overflowed under
    /// [`SlowConsumer::Close`](super::SlowConsumer::Close), returns an error for which
    /// [`Error::is_slow_consumer`] is true, then `None`.
    ///
    /// Keep calling it: keepalive pings and the server's shutdown close
    /// happen while it waits.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        if self.failed {
            return None;
        }
        loop {
            let shutdown = async {
                match &self.shutdown {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                code = self.outbox.overflowed() => {
                    self.failed = true;
                    return Some(Err(Error::slow_consumer(code)));
                }
                // The writer says goodbye (1001) after what is queued; the
                // peer's reply then ends this stream.
                () = shutdown => {
                    self.shutdown = None;
                    self.outbox.shut_down();
                }
                item = self.rx.recv() => return item,
            }
        }
    }

    /// Receives the next data message as JSON; see
    /// [`WebSocket::recv_json`](crate::WebSocket::recv_json).
    #[cfg(feature = "json")]
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        crate::json::recv(self).await
    }

    /// The connection's id.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.id
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.hub.inner.registry.remove(self.id);
        self.outbox.finish();
    }
}

#[cfg(feature = "json")]
impl crate::json::Recv for Inbox {
    fn recv_message(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<Message, Error>>> + Send {
        self.recv()
    }
}
