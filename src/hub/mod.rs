//! [`Hub`]: connection ids, rooms and broadcast, with a bounded queue and
//! one writer task per connection.
//!
//! A `Hub` is a value (no global state): put it in your router state. A
//! socket joins with [`Hub::connect`], which gives a [`Connection`] handle
//! (its id, its rooms, sending to it) and an [`Inbox`] of what the
//! peer sends. Everything sent to a connection goes through its own bounded
//! queue, emptied by its own writer task, so a slow reader never slows the
//! others and never makes the server's memory grow: when its queue is full,
//! the [`SlowConsumer`] policy applies. Dropping the `Inbox` (the connection
//! is over) removes the connection from the hub and from every room, once.
//!
//! ```no_run
//! use hyperws::hub::Hub;
//! use hyperws::{Message, WebSocket};
//!
//! async fn session(hub: Hub, socket: WebSocket) {
//!     let (conn, mut inbox) = hub.connect(socket);
//!     conn.join("lobby");
//!     hub.except(conn.id()).to_room("lobby", Message::text(format!("{} joined", conn.id())));
//!     while let Some(Ok(msg)) = inbox.recv().await {
//!         if msg.is_data() {
//!             // One `Bytes` shared by every receiver, not a copy each.
//!             hub.to_room("lobby", msg);
//!         }
//!     }
//!     // `inbox` dropped here: the connection leaves every room.
//! }
//! ```

#[cfg(feature = "redis")]
mod backplane;
#[cfg(all(feature = "redis", feature = "__fuzz"))]
pub(crate) use backplane::round_trip as fuzz_envelope;
mod connection;
mod outbox;
mod registry;
mod writer;

use std::fmt;
use std::sync::Arc;

#[cfg(any(feature = "json", feature = "redis"))]
use crate::error::Error;
use crate::message::Message;
use crate::socket::WebSocket;
pub use connection::{Connection, ConnectionId, Inbox};
pub use outbox::SlowConsumer;
use outbox::{Outbox, Parked};
use registry::Registry;

/// Connections, rooms and broadcast. Cheap to clone: clones share the same
/// connections.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    queue_capacity: usize,
    slow_consumer: SlowConsumer,
    #[cfg(feature = "redis")]
    backplane: Option<backplane::Backplane>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.connection_count())
            .field("queue_capacity", &self.inner.queue_capacity)
            .field("slow_consumer", &self.inner.slow_consumer)
            .finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`Hub`] with non-default settings.
#[derive(Debug, Clone)]
#[must_use]
pub struct HubBuilder {
    queue_capacity: usize,
    slow_consumer: SlowConsumer,
    #[cfg(feature = "redis")]
    redis: Option<(redis::Client, String, tokio::runtime::Handle)>,
}

impl HubBuilder {
    /// How many messages may wait for one connection. Default: 256.
    pub fn queue_capacity(mut self, messages: usize) -> Self {
        self.queue_capacity = messages.max(1);
        self
    }

    /// What happens to a connection whose queue is full. Default: close it
    /// with 1008.
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// Shares `broadcast` and `to_room` with every process whose hub uses
    /// the same Redis (`redis://host:port/`) and channel (see
    /// `docs/realtime.md`). `send_to` and `except` stay local: connection
    /// ids are per process.
    ///
    /// # Errors
    ///
    /// When the URL is not a Redis URL, or when called outside a tokio
    /// runtime (the backplane's tasks run on the current one). Reaching
    /// Redis is not checked here: the hub connects in the background and
    /// keeps retrying.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(Error::backplane)?;
        // The backplane's tasks run on the runtime this is called in.
        let runtime = tokio::runtime::Handle::try_current().map_err(Error::backplane_runtime)?;
        self.redis = Some((client, "hyperws:hub".to_owned(), runtime));
        Ok(self)
    }

    /// The Redis channel the hubs share. Default: `hyperws:hub`. Give each
    /// application its own when several share one Redis.
    #[cfg(feature = "redis")]
    pub fn redis_channel(mut self, channel: impl Into<String>) -> Self {
        if let Some((_, name, _)) = &mut self.redis {
            *name = channel.into();
        }
        self
    }

    /// The hub. With Redis, the backplane's tasks start here, on the runtime
    /// [`redis`](Self::redis) was called in.
    pub fn build(self) -> Hub {
        #[cfg(feature = "redis")]
        let redis = self.redis;
        let registry = Arc::new(Registry::default());
        Hub {
            inner: Arc::new(Inner {
                #[cfg(feature = "redis")]
                backplane: redis.map(|(client, channel, runtime)| {
                    backplane::Backplane::start(
                        &runtime,
                        client,
                        channel,
                        Arc::downgrade(&registry),
                    )
                }),
                registry,
                queue_capacity: self.queue_capacity,
                slow_consumer: self.slow_consumer,
            }),
        }
    }
}

