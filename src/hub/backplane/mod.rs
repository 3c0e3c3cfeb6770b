//! The seam between a hub and the other processes: the [`Backplane`] trait,
//! the [`Channel`]s packets travel on, and the [`Inbound`] end that hands
//! what arrives to the hub.
//!
//! The hub decides everything (who a send is for, which rooms have members
//! here, how a packet is encoded); a backplane only moves bytes between
//! processes on named channels, at most once, without blocking the sender.
//! Two come with the crate: [`Memory`] (hubs of one process, for tests and
//! for splitting one process into several hubs) and, with the `redis`
//! feature, [`Redis`] (processes sharing a Redis server).
//!
//! - `packet`: the bytes of a send, a send to one connection, a disconnect.
//! - `memory`: the in-process bus.
//! - `redis`: Redis pub/sub, sharded where the server has it.

mod memory;
pub(crate) mod packet;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

use super::presence::Present;
use super::{ConnectionId, Hub, Inner, NodeId};
pub use memory::Memory;
#[cfg(feature = "redis")]
pub use redis::Redis;

/// Where a packet goes. A hub subscribes to [`All`](Channel::All) and to
/// its own [`Node`](Channel::Node) for its whole life, and to a
/// [`Room`](Channel::Room) only while the room has members on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel<'a> {
    /// Sends to every connection.
    All,
    /// Sends to a room's members.
    Room(&'a str),
    /// Sends to one connection, and disconnects, for the hub with this id.
    Node(NodeId),
}

impl Channel<'_> {
    /// The channel's name under `prefix`: `PREFIX:all`, `PREFIX:room:NAME`,
    /// `PREFIX:node:NODE`.
    #[must_use]
    pub fn name(&self, prefix: &str) -> String {
        match self {
            Self::All => format!("{prefix}:all"),
            Self::Room(room) => format!("{prefix}:room:{room}"),
            Self::Node(node) => format!("{prefix}:node:{node}"),
        }
    }
}

/// Moves a hub's packets to the other processes and back. Every method is
/// called from the hub's own code paths (a send, a join) and must return
/// at once: queue the work, do it on a task of your own.
///
/// Delivery is at most once: a packet that cannot be sent (the transport
/// is down, its queue is full) is dropped, and the implementation should
/// log it. After a reconnect it must subscribe again to every channel it
/// was subscribed to.
pub trait Backplane: Send + Sync + 'static {
    /// Called once, when the hub is built: the hub's id, and where to hand
    /// the packets that arrive. The hub subscribes to its channels after
    /// this.
    fn attach(&self, node: NodeId, inbound: Inbound);

    /// Sends `packet` to every hub subscribed to `channel` (this one
    /// included, if it is; the hub ignores its own packets).
    fn publish(&self, channel: Channel<'_>, packet: bytes::Bytes);

    /// Starts receiving what is published on `channel`.
    fn subscribe(&self, channel: Channel<'_>);

    /// Stops receiving what is published on `channel`.
    fn unsubscribe(&self, channel: Channel<'_>);

    /// Records that `id` is in the presence room `room`, with `info`, until
    /// [`absent`](Self::absent) (or, for a store shared by processes,
    /// until the process stops refreshing it). Default: not recorded.
    fn present(&self, room: &str, id: ConnectionId, info: &str) {
        let _ = (room, id, info);
    }

    /// Records that `id` left the presence room `room`.
    fn absent(&self, room: &str, id: ConnectionId) {
        let _ = (room, id);
    }

    /// Everyone recorded in `room` on every hub, or `None` when that cannot
    /// be known now (the default; or the store is unreachable).
    fn presence(&self, room: &str) -> PresenceFuture {
        let _ = room;
        Box::pin(std::future::ready(None))
    }
}

/// What [`Backplane::presence`] returns.
pub type PresenceFuture = Pin<Box<dyn Future<Output = Option<Vec<Present>>> + Send>>;

/// The end of a hub that its backplane hands arriving packets to. Holds
/// the hub weakly: once the hub is dropped, [`is_closed`](Self::is_closed)
/// says so and the backplane's tasks can end.
#[derive(Clone)]
pub struct Inbound {
    node: NodeId,
    hub: Weak<Inner>,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("node", &self.node)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Inbound {
    pub(crate) fn new(node: NodeId, hub: Weak<Inner>) -> Self {
        Self { node, hub }
    }

    /// Delivers a packet to this hub's connections. Packets this hub sent
    /// itself, and packets it cannot read (another version), are ignored
    /// (the latter with a warning).
    pub fn deliver(&self, packet: &[u8]) {
        let Some(inner) = self.hub.upgrade() else {
            return;
        };
        match packet::decode(packet) {
            Some(packet) if packet.origin == self.node => {}
            Some(packet) => packet::apply(packet, &Hub { inner }),
            None => tracing::warn!("hub backplane: ignored a packet this version cannot read"),
        }
    }

    /// The hub is gone: nothing more will be delivered.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.hub.strong_count() == 0
    }
}
