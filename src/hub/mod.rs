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
//! Sends name their receivers with a [`Target`]: rooms (a union), excluded
//! connections and rooms, and `local`. With a [`backplane`], the same
//! sends, [`Hub::send_to`] and [`Hub::disconnect`] reach the connections of
//! every process on it, at most once each.
//!
//! ```no_run
//! use hyperws::hub::Hub;
//! use hyperws::{Message, WebSocket};
//!
//! async fn session(hub: Hub, socket: WebSocket) {
//!     let (conn, mut inbox) = hub.connect(socket);
//!     conn.join("lobby");
//!     conn.to("lobby").send(Message::text(format!("{} joined", conn.id())));
//!     while let Some(Ok(msg)) = inbox.recv().await {
//!         if msg.is_data() {
//!             // One `Bytes` shared by every receiver, not a copy each.
//!             hub.to("lobby").send(msg);
//!         }
//!     }
//!     // `inbox` dropped here: the connection leaves every room.
//! }
//! ```

pub mod backplane;
mod connection;
mod history;
mod membership;
mod outbox;
mod presence;
mod recorded;
mod registry;
mod subscription;
mod target;
mod writer;

use std::fmt;
use std::sync::Arc;

use crate::message::{CloseFrame, Message};
use crate::socket::WebSocket;
use backplane::{Backplane, Channel, Inbound};
pub use connection::{Connection, ConnectionId, Inbox, InvalidConnectionId, NodeId};
pub use history::{Gap, History, InvalidPosition, Position, Recorded, Replay, Resumed};
pub use outbox::SlowConsumer;
use outbox::{Outbox, Parked};
pub use presence::{PresenceChange, PresenceEvent, PresenceList, Present, MAX_INFO};
use registry::Registry;
pub use subscription::{Delivery, Subscription};
use target::Selector;
pub use target::Target;

#[cfg(feature = "__fuzz")]
pub(crate) use backplane::packet::round_trip as fuzz_packet;

/// Connections, rooms and broadcast. Cheap to clone: clones share the same
/// connections.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    node: NodeId,
    registry: Arc<Registry>,
    queue_capacity: usize,
    slow_consumer: SlowConsumer,
    backplane: Option<Arc<dyn Backplane>>,
    presence: Option<presence::Covers>,
    on_presence: Option<presence::OnPresence>,
    history: Option<history::Local>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.inner.node)
            .field("connections", &self.connection_count())
            .field("queue_capacity", &self.inner.queue_capacity)
            .field("slow_consumer", &self.inner.slow_consumer)
            .field("backplane", &self.inner.backplane.is_some())
            .field(
                "history",
                &self.inner.history.as_ref().map(|h| h.settings()),
            )
            .finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`Hub`] with non-default settings.