impl Hub {
    /// A hub with the default settings (256 queued messages per
    /// connection; a full queue closes the connection with 1008).
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for other settings.
    pub fn builder() -> HubBuilder {
        HubBuilder {
            queue_capacity: 256,
            slow_consumer: SlowConsumer::default(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Adds a socket to the hub: starts its writer task and returns its
    /// handle and its incoming messages. Dropping the [`Inbox`] removes it
    /// again.
    pub fn connect(&self, mut socket: WebSocket) -> (Connection, Inbox) {
        let id = ConnectionId::next();
        let outbox = Arc::new(Outbox::new(
            self.inner.queue_capacity,
            self.inner.slow_consumer,
        ));
        self.inner.registry.insert(id, outbox.clone());
        // The writer closes with 1001 on shutdown, after what is queued;
        // the server waits for it (its task joins the server's tracker).
        let shutdown = socket.take_shutdown();
        let (tx, rx) = socket.split();
        let tracker = shutdown.as_ref().map(|s| s.tracker.clone());
        match Parked::new(tx, tracker, writer::start) {
            Some(parked) => outbox.park(parked),
            // `on_upgrade` runs sessions on a runtime: not reached there.
            None => {
                tracing::error!("Hub::connect called outside a tokio runtime; nothing will be sent")
            }
        }
        let conn = Connection::new(id, self.clone(), outbox.clone());
        let token = shutdown.map(|s| s.token);
        (conn, Inbox::new(rx, outbox, self.clone(), id, token))
    }

    /// Sends `msg` to every connection; returns how many queued it.
    pub fn broadcast(&self, msg: impl Into<Message>) -> usize {
        self.deliver(msg.into(), None, None)
    }

    /// Sends `msg` to every member of `room`; returns how many queued it.
    pub fn to_room(&self, room: &str, msg: impl Into<Message>) -> usize {
        self.deliver(msg.into(), Some(room), None)
    }

    /// Sends `msg` to one connection; `false` if it is gone or its queue
    /// refused the message.
    pub fn send_to(&self, id: ConnectionId, msg: impl Into<Message>) -> bool {
        let outbox = self.inner.registry.outbox(id);
        outbox.is_some_and(|o| o.push(msg.into()).is_ok())
    }

    /// The same sends, skipping one connection (usually the sender).
    pub fn except(&self, id: ConnectionId) -> Except<'_> {
        Except { hub: self, id }
    }

    /// Serializes `value` once and sends it to every connection.
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialized.
    #[cfg(feature = "json")]
    pub fn broadcast_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<usize, Error> {
        Ok(self.broadcast(crate::json::to_message(value)?))
    }

    /// Serializes `value` once and sends it to every member of `room`.
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialized.
    #[cfg(feature = "json")]
    pub fn to_room_json<T: serde::Serialize + ?Sized>(
        &self,
        room: &str,
        value: &T,
    ) -> Result<usize, Error> {
        Ok(self.to_room(room, crate::json::to_message(value)?))
    }

    /// Puts a connection in a room; `false` if it is gone or already in.
    pub fn join(&self, id: ConnectionId, room: &str) -> bool {
        self.inner.registry.join(id, room)
    }

    /// Takes a connection out of a room; `false` if it was not in.
    pub fn leave(&self, id: ConnectionId, room: &str) -> bool {
        self.inner.registry.leave(id, room)
    }

    /// The members of a room.
    #[must_use]
    pub fn members(&self, room: &str) -> Vec<ConnectionId> {
        self.inner.registry.members_of(room)
    }

    /// How many connections are in a room.
    #[must_use]
    pub fn room_count(&self, room: &str) -> usize {
        self.inner.registry.room_len(room)
    }

    /// The rooms that have members.
    #[must_use]
    pub fn rooms(&self) -> Vec<String> {
        self.inner.registry.rooms()
    }

    /// The rooms a connection is in.
    #[must_use]
    pub fn rooms_of(&self, id: ConnectionId) -> Vec<String> {
        self.inner.registry.rooms_of(id)
    }

    /// How many connections the hub holds.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Whether a connection is in the hub.
    #[must_use]
    pub fn contains(&self, id: ConnectionId) -> bool {
        self.inner.registry.contains(id)
    }

    /// Delivers here, and (with a backplane) to the other processes.
    fn deliver(&self, msg: Message, room: Option<&str>, except: Option<ConnectionId>) -> usize {
        #[cfg(feature = "redis")]
        if let Some(backplane) = &self.inner.backplane {
            backplane.publish(&msg, room);
        }
        self.inner.registry.deliver(msg, room, except)
    }
}

/// [`Hub`]'s sends, skipping one connection. From [`Hub::except`].
#[derive(Debug, Clone, Copy)]
pub struct Except<'a> {
    hub: &'a Hub,
    id: ConnectionId,
}

impl Except<'_> {
    /// Sends to every connection but the skipped one.
    pub fn broadcast(self, msg: impl Into<Message>) -> usize {
        self.hub.deliver(msg.into(), None, Some(self.id))
    }

    /// Sends to the members of `room` but the skipped one.
    pub fn to_room(self, room: &str, msg: impl Into<Message>) -> usize {
        self.hub.deliver(msg.into(), Some(room), Some(self.id))
    }
}
