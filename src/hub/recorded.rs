//! Recorded sends, history reads and joins with a replay: the hub's side
//! of [history](super::history).

use super::history::{Gap, Position, Replay, Resumed};
use super::presence::PresenceChange;
use super::target::Selector;
use super::{ConnectionId, Hub};
use crate::error::Error;
use crate::message::Message;

impl Hub {
    /// Records `msg` in the history of the selector's one room and
    /// delivers it as `deliver` would, in the order of the positions.
    pub(super) fn record(
        &self,
        msg: Message,
        selector: &Selector,
        local: bool,
    ) -> Result<Position, Error> {
        let [room] = selector.rooms.as_slice() else {
            return Err(Error::history("a recorded send names exactly one room"));
        };
        let store = self
            .history_of(room)
            .ok_or_else(|| Error::history("the hub keeps no history for this room"))?;
        Ok(store.record(room, msg, |msg, position| {
            self.deliver_at(msg, Some(position), selector, local);
        }))
    }

    /// What `room`'s history holds after `since` (everything it holds when
    /// `since` is `None`), or why it cannot say ([`Replay::gap`]).
    ///
    /// The history is this process's: a position given out by another
    /// process is [`Gap::Unknown`] here.
    pub async fn history(&self, room: &str, since: Option<Position>) -> Replay {
        match self.history_of(room) {
            Some(store) => store.replay(room, since),
            None => Replay {
                messages: Vec::new(),
                gap: Some(Gap::NotKept),
            },
        }
    }

    /// Puts a connection in a room and queues, ahead of any live message,
    /// what the room's history holds after `since`: each message recorded
    /// in the room reaches the connection once, either replayed or live.
    /// Without a history for the room, this is [`join`](Self::join)
    /// ([`Gap::NotKept`]).
    ///
    /// The replay takes at most half the connection's queue, leaving the
    /// rest for the live messages that follow (keep
    /// [`History::max_messages`](super::History::max_messages) at most half
    /// the [`queue_capacity`](super::HubBuilder::queue_capacity), as the
    /// defaults are: 100 and 256); when it does not fit, its oldest
    /// messages are left out and the gap is [`Gap::Trimmed`].
    pub async fn join_since(
        &self,
        id: ConnectionId,
        room: &str,
        since: Option<Position>,
    ) -> Resumed {
        let not_joined = Resumed {
            replayed: 0,
            gap: None,
            joined: false,
        };
        let Some(store) = self.history_of(room) else {
            let joined = self.join(id, room);
            return Resumed {
                gap: Some(Gap::NotKept),
                joined,
                ..not_joined
            };
        };
        let Some(outbox) = self.inner.registry.outbox(id) else {
            return not_joined;
        };
        let resumed = store.join_since(room, since, |replay| {
            if !self.inner.registry.join(id, room) {
                return not_joined;
            }
            let total = replay.messages.len();
            match outbox.push_replay(replay.messages) {
                Ok(0) => Resumed {
                    replayed: total,
                    gap: replay.gap,
                    joined: true,
                },
                Ok(left_out) => Resumed {
                    replayed: total - left_out,
                    gap: Some(replay.gap.unwrap_or(Gap::Trimmed)),
                    joined: true,
                },
                // Gone meanwhile: it is taken out of the room as it goes.
                Err(_) => Resumed {
                    joined: true,
                    ..not_joined
                },
            }
        });
        if resumed.joined {
            // Outside the room's history: the callback may send to it.
            self.announce(PresenceChange::Joined, room, id, None);
        }
        resumed
    }

    fn history_of(&self, room: &str) -> Option<&super::history::Local> {
        self.inner
            .history
            .as_ref()
            .filter(|store| store.settings().covers(room))
    }
}