#[must_use]
pub struct HubBuilder {
    queue_capacity: usize,
    slow_consumer: SlowConsumer,
    backplane: Option<Arc<dyn Backplane>>,
    presence: Option<presence::Covers>,
    on_presence: Option<presence::OnPresence>,
    history: Option<History>,
}

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubBuilder")
            .field("queue_capacity", &self.queue_capacity)
            .field("slow_consumer", &self.slow_consumer)
            .field("backplane", &self.backplane.is_some())
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
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

    /// Shares the hub's sends, `send_to` and `disconnect` with every hub
    /// on the same backplane: [`backplane::Redis`] for processes sharing a
    /// Redis, [`backplane::Memory`] for hubs of one process, or one of your
    /// own (see [`Backplane`]). Without one, the hub is this process's
    /// alone.
    pub fn backplane(mut self, backplane: impl Backplane) -> Self {
        self.backplane = Some(Arc::new(backplane));
        self
    }

    /// Keeps presence for the rooms `covers` says yes to (`|_| true`: every
    /// room): who is in them on every process, with each connection's
    /// [info](Connection::set_info) ([`Hub::presence`]), and join and leave
    /// events ([`on_presence`](Self::on_presence)). Each join and leave of
    /// such a room costs the backplane a write and an event; see
    /// `docs/realtime.md` for what Redis does per connection.
    pub fn presence(mut self, covers: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.presence = Some(Arc::new(covers));
        self
    }

    /// Called for every join and leave of a presence room that has members
    /// on this process, wherever it happened (and for those on this
    /// process, even when the room has no member left here). It runs on
    /// the joining or leaving task, or on the backplane's: keep it short
    /// and do not block (a send is fine).
    ///
    /// ```
    /// use hyperws::hub::{Hub, PresenceChange};
    ///
    /// let hub = Hub::builder()
    ///     .presence(|room| room.starts_with("chat:"))
    ///     .on_presence(|hub, event| {
    ///         let verb = match event.change {
    ///             PresenceChange::Joined => "joined",
    ///             PresenceChange::Left => "left",
    ///         };
    ///         let text = format!("{} {verb}", event.member.info);
    ///         hub.to(&event.room).local().send(text);
    ///     })
    ///     .build();
    /// ```
    pub fn on_presence(
        mut self,
        callback: impl Fn(&Hub, &PresenceEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_presence = Some(Arc::new(callback));
        self
    }

    /// Keeps the last messages of the rooms `history` covers, for late
    /// joiners and for clients that reconnect: sends made with
    /// [`Target::record`] get a [`Position`], [`Hub::history`] reads what
    /// came after one, and [`Hub::join_since`] joins with a replay. The
    /// history is kept in this process, or, with
    /// `backplane::Redis`, in Redis Streams shared by every process (see
    /// `docs/realtime.md` for the costs of both).
    pub fn history(mut self, history: History) -> Self {
        self.history = Some(history);
        self
    }

    /// The hub; its backplane, if any, is attached and subscribed here.
    pub fn build(self) -> Hub {
        let node = NodeId::random();
        let backplane = self.backplane;
        // A room's channel is followed while the room has members here.
        let rooms_changed = backplane.clone().map(|backplane| {
            Box::new(move |room: &str, occupied: bool| {
                if occupied {
                    backplane.subscribe(Channel::Room(room));
                } else {
                    backplane.unsubscribe(Channel::Room(room));
                }
            }) as registry::RoomsChanged
        });
        let registry = Arc::new(Registry::new(rooms_changed));
        let inner = Arc::new(Inner {
            node,
            registry,
            queue_capacity: self.queue_capacity,
            slow_consumer: self.slow_consumer,
            backplane: backplane.clone(),
            presence: self.presence,
            on_presence: self.on_presence,
            history: self.history.map(history::Local::new),
        });
        // Attached once the hub exists: a backplane task that starts at
        // once (on another worker) must find it alive, not half-built.
        if let Some(backplane) = &backplane {
            backplane.attach(node, Inbound::new(node, Arc::downgrade(&inner)));
            backplane.subscribe(Channel::All);
            backplane.subscribe(Channel::Node(node));
        }
        Hub { inner }
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
            backplane: None,
            presence: None,
            on_presence: None,
            history: None,
        }
    }

    /// This hub's id among the hubs of its backplane; every
    /// [`ConnectionId`] it gives out carries it.
    #[must_use]
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// Adds a socket to the hub: starts its writer task and returns its
    /// handle and its incoming messages. Dropping the [`Inbox`] removes it
    /// again.
    pub fn connect(&self, mut socket: WebSocket) -> (Connection, Inbox) {
        let id = ConnectionId::next(self.inner.node);
        socket.span().record("id", tracing::field::display(id));
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
        let signal = shutdown.map(|s| s.signal);
        (conn, Inbox::new(rx, outbox, self.clone(), id, signal))
    }

    /// The members of `room`: chain more rooms (a union), exclusions and
    /// [`local`](Target::local), then [`send`](Target::send).
    pub fn to(&self, room: &str) -> Target {
        Target::new(self.clone()).to(room)
    }

    /// Every connection, on every process.
    pub fn all(&self) -> Target {
        Target::new(self.clone())
    }

    /// Every connection but `id` (usually the sender), on every process.
    pub fn except(&self, id: ConnectionId) -> Target {
        Target::new(self.clone()).except(id)
    }

    /// Every connection of this process only.
    pub fn local(&self) -> Target {
        Target::new(self.clone()).local()
    }

    /// Sends `msg` to one connection, on whichever process it is. `true`
    /// when it was queued here, or handed to the backplane for the
    /// connection's process (which delivers it at most once); `false` when
    /// the connection is known to be gone, its queue refused the message,
    /// or it is elsewhere and there is no backplane.
    pub fn send_to(&self, id: ConnectionId, msg: impl Into<Message>) -> bool {
        let msg = msg.into();
        if id.node() == self.inner.node {
            let outbox = self.inner.registry.outbox(id);
            return outbox.is_some_and(|o| o.push(msg).is_ok());
        }
        let Some(backplane) = &self.inner.backplane else {
            return false;
        };
        match backplane::packet::encode_send_to(self.inner.node, id, &msg) {
            Some(packet) => {
                backplane.publish(Channel::Node(id.node()), packet);
                true
            }
            None => false,
        }
    }

    /// Closes one connection with `frame`, on whichever process it is:
    /// what is already queued for it goes first, later sends to it are
    /// refused. `true` when it is here, or the request was handed to the
    /// backplane.
    pub fn disconnect(&self, id: ConnectionId, frame: CloseFrame) -> bool {
        if id.node() == self.inner.node {
            let outbox = self.inner.registry.outbox(id);
            return outbox.is_some_and(|o| {
                o.close(frame);
                true
            });
        }
        let Some(backplane) = &self.inner.backplane else {
            return false;
        };
        let packet = backplane::packet::encode_disconnect(self.inner.node, id, &frame);
        backplane.publish(Channel::Node(id.node()), packet);
        true
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

    /// Delivers here, and (unless `local`) through the backplane: once on
    /// the channel of all, or once per room on the room's channel.
    fn deliver(&self, msg: Message, selector: &Selector, local: bool) -> usize {
        self.deliver_at(msg, None, selector, local)
    }

    /// [`deliver`](Self::deliver), with the position of a recorded message
    /// (for this process's members: it does not cross the backplane).
    fn deliver_at(
        &self,
        msg: Message,
        position: Option<Position>,
        selector: &Selector,
        local: bool,
    ) -> usize {
        if let (Some(backplane), false) = (&self.inner.backplane, local) {
            let node = self.inner.node;
            if selector.rooms.is_empty() {
                if let Some(packet) = backplane::packet::encode_send(node, selector, 0, &msg) {
                    backplane.publish(Channel::All, packet);
                }
            } else {
                for (index, room) in selector.rooms.iter().enumerate() {
                    if let Some(packet) =
                        backplane::packet::encode_send(node, selector, index, &msg)
                    {
                        backplane.publish(Channel::Room(room), packet);
                    }
                }
            }
        }
        let queued = outbox::Queued {
            message: msg,
            position,
        };
        self.inner.registry.deliver(queued, selector)
    }
}
