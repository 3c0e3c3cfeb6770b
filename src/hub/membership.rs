//! Joins, leaves and a connection's removal, and the presence they record
//! and announce: the hub's side of [presence](super::presence).

use std::sync::Arc;

use super::backplane::{self, Channel};
use super::presence::{PresenceChange, PresenceEvent, PresenceList, Present, MAX_INFO};
use super::{ConnectionId, Hub};

impl Hub {
    /// Puts a connection in a room; `false` if it is gone or already in.
    pub fn join(&self, id: ConnectionId, room: &str) -> bool {
        let joined = self.inner.registry.join(id, room);
        if joined {
            self.announce(PresenceChange::Joined, room, id, None);
        }
        joined
    }

    /// Takes a connection out of a room; `false` if it was not in.
    pub fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let left = self.inner.registry.leave(id, room);
        if left {
            self.announce(PresenceChange::Left, room, id, None);
        }
        left
    }

    /// Takes a connection out of the hub and its rooms (its inbox is
    /// gone), announcing its departure from presence rooms.
    pub(crate) fn remove(&self, id: ConnectionId) {
        let Some((info, rooms)) = self.inner.registry.remove(id) else {
            return;
        };
        for room in rooms {
            self.announce(PresenceChange::Left, &room, id, Some(info.clone()));
        }
    }

    /// Who is in `room` on every process, with their info. Without a
    /// backplane this process's members are everyone (`complete`); with
    /// one that cannot answer now (Redis is down), or for a room without
    /// presence, the list is this process's members and says it is not
    /// complete.
    pub async fn presence(&self, room: &str) -> PresenceList {
        let covered = self.covers(room);
        if let (Some(backplane), true) = (&self.inner.backplane, covered) {
            if let Some(members) = backplane.presence(room).await {
                return PresenceList {
                    members,
                    complete: true,
                };
            }
        }
        let members = self
            .inner
            .registry
            .present(room)
            .into_iter()
            .map(|(id, info)| Present {
                id,
                info: info.to_string(),
            })
            .collect();
        PresenceList {
            members,
            complete: self.inner.backplane.is_none(),
        }
    }

    pub(super) fn covers(&self, room: &str) -> bool {
        self.inner
            .presence
            .as_ref()
            .is_some_and(|covers| covers(room))
    }

    /// Records and announces a join or leave of a presence room.
    pub(super) fn announce(
        &self,
        change: PresenceChange,
        room: &str,
        id: ConnectionId,
        info: Option<Arc<str>>,
    ) {
        if !self.covers(room) {
            return;
        }
        let info = info
            .or_else(|| self.inner.registry.info(id))
            .unwrap_or_else(|| Arc::from(""));
        let event = PresenceEvent {
            change,
            room: room.to_owned(),
            member: Present {
                id,
                info: info.to_string(),
            },
        };
        if let Some(backplane) = &self.inner.backplane {
            match change {
                PresenceChange::Joined => backplane.present(room, id, &info),
                PresenceChange::Left => backplane.absent(room, id),
            }
            if let Some(packet) = backplane::packet::encode_presence(self.inner.node, &event) {
                backplane.publish(Channel::Room(room), packet);
            }
        }
        self.told(&event);
    }

    /// Hands a presence event to the application's callback.
    pub(crate) fn told(&self, event: &PresenceEvent) {
        if let Some(callback) = &self.inner.on_presence {
            callback(self, event);
        }
    }

    pub(crate) fn set_info(&self, id: ConnectionId, info: &str) -> bool {
        info.len() <= MAX_INFO && self.inner.registry.set_info(id, Arc::from(info))
    }
}
