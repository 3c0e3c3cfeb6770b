//! The in-process history store: per room, a bounded queue of the last
//! messages with their offsets and times, under a lock that a record holds
//! while it delivers, so that members receive a room's recorded messages in
//! the order of their offsets, and that a join with a replay sees each
//! message once: either in the replay or live, never both, never neither.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::{Duration, Instant};

use super::{Gap, History, Position, Recorded, Replay};
use crate::hub::connection::random_u64;
use crate::message::Message;

/// Every room's history on this process.
pub(crate) struct Local {
    settings: History,
    rooms: Mutex<Rooms>,
}

struct Rooms {
    by_name: HashMap<Arc<str>, Arc<Mutex<Room>>>,
    /// When quiet rooms were last looked for.
    swept: Instant,
}

/// One room's history.
pub(crate) struct Room {
    epoch: u64,
    /// The last offset given out (0: none yet).
    last: u64,
    entries: VecDeque<Entry>,
    /// The last record, or when the room was made.
    touched: Instant,
}

struct Entry {
    offset: u64,
    at: Instant,
    message: Message,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A history stays consistent if a holder panicked (each change is one
    // push or pop): keep serving.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Local {
    pub(crate) fn new(settings: History) -> Self {
        Self {
            settings,
            rooms: Mutex::new(Rooms {
                by_name: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    pub(crate) fn settings(&self) -> &History {
        &self.settings
    }

    /// The room's history, made (with a fresh epoch) if it has none. Now
    /// and then, forgets the rooms that have been quiet for `max_age`.
    fn room(&self, name: &str) -> Arc<Mutex<Room>> {
        let mut rooms = lock(&self.rooms);
        let now = Instant::now();
        let max_age = self.settings.max_age;
        if now.duration_since(rooms.swept) >= (max_age / 2).max(Duration::from_secs(1)) {
            rooms.swept = now;
            // A room in use (its lock held) is not quiet.
            rooms.by_name.retain(|_, room| {
                room.try_lock()
                    .map_or(true, |room| now.duration_since(room.touched) < max_age)
            });
        }
        if let Some(room) = rooms.by_name.get(name) {
            return room.clone();
        }
        let room = Arc::new(Mutex::new(Room {
            epoch: random_u64(),
            last: 0,
            entries: VecDeque::new(),
            touched: now,
        }));
        rooms.by_name.insert(Arc::from(name), room.clone());
        room
    }

    /// Records `msg` (rendered with its position) and hands it to
    /// `deliver` while the room is held, so that deliveries come in the
    /// order of the offsets.
    pub(crate) fn record(
        &self,
        name: &str,
        msg: Message,
        deliver: impl FnOnce(Message, Position),
    ) -> Position {
        let room = self.room(name);
        let mut room = lock(&room);
        let now = Instant::now();
        room.last += 1;
        room.touched = now;
        let position = Position::new(room.epoch, room.last);
        let message = self.settings.rendered(position, msg);
        let offset = room.last;
        room.entries.push_back(Entry {
            offset,
            at: now,
            message: message.clone(),
        });
        room.trim(self.settings.max_messages, self.settings.max_age, now);
        deliver(message, position);
        position
    }

    /// What the room holds after `since`.
    pub(crate) fn replay(&self, name: &str, since: Option<Position>) -> Replay {
        let room = lock(&self.rooms).by_name.get(name).cloned();
        let Some(room) = room else {
            // Never recorded, or forgotten: a position from it is unknown.
            let gap = since.map(|_| Gap::Unknown);
            return Replay {
                messages: Vec::new(),
                gap,
            };
        };
        let mut room = lock(&room);
        room.replay(&self.settings, since)
    }

    /// Runs `join` with what the room holds after `since`, while the room
    /// is held: a message recorded meanwhile waits, and then reaches the
    /// joined connection live.
    pub(crate) fn join_since<R>(
        &self,
        name: &str,
        since: Option<Position>,
        join: impl FnOnce(Replay) -> R,
    ) -> R {
        let room = self.room(name);
        let mut room = lock(&room);
        let replay = room.replay(&self.settings, since);
        join(replay)
    }
}

impl Room {
    /// Drops what is over the count or the age.
    fn trim(&mut self, max_messages: usize, max_age: Duration, now: Instant) {
        while self.entries.len() > max_messages {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|e| now.duration_since(e.at) >= max_age)
        {
            self.entries.pop_front();
        }
    }

    fn replay(&mut self, settings: &History, since: Option<Position>) -> Replay {
        self.trim(settings.max_messages, settings.max_age, Instant::now());
        let kept = self
            .entries
            .iter()
            .map(|e| e.recorded(self.epoch))
            .collect();
        super::replay(self.epoch, self.last, kept, since)
    }
}

impl Entry {
    fn recorded(&self, epoch: u64) -> Recorded {
        Recorded {
            position: Position::new(epoch, self.offset),
            message: self.message.clone(),
        }
    }
}
