//! Who a send reaches: [`Target`], built by chaining rooms (a union),
//! excluded connections, excluded rooms and `local`, then sent once; and
//! the [`Selector`] it boils down to, which the registry delivers to and
//! the backplane carries to the other processes.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::message::Message;

use super::{ConnectionId, Hub, Position};

/// Which members a message is for: those of any of `rooms` (every member
/// when there is none), but not the `except` ones, nor the members of any
/// of `except_rooms`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    pub(crate) rooms: Vec<Arc<str>>,
    pub(crate) except: Vec<ConnectionId>,
    pub(crate) except_rooms: Vec<Arc<str>>,
}

impl Selector {
    /// Whether the member `id`, in the rooms `in_room` says yes to, is
    /// left out.
    pub(crate) fn excludes(&self, id: ConnectionId, in_room: impl Fn(&str) -> bool) -> bool {
        self.except.contains(&id) || self.except_rooms.iter().any(|room| in_room(room))
    }
}

/// A send to some of a hub's connections, on every process that shares its
/// backplane. Built from [`Hub::to`], [`Hub::all`], [`Hub::except`],
/// [`Connection::to`](super::Connection::to) or
/// [`Connection::broadcast`](super::Connection::broadcast), refined by
/// chaining, then sent with [`send`](Self::send) or
/// [`send_json`](Self::send_json):
///
/// ```
/// use hyperws::hub::{ConnectionId, Hub};
/// use hyperws::Message;
///
/// fn announce(hub: &Hub, sender: ConnectionId) {
///     // Everyone in "red" or "blue" (once, even if in both), but the
///     // sender and whoever is in "muted".
///     hub.to("red")
///         .to("blue")
///         .except(sender)
///         .except_room("muted")
///         .send(Message::text("hello"));
/// }
/// ```
///
/// A `Target` is a value: clone it to send several messages to the same
/// connections.
#[derive(Clone)]
#[must_use = "a target sends nothing until `send` is called"]
pub struct Target {
    hub: Hub,
    selector: Selector,
    local: bool,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("rooms", &self.selector.rooms)
            .field("except", &self.selector.except)
            .field("except_rooms", &self.selector.except_rooms)
            .field("local", &self.local)
            .finish()
    }
}

impl Target {
    pub(super) fn new(hub: Hub) -> Self {
        Self {
            hub,
            selector: Selector::default(),
            local: false,
        }
    }

    /// Adds a room: the target is the members of any of its rooms (each
    /// once). A target without rooms is every connection.
    pub fn to(mut self, room: &str) -> Self {
        if !self.selector.rooms.iter().any(|r| &**r == room) {
            self.selector.rooms.push(Arc::from(room));
        }
        self
    }

    /// Leaves one connection out, on whichever process it is.
    pub fn except(mut self, id: ConnectionId) -> Self {
        if !self.selector.except.contains(&id) {
            self.selector.except.push(id);
        }
        self
    }

    /// Leaves out every member of `room`.
    pub fn except_room(mut self, room: &str) -> Self {
        if !self.selector.except_rooms.iter().any(|r| &**r == room) {
            self.selector.except_rooms.push(Arc::from(room));
        }
        self
    }

    /// Only this process's connections: nothing goes to the backplane.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Sends `msg` (one `Bytes` shared by every receiver); returns how many
    /// of this process's connections queued it. The other processes get it
    /// at most once each, through the backplane, unless the target is
    /// [`local`](Self::local).
    pub fn send(self, msg: impl Into<Message>) -> usize {
        self.hub.deliver(msg.into(), &self.selector, self.local)
    }

    /// Sends `msg` to the target's one room and records it in the room's
    /// [history](super::HubBuilder::history), at the position this returns.
    /// Members receive the room's recorded messages in the order of their
    /// positions, as [`render`](super::History::render) makes them. The
    /// target's exclusions apply to this send, not to later replays.
    ///
    /// # Errors
    ///
    /// [`is_history`](Error::is_history) when the target does not name
    /// exactly one room, or the hub keeps no history for it; nothing is
    /// sent then.
    ///
    /// ```
    /// use hyperws::hub::{History, Hub};
    ///
    /// # async fn run() -> Result<(), hyperws::Error> {
    /// let hub = Hub::builder().history(History::new()).build();
    /// let first = hub.to("lobby").record("hello").await?;
    /// let second = hub.to("lobby").record("again").await?;
    /// assert_eq!(second.offset(), first.offset() + 1);
    /// let replay = hub.history("lobby", Some(first)).await;
    /// assert_eq!(replay.messages.len(), 1);
    /// assert!(replay.gap.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn record(self, msg: impl Into<Message>) -> Result<Position, Error> {
        self.hub
            .record(msg.into(), &self.selector, self.local)
            .await
    }

    /// Serializes `value` once, as a text message, and sends it.
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialized (nothing is sent).
    #[cfg(feature = "json")]
    pub fn send_json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<usize, Error> {
        Ok(self.send(crate::json::to_message(value)?))
    }
}
