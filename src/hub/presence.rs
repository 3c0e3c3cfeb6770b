//! Presence: who is in a room on every process, with each connection's
//! info (a nickname, a user id), and the join and leave events that the
//! processes with members in the room are told of.
//!
//! Opt-in per room ([`HubBuilder::presence`](super::HubBuilder::presence)):
//! for the rooms it covers, a join or a leave is recorded on the backplane
//! and announced on the room's channel. The list itself is the
//! backplane's: [`backplane::Redis`](super::backplane::Redis) keeps it in
//! Redis and drops the members of a process that stopped refreshing them
//! (crashed) within its TTL; [`backplane::Memory`](super::backplane::Memory)
//! keeps it in memory. Without a backplane, or while the backplane cannot
//! answer, the list is this process's members, and says so.

use std::fmt;
use std::sync::Arc;

use super::ConnectionId;

/// The longest info a connection may carry into presence, in bytes.
pub const MAX_INFO: usize = 1024;

/// Which rooms have presence; see [`HubBuilder::presence`](super::HubBuilder::presence).
pub(crate) type Covers = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Told of every join and leave in the presence rooms with members here.
pub(crate) type OnPresence = Arc<dyn Fn(&super::Hub, &PresenceEvent) + Send + Sync>;

/// One member of a room, as presence lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// The connection, on whichever process it is.
    pub id: ConnectionId,
    /// What it set with [`Connection::set_info`](super::Connection::set_info)
    /// before joining ("" when nothing).
    pub info: String,
}

/// Who is in a room, from [`Hub::presence`](super::Hub::presence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceList {
    /// The members, in no particular order.
    pub members: Vec<Present>,
    /// `false` when the list holds only this process's members: there is
    /// no backplane, or it could not answer (Redis is down).
    pub complete: bool,
}

/// A join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    /// The connection joined the room.
    Joined,
    /// The connection left the room (or ended).
    Left,
}

/// A join or a leave in a presence room, on any process; see
/// [`HubBuilder::on_presence`](super::HubBuilder::on_presence).
#[derive(Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    /// Joined or left.
    pub change: PresenceChange,
    /// The room.
    pub room: String,
    /// Who.
    pub member: Present,
}

impl fmt::Debug for PresenceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceEvent")
            .field("change", &self.change)
            .field("room", &self.room)
            .field("id", &self.member.id)
            .field("info", &self.member.info)
            .finish()
    }
}
