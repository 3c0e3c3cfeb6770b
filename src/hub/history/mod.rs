//! Room history: the last messages sent to a room, each at a [`Position`]
//! (an epoch and an offset), so that a late joiner can catch up and a
//! client that reconnects can resume exactly where it left off, or learn
//! that it cannot ([`Gap`]) and resync.
//!
//! Opt-in with [`HubBuilder::history`](super::HubBuilder::history); a send
//! is recorded with [`Target::record`](super::Target::record), read back
//! with [`Hub::history`](super::Hub::history), and
//! [`Connection::join_since`](super::Connection::join_since) joins a room
//! and queues what the connection missed, with no message lost or repeated
//! between the two.

mod local;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::message::Message;

pub(crate) use local::Local;

/// Where a recorded message stands in its room's history: the history's
/// epoch and the message's offset in it (1 for the first message, then one
/// more for each). The epoch changes when the history is lost (the process
/// restarted, or the room was quiet for longer than
/// [`max_age`](History::max_age)), so that a client can tell a gap from a
/// quiet room.
///
/// Printed as `EPOCH:OFFSET` (16 hex digits, a colon, a decimal number,
/// e.g. `3f2a9c01d4e5b687:42`) and parsed back from that: it fits in a JSON
/// string and in an SSE `id`, and comes back in `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    epoch: u64,
    offset: u64,
}

impl Position {
    /// The position `offset` of the history `epoch` (for a
    /// [`Backplane`](super::backplane::Backplane) that keeps history).
    #[must_use]
    pub fn new(epoch: u64, offset: u64) -> Self {
        Self { epoch, offset }
    }

    /// The history's epoch.
    #[must_use]
    pub fn epoch(self) -> u64 {
        self.epoch
    }

    /// The message's offset in its epoch: 1, 2, 3...
    #[must_use]
    pub fn offset(self) -> u64 {
        self.offset
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.epoch, self.offset)
    }
}

/// The text is not `EPOCH:OFFSET` (16 hex digits, a colon, a decimal
/// number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPosition;

impl fmt::Display for InvalidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a history position (EPOCH:OFFSET)")
    }
}

impl std::error::Error for InvalidPosition {}

impl std::str::FromStr for Position {
    type Err = InvalidPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, offset) = s.split_once(':').ok_or(InvalidPosition)?;
        if epoch.len() != 16 || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidPosition);
        }
        if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidPosition);
        }
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| InvalidPosition)?;
        let offset = offset.parse().map_err(|_| InvalidPosition)?;
        Ok(Self { epoch, offset })
    }
}

/// A message of a room's history, at its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Where it stands.
    pub position: Position,
    /// The message, as its room's members received it (after
    /// [`render`](History::render)).
    pub message: Message,
}

/// Why a history cannot say what came after a position: the messages it
/// hands back are then the whole of what it keeps, for the client to resync
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gap {
    /// Some messages after the position are gone: over the count, or older
    /// than the age, the history keeps.
    Trimmed,
    /// The position is not one this history gave out: another epoch (the
    /// history was lost since), or an offset past its last message.
    Unknown,
    /// The hub keeps no history for this room.
    NotKept,
    /// The history's store could not be reached (Redis is down): nothing
    /// could be read.
    Unavailable,
}

/// What a room's history holds after a position, from
/// [`Hub::history`](super::Hub::history).
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The messages after the position, oldest first; when there is a
    /// [`gap`](Self::gap), every message the history keeps.
    pub messages: Vec<Recorded>,
    /// `None` when `messages` is exactly what came after the position
    /// (nothing missed, nothing repeated).
    pub gap: Option<Gap>,
}

/// What [`Connection::join_since`](super::Connection::join_since) queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// How many messages of the history were queued, ahead of any live
    /// message.
    pub replayed: usize,
    /// `None` when they were exactly what the connection missed; otherwise
    /// why not (they are then every message the history keeps).
    pub gap: Option<Gap>,
    /// Whether the connection joined (`false`: it was already in the room,
    /// or gone; nothing was queued).
    pub joined: bool,
}

