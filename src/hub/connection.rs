//! A hub member's handles: its [`ConnectionId`], the [`Connection`] that
//! sends to it and moves it between rooms, and the [`Inbox`] of what its
//! peer sends.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::outbox::Outbox;
use super::target::Target;
use super::{Hub, Position, Resumed};
use crate::error::Error;
use crate::lifecycle::Signal;
use crate::message::Message;
use crate::socket::WebSocketReceiver;

/// A hub's name among the processes that share a backplane: random, drawn
/// when the hub is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) u64);

impl NodeId {
    /// A fresh random id.
    pub(crate) fn random() -> Self {
        Self(random_u64())
    }
}

/// A random number, different at every call: SipHash keys are random per
/// process, each `RandomState` draws new ones, and the counter differs.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A connection's id, unique across every process sharing a backplane: the
/// hub's [`NodeId`] and a number. Printed as `NODE-NUMBER` (e.g.
/// `3f2a9c01d4e5b687-12`) and parsed back from that, so that an id sent to
/// a browser can come back and still name its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    node: NodeId,
    seq: u64,
}

impl ConnectionId {
    /// The hub (process) the connection is on.
    #[must_use]
    pub fn node(self) -> NodeId {
        self.node
    }

    pub(crate) fn from_parts(node: NodeId, seq: u64) -> Self {
        Self { node, seq }
    }

    pub(crate) fn seq(self) -> u64 {
        self.seq
    }

    pub(super) fn next(node: NodeId) -> Self {
        Self {
            node,
            seq: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.node, self.seq)
    }
}

/// The text is not `NODE-NUMBER` (16 hex digits, a dash, a decimal number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConnectionId;

impl fmt::Display for InvalidConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a connection id (NODE-NUMBER)")
    }
}

impl std::error::Error for InvalidConnectionId {}

impl std::str::FromStr for ConnectionId {
    type Err = InvalidConnectionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (node, seq) = s.split_once('-').ok_or(InvalidConnectionId)?;
        if node.len() != 16 || !node.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidConnectionId);
        }
        let node = u64::from_str_radix(node, 16).map_err(|_| InvalidConnectionId)?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidConnectionId);
        }
        let seq = seq.parse().map_err(|_| InvalidConnectionId)?;
        Ok(Self::from_parts(NodeId(node), seq))
    }
}

/// Numbers are unique across every hub of the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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

    /// The other members of `room`, on every process: the same as
    /// `hub.to(room).except(conn.id())`. Chain more rooms and exclusions,
    /// then [`send`](Target::send).
    pub fn to(&self, room: &str) -> Target {
        self.hub.to(room).except(self.id)
    }

    /// Every other connection of the hub, on every process: the same as
    /// `hub.except(conn.id())`.
    pub fn broadcast(&self) -> Target {
        self.hub.except(self.id)
    }

    /// Joins a room; `false` if already in or gone.
    pub fn join(&self, room: &str) -> bool {
        self.hub.join(self.id, room)
    }

    /// Joins a room and queues what its history holds after `since` ahead
    /// of any live message, so that the client resumes where it left off;
    /// see [`Hub::join_since`].
    pub async fn join_since(&self, room: &str, since: Option<Position>) -> Resumed {
        self.hub.join_since(self.id, room, since).await
    }

    /// Leaves a room; `false` if not in.
    pub fn leave(&self, room: &str) -> bool {
        self.hub.leave(self.id, room)
    }

    /// Sets what [presence](super::HubBuilder::presence) shows of this
    /// connection (a nickname, a user id; at most [`MAX_INFO`](super::MAX_INFO)
    /// bytes), for the rooms it joins from now on. `false` if it is longer
    /// or the connection is gone.
    pub fn set_info(&self, info: &str) -> bool {
        self.hub.set_info(self.id, info)
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
    shutdown: Option<Signal>,
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
        shutdown: Option<Signal>,
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
                    Some(signal) => signal.fired().await,
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
        self.hub.remove(self.id);
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
