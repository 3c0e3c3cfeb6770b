//! Recorded sends, history reads and joins with a replay: the hub's side
//! of [history](super::history). The history is the hub's own (in memory)
//! unless its backplane keeps one for every hub on it (Redis Streams).

use std::sync::Arc;

use super::backplane::{packet, Backplane, Record, Stored};
use super::history::{self, Gap, Position, Recorded, Replay, Resumed};
use super::outbox::Queued;
use super::presence::PresenceChange;
use super::target::Selector;
use super::{ConnectionId, Hub};
use crate::error::Error;
use crate::message::Message;

impl Hub {
    /// Records `msg` in the history of the selector's one room and
    /// delivers it as `deliver` would, in the order of the positions.
    pub(super) async fn record(
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
        let Some(backplane) = self.shared_history() else {
            return Ok(store.record(room, msg, |msg, position| {
                self.deliver_at(msg, Some(position), selector, local);
            }));
        };
        if local {
            return Err(Error::history(
                "a recorded send cannot be local: its history is shared",
            ));
        }
        let (head, tail) = packet::encode_recorded_halves(self.inner.node, selector, &msg)
            .ok_or_else(|| Error::history("only text and binary messages are recorded"))?;
        let settings = store.settings();
        let record = Record {
            room: room.to_string(),
            message: msg,
            max_messages: settings.max_messages,
            max_age: settings.max_age,
            new_epoch: super::connection::random_u64(),
            head,
            tail,
        };
        // Every hub (this one too) delivers it from the room's channel.
        backplane
            .record(record)
            .await
            .ok_or_else(|| Error::history("the history store is unreachable"))
    }

    /// A recorded send that came on a room's channel: rendered here, then
    /// delivered with its position.
    pub(super) fn deliver_recorded_here(
        &self,
        msg: Message,
        position: Position,
        selector: &Selector,
    ) {
        let message = match &self.inner.history {
            Some(store) => store.settings().rendered(position, msg),
            None => msg,
        };
        let queued = Queued {
            message,
            position: Some(position),
        };
        self.inner.registry.deliver(queued, selector);
    }

    /// What `room`'s history holds after `since` (everything it holds when
    /// `since` is `None`), or why it cannot say ([`Replay::gap`]). A
    /// position given out by another process is [`Gap::Unknown`] here
    /// unless the backplane shares the history (Redis).
    pub async fn history(&self, room: &str, since: Option<Position>) -> Replay {
        let Some(store) = self.history_of(room) else {
            return Replay {
                messages: Vec::new(),
                gap: Some(Gap::NotKept),
            };
        };
        let Some(backplane) = self.shared_history() else {
            return store.replay(room, since);
        };
        match backplane.stored(room, store.settings().max_age).await {
            Some(stored) => self.replay_of(stored, since).0,
            None => Replay {
                messages: Vec::new(),
                gap: Some(Gap::Unavailable),
            },
        }
    }

    /// A stored history's replay after `since`, rendered, and the last
    /// position it covers.
    fn replay_of(
        &self,
        stored: Option<Stored>,
        since: Option<Position>,
    ) -> (Replay, Option<Position>) {
        let Some(stored) = stored else {
            let gap = since.map(|_| Gap::Unknown);
            let replay = Replay {
                messages: Vec::new(),
                gap,
            };
            return (replay, None);
        };
        let covered = Position::new(stored.epoch, stored.last);
        let mut replay = history::replay(stored.epoch, stored.last, stored.messages, since);
        if let Some(store) = &self.inner.history {
            let settings = store.settings();
            for recorded in &mut replay.messages {
                let message = std::mem::replace(&mut recorded.message, Message::text(""));
                recorded.message = settings.rendered(recorded.position, message);
            }
        }
        (replay, Some(covered))
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
        let resumed = match self.shared_history() {
            None => store.join_since(room, since, |replay| {
                if !self.inner.registry.join(id, room) {
                    return not_joined;
                }
                let gap = replay.gap;
                resumed(replay.messages, gap, |messages| {
                    outbox.push_replay(messages)
                })
            }),
            Some(backplane) => {
                // Joined first, so that the room's channel is followed
                // before the history is read; what arrives meanwhile is
                // held, and what the replay covers is left out of it.
                outbox.hold();
                if !self.inner.registry.join(id, room) {
                    let _ = outbox.release(Vec::new(), None);
                    return not_joined;
                }
                match backplane.stored(room, store.settings().max_age).await {
                    Some(stored) => {
                        let (replay, covered) = self.replay_of(stored, since);
                        resumed(replay.messages, replay.gap, |messages| {
                            outbox.release(messages, covered)
                        })
                    }
                    None => {
                        let _ = outbox.release(Vec::new(), None);
                        Resumed {
                            gap: Some(Gap::Unavailable),
                            joined: true,
                            ..not_joined
                        }
                    }
                }
            }
        };
        if resumed.joined {
            // Outside the room's history: the callback may send to it.
            self.announce(PresenceChange::Joined, room, id, None);
        }
        resumed
    }

    fn history_of(&self, room: &str) -> Option<&history::Local> {
        self.inner
            .history
            .as_ref()
            .filter(|store| store.settings().covers(room))
    }

    /// The backplane, when it keeps the history for every hub on it.
    fn shared_history(&self) -> Option<&Arc<dyn Backplane>> {
        self.inner
            .backplane
            .as_ref()
            .filter(|backplane| backplane.keeps_history())
    }
}

/// What queueing a replay with `queue` came to, for a connection that
/// joined.
fn resumed<E>(
    messages: Vec<Recorded>,
    gap: Option<Gap>,
    queue: impl FnOnce(Vec<Recorded>) -> Result<usize, E>,
) -> Resumed {
    let total = messages.len();
    match queue(messages) {
        Ok(left_out) => Resumed {
            replayed: total - left_out,
            gap: if left_out > 0 {
                Some(gap.unwrap_or(Gap::Trimmed))
            } else {
                gap
            },
            joined: true,
        },
        // Gone meanwhile: it is taken out of the room as it goes.
        Err(_) => Resumed {
            replayed: 0,
            gap,
            joined: true,
        },
    }
}