/// What a history of `epoch`, whose last offset is `last` and which
/// still holds `kept` (oldest first, consecutive offsets), has after
/// `since`.
pub(crate) fn replay(
    epoch: u64,
    last: u64,
    mut kept: Vec<Recorded>,
    since: Option<Position>,
) -> Replay {
    let Some(since) = since else {
        return Replay {
            messages: kept,
            gap: None,
        };
    };
    if since.epoch() != epoch || since.offset() > last {
        return Replay {
            messages: kept,
            gap: Some(Gap::Unknown),
        };
    }
    // The first offset still held (the next one when none is).
    let oldest = kept.first().map_or(last + 1, |r| r.position.offset());
    if since.offset() + 1 < oldest {
        return Replay {
            messages: kept,
            gap: Some(Gap::Trimmed),
        };
    }
    // Offsets are consecutive: what follows `since` starts at a known
    // index.
    let skip = usize::try_from(since.offset() + 1 - oldest).unwrap_or(usize::MAX);
    kept.drain(..skip.min(kept.len()));
    Replay {
        messages: kept,
        gap: None,
    }
}

/// Makes the message the members receive from the one recorded and its
/// position; see [`History::render`].
pub(crate) type Render = Arc<dyn Fn(Position, Message) -> Message + Send + Sync>;

/// Which rooms keep history, and how much; given to
/// [`HubBuilder::history`](super::HubBuilder::history).
///
/// ```
/// use std::time::Duration;
/// use hyperws::hub::{History, Hub};
///
/// let hub = Hub::builder()
///     .history(
///         History::new()
///             .rooms(|room| room.starts_with("chat:"))
///             .max_messages(500)
///             .max_age(Duration::from_secs(3600)),
///     )
///     .build();
/// # drop(hub);
/// ```
#[derive(Clone)]
#[must_use]
pub struct History {
    pub(crate) covers: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    pub(crate) max_messages: usize,
    pub(crate) max_age: Duration,
    pub(crate) render: Option<Render>,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("max_messages", &self.max_messages)
            .field("max_age", &self.max_age)
            .field("render", &self.render.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// Every room, the last 100 messages of each, none older than 10
    /// minutes, sent as recorded.
    pub fn new() -> Self {
        Self {
            covers: Arc::new(|_| true),
            max_messages: 100,
            max_age: Duration::from_secs(600),
            render: None,
        }
    }

    /// Keeps history only for the rooms `covers` says yes to.
    pub fn rooms(mut self, covers: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.covers = Arc::new(covers);
        self
    }

    /// How many messages a room keeps (at least 1); older ones are
    /// trimmed as new ones come.
    pub fn max_messages(mut self, messages: usize) -> Self {
        self.max_messages = messages.max(1);
        self
    }

    /// How long a message is kept (at least 1 ms). A room quiet for longer
    /// is forgotten, epoch included: a client coming back after that gets
    /// [`Gap::Unknown`].
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age.max(Duration::from_millis(1));
        self
    }

    /// Builds what the members receive (live and replayed) from the message
    /// recorded and its position, so that clients know where they are:
    /// typically the position goes into the message's JSON.
    ///
    /// ```
    /// use hyperws::hub::History;
    /// use hyperws::Message;
    ///
    /// // `{"text":"hi"}` goes out as `{"position":"…:7","text":"hi"}`.
    /// let history = History::new().render(|position, msg| {
    ///     let body = msg.as_text().unwrap_or("{}").trim_start();
    ///     let rest = body.strip_prefix('{').unwrap_or("}");
    ///     let comma = if rest.trim_start().starts_with('}') { "" } else { "," };
    ///     Message::text(format!("{{\"position\":\"{position}\"{comma}{rest}"))
    /// });
    /// # drop(history);
    /// ```
    pub fn render(
        mut self,
        render: impl Fn(Position, Message) -> Message + Send + Sync + 'static,
    ) -> Self {
        self.render = Some(Arc::new(render));
        self
    }

    pub(crate) fn covers(&self, room: &str) -> bool {
        (self.covers)(room)
    }

    pub(crate) fn rendered(&self, position: Position, msg: Message) -> Message {
        match &self.render {
            Some(render) => render(position, msg),
            None => msg,
        }
    }
}

#[cfg(test)]
mod tests;
