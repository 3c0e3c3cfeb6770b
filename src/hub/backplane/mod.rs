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
//! - `packet`: the bytes of a send, a recorded send, a send to one
//!   connection, a disconnect, a presence event.
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

use super::history::{Position, Recorded};
use super::presence::Present;
use super::{ConnectionId, Hub, Inner, NodeId};
use crate::message::Message;
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
    /// `PREFIX:node:NODE`. In a room's name, `{`, `}` and `%` are written
    /// `%7B`, `%7D` and `%25`: a Redis Cluster hashes only what is between
    /// braces, and a key wrapping the channel's name in braces (as the
    /// Redis backplane's history keys do) must land on the channel's slot.
    #[must_use]
    pub fn name(&self, prefix: &str) -> String {
        match self {
            Self::All => format!("{prefix}:all"),
            Self::Room(room) => format!("{prefix}:room:{}", escape_braces(room)),
            Self::Node(node) => format!("{prefix}:node:{node}"),
        }
    }
}

/// `text` with `{`, `}` and `%` percent-encoded, so that it holds no
/// Redis Cluster hash tag and two texts stay two names.
pub(crate) fn escape_braces(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['{', '}', '%']) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '{' => escaped.push_str("%7B"),
            '}' => escaped.push_str("%7D"),
            '%' => escaped.push_str("%25"),
            c => escaped.push(c),
        }
    }
    escaped.into()
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
    ///
    /// The hub publishes the join event right after this call: the record
    /// should be readable before what is published after it reaches
    /// another hub, so that a process reading presence on the event finds
    /// the member (the same holds for `absent` and the leave event).
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

    /// Whether this backplane keeps room history for every hub on it
    /// ([`record`](Self::record), [`stored`](Self::stored)). Default:
    /// `false`, and each hub keeps its own, in memory.
    fn keeps_history(&self) -> bool {
        false
    }

    /// Appends a message to a room's history, at the next position, and
    /// publishes the send on the room's channel with that position, as one
    /// step (so that every hub receives a room's recorded messages in the
    /// order of their positions). Resolves to the position, or `None` when
    /// the store is unreachable (nothing is then recorded or sent).
    fn record(&self, record: Record) -> RecordFuture {
        let _ = record;
        Box::pin(std::future::ready(None))
    }

    /// What `room`'s history holds (`Some(None)`: nothing, never recorded
    /// or forgotten), or `None` when the store is unreachable.
    fn stored(&self, room: &str, max_age: std::time::Duration) -> StoredFuture {
        let _ = (room, max_age);
        Box::pin(std::future::ready(None))
    }
}

/// What [`Backplane::presence`] returns.
pub type PresenceFuture = Pin<Box<dyn Future<Output = Option<Vec<Present>>> + Send>>;

/// What [`Backplane::record`] returns.
pub type RecordFuture = Pin<Box<dyn Future<Output = Option<Position>> + Send>>;

/// What [`Backplane::stored`] returns.
pub type StoredFuture = Pin<Box<dyn Future<Output = Option<Option<Stored>>> + Send>>;

/// A message to record, for [`Backplane::record`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Record {
    /// The room.
    pub room: String,
    /// The message, as sent (before rendering).
    pub message: Message,
    /// Keep at most this many messages in the room.
    pub max_messages: usize,
    /// Forget the room's history (epoch included) after this long without
    /// a record; drop messages older than this.
    pub max_age: std::time::Duration,
    /// The epoch to start the history with, if it has none.
    pub new_epoch: u64,
    /// What to publish on the room's channel: `head`, then one byte with
    /// the length of the position's text (`EPOCH:OFFSET`), the text, then
    /// `tail`.
    pub head: bytes::Bytes,
    /// See [`head`](Self::head).
    pub tail: bytes::Bytes,
}

/// A room's history as a backplane keeps it, for [`Backplane::stored`].
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The history's epoch.
    pub epoch: u64,
    /// The last offset given out.
    pub last: u64,
    /// The messages still kept and younger than the age asked for, oldest
    /// first, with consecutive offsets, as recorded (before rendering).
    pub messages: Vec<Recorded>,
}

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
            // A recorded send comes back to its sender too: every hub
            // delivers it from the room's channel, in the order of the
            // positions.
            Some(packet) if packet.origin == self.node && !packet.is_recorded() => {}
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

#[cfg(test)]
mod tests {
    use super::Channel;

    #[test]
    fn room_names_hold_no_hash_tag_and_stay_distinct() {
        assert_eq!(Channel::Room("lobby").name("p"), "p:room:lobby");
        assert_eq!(Channel::Room("{a}").name("p"), "p:room:%7Ba%7D");
        assert_eq!(Channel::Room("%7Ba%7D").name("p"), "p:room:%257Ba%257D");
        assert_eq!(Channel::All.name("p"), "p:all");
    }
}
