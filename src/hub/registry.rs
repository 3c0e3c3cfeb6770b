//! Who is in the hub and in which rooms: the two maps, kept consistent with
//! each other, delivery to the queues they name, and word to the backplane
//! when a room gets its first member here or loses its last.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::outbox::{Outbox, Queued, Refused};
use super::target::Selector;
use super::ConnectionId;

/// Told `(room, true)` when a room gets its first member on this process
/// and `(room, false)` when it loses its last; called under the rooms'
/// lock, so the calls come in the order the changes happened.
pub(crate) type RoomsChanged = Box<dyn Fn(&str, bool) + Send + Sync>;

/// The connections of one hub and their rooms.
#[derive(Default)]
pub(crate) struct Registry {
    members: RwLock<HashMap<ConnectionId, Member>>,
    rooms: RwLock<HashMap<Arc<str>, HashSet<ConnectionId>>>,
    rooms_changed: Option<RoomsChanged>,
}

struct Member {
    outbox: Arc<Outbox>,
    rooms: HashSet<Arc<str>>,
    /// What presence shows of it ("" until set).
    info: Arc<str>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // The maps stay consistent even if a holder panicked: keep serving.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Registry {
    pub(crate) fn new(rooms_changed: Option<RoomsChanged>) -> Self {
        Self {
            rooms_changed,
            ..Self::default()
        }
    }

    /// Takes `id` out of one room's set, and the room out of the map once
    /// empty.
    fn drop_from_room(
        &self,
        rooms: &mut HashMap<Arc<str>, HashSet<ConnectionId>>,
        room: &str,
        id: ConnectionId,
    ) {
        if let Some(set) = rooms.get_mut(room) {
            set.remove(&id);
            if set.is_empty() {
                rooms.remove(room);
                if let Some(changed) = &self.rooms_changed {
                    changed(room, false);
                }
            }
        }
    }

    pub(crate) fn insert(&self, id: ConnectionId, outbox: Arc<Outbox>) {
        let member = Member {
            outbox,
            rooms: HashSet::new(),
            info: Arc::from(""),
        };
        write(&self.members).insert(id, member);
    }

    /// Removes a connection and takes it out of its rooms, once; returns
    /// its info and the rooms it was in.
    pub(crate) fn remove(&self, id: ConnectionId) -> Option<(Arc<str>, Vec<Arc<str>>)> {
        let member = write(&self.members).remove(&id)?;
        let mut rooms = write(&self.rooms);
        for room in &member.rooms {
            self.drop_from_room(&mut rooms, room, id);
        }
        Some((member.info, member.rooms.into_iter().collect()))
    }

    /// Sets what presence shows of a connection; `false` if it is gone.
    pub(crate) fn set_info(&self, id: ConnectionId, info: Arc<str>) -> bool {
        write(&self.members)
            .get_mut(&id)
            .map(|m| m.info = info)
            .is_some()
    }

    pub(crate) fn info(&self, id: ConnectionId) -> Option<Arc<str>> {
        read(&self.members).get(&id).map(|m| m.info.clone())
    }

    /// A room's members here, with their info.
    pub(crate) fn present(&self, room: &str) -> Vec<(ConnectionId, Arc<str>)> {
        let members = read(&self.members);
        read(&self.rooms)
            .get(room)
            .map(|set| {
                set.iter()
                    .filter_map(|id| members.get(id).map(|m| (*id, m.info.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn outbox(&self, id: ConnectionId) -> Option<Arc<Outbox>> {
        read(&self.members).get(&id).map(|m| m.outbox.clone())
    }

    /// `false` if the connection is gone or already in the room.
    pub(crate) fn join(&self, id: ConnectionId, room: &str) -> bool {
        let mut members = write(&self.members);
        let Some(member) = members.get_mut(&id) else {
            return false;
        };
        let room: Arc<str> = Arc::from(room);
        if !member.rooms.insert(room.clone()) {
            return false;
        }
        let mut rooms = write(&self.rooms);
        let set = rooms.entry(room.clone()).or_default();
        set.insert(id);
        if set.len() == 1 {
            if let Some(changed) = &self.rooms_changed {
                changed(&room, true);
            }
        }
        true
    }

    /// `false` if the connection was not in the room.
    pub(crate) fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let mut members = write(&self.members);
        let Some(member) = members.get_mut(&id) else {
            return false;
        };
        if !member.rooms.remove(room) {
            return false;
        }
        self.drop_from_room(&mut write(&self.rooms), room, id);
        true
    }

    pub(crate) fn members_of(&self, room: &str) -> Vec<ConnectionId> {
        read(&self.rooms)
            .get(room)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn room_len(&self, room: &str) -> usize {
        read(&self.rooms).get(room).map_or(0, HashSet::len)
    }

    pub(crate) fn rooms(&self) -> Vec<String> {
        read(&self.rooms).keys().map(|r| r.to_string()).collect()
    }

    pub(crate) fn rooms_of(&self, id: ConnectionId) -> Vec<String> {
        read(&self.members)
            .get(&id)
            .map(|m| m.rooms.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        read(&self.members).len()
    }

    pub(crate) fn contains(&self, id: ConnectionId) -> bool {
        read(&self.members).contains_key(&id)
    }

    /// Queues `msg` for this process's members that `selector` picks;
    /// returns how many queued it.
    pub(crate) fn deliver(&self, msg: Queued, selector: &Selector) -> usize {
        // Collect the queues under the lock, push outside it.
        let targets: Vec<Arc<Outbox>> = {
            let members = read(&self.members);
            let pick = |id: &ConnectionId, member: &Member| {
                let excluded = selector.excludes(*id, |room| member.rooms.contains(room));
                (!excluded).then(|| member.outbox.clone())
            };
            let picked = |id: &ConnectionId| members.get(id).and_then(|m| pick(id, m));
            match selector.rooms.as_slice() {
                [] => members.iter().filter_map(|(id, m)| pick(id, m)).collect(),
                [room] => {
                    let rooms = read(&self.rooms);
                    let Some(set) = rooms.get(room) else {
                        return 0;
                    };
                    set.iter().filter_map(picked).collect()
                }
                several => {
                    // A member of several of the rooms gets it once.
                    let rooms = read(&self.rooms);
                    let ids: HashSet<ConnectionId> = several
                        .iter()
                        .filter_map(|room| rooms.get(room))
                        .flatten()
                        .copied()
                        .collect();
                    ids.iter().filter_map(picked).collect()
                }
            }
        };
        targets
            .iter()
            .filter(|outbox| match outbox.push(msg.clone()) {
                Ok(()) => true,
                Err(Refused::Overflow) => {
                    tracing::debug!("slow consumer: its queue is full");
                    false
                }
                Err(Refused::Closed) => false,
            })
            .count()
    }
}
