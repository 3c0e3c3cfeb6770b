//! [`Memory`]: a backplane for hubs in one process.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::{Backplane, Channel, Inbound, PresenceFuture};
use crate::hub::{ConnectionId, NodeId, Present};

/// A backplane between hubs of one process, which behave as if each were a
/// process of its own: rooms, exclusions, sends to one connection and
/// disconnects cross from hub to hub, and a hub receives a room's traffic
/// only while it has members in the room. Delivery is immediate and never
/// lost. Useful to test a multi-process design in one test, or to shard
/// one process's connections over several hubs.
///
/// Clones share the bus; give each hub its own clone.
///
/// ```
/// use hyperws::hub::{backplane::Memory, Hub};
///
/// let bus = Memory::new();
/// let one = Hub::builder().backplane(bus.clone()).build();
/// let two = Hub::builder().backplane(bus.clone()).build();
/// assert_ne!(one.node(), two.node());
/// ```
pub struct Memory {
    bus: Arc<Mutex<Bus>>,
    /// The hub this clone was given to.
    node: OnceLock<NodeId>,
}

#[derive(Default)]
struct Bus {
    ports: Vec<Port>,
    /// Presence: room -> member -> info.
    presence: HashMap<String, HashMap<ConnectionId, String>>,
}

impl Bus {
    fn lock(bus: &Mutex<Self>) -> std::sync::MutexGuard<'_, Self> {
        bus.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Port {
    node: NodeId,
    inbound: Inbound,
    channels: HashSet<String>,
}

const PREFIX: &str = "memory";

impl Memory {
    /// A new, empty bus.
    #[must_use]
    pub fn new() -> Self {
        Self {
            bus: Arc::default(),
            node: OnceLock::new(),
        }
    }

    fn with_port(&self, f: impl FnOnce(&mut Port)) {
        let Some(node) = self.node.get() else {
            return;
        };
        let mut bus = Bus::lock(&self.bus);
        if let Some(port) = bus.ports.iter_mut().find(|p| p.node == *node) {
            f(port);
        }
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Memory {
    /// Another end of the same bus, for another hub.
    fn clone(&self) -> Self {
        Self {
            bus: self.bus.clone(),
            node: OnceLock::new(),
        }
    }
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hubs = Bus::lock(&self.bus).ports.len();
        f.debug_struct("Memory")
            .field("hubs", &hubs)
            .field("node", &self.node.get())
            .finish()
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Some(node) = self.node.get() {
            let mut bus = Bus::lock(&self.bus);
            bus.ports.retain(|p| p.node != *node);
            // Its members are gone with it, as a crashed process's expire.
            for members in bus.presence.values_mut() {
                members.retain(|id, _| id.node() != *node);
            }
            bus.presence.retain(|_, members| !members.is_empty());
        }
    }
}

impl Backplane for Memory {
    fn attach(&self, node: NodeId, inbound: Inbound) {
        if self.node.set(node).is_err() {
            tracing::error!("a Memory backplane was given to two hubs; give each its own clone");
            return;
        }
        let mut bus = Bus::lock(&self.bus);
        bus.ports.push(Port {
            node,
            inbound,
            channels: HashSet::new(),
        });
    }

    fn publish(&self, channel: Channel<'_>, packet: Bytes) {
        let name = channel.name(PREFIX);
        // Deliver outside the lock: a hub's delivery takes its own locks.
        let receivers: Vec<Inbound> = {
            let bus = Bus::lock(&self.bus);
            bus.ports
                .iter()
                .filter(|p| Some(&p.node) != self.node.get() && p.channels.contains(&name))
                .map(|p| p.inbound.clone())
                .collect()
        };
        for inbound in receivers {
            inbound.deliver(&packet);
        }
    }

    fn subscribe(&self, channel: Channel<'_>) {
        let name = channel.name(PREFIX);
        self.with_port(|port| {
            port.channels.insert(name);
        });
    }

    fn unsubscribe(&self, channel: Channel<'_>) {
        let name = channel.name(PREFIX);
        self.with_port(|port| {
            port.channels.remove(&name);
        });
    }

    fn present(&self, room: &str, id: ConnectionId, info: &str) {
        let mut bus = Bus::lock(&self.bus);
        bus.presence
            .entry(room.to_owned())
            .or_default()
            .insert(id, info.to_owned());
    }

    fn absent(&self, room: &str, id: ConnectionId) {
        let mut bus = Bus::lock(&self.bus);
        if let Some(members) = bus.presence.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                bus.presence.remove(room);
            }
        }
    }

    fn presence(&self, room: &str) -> PresenceFuture {
        let bus = Bus::lock(&self.bus);
        let members = bus
            .presence
            .get(room)
            .map(|members| {
                members
                    .iter()
                    .map(|(id, info)| Present {
                        id: *id,
                        info: info.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(std::future::ready(Some(members)))
    }
}

impl Memory {
    /// How many hubs on this bus are subscribed to `channel` (what Redis's
    /// `PUBSUB NUMSUB` says of its channels).
    #[must_use]
    pub fn subscribers(&self, channel: Channel<'_>) -> usize {
        let name = channel.name(PREFIX);
        let bus = Bus::lock(&self.bus);
        bus.ports
            .iter()
            .filter(|p| p.channels.contains(&name))
            .count()
    }
}
