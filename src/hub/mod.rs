//! [`Hub`]: connection ids, rooms and broadcast, with a bounded queue and
//! one writer task per connection.
//!
//! A `Hub` is a value (no global state): put it in your router state. A
//! socket joins with [`Hub::connect`], which gives a [`Connection`] handle
//! (its id, its rooms, sending to it) and an [`Incoming`] stream of what the
//! peer sends. Everything sent to a connection goes through its own bounded
//! queue, emptied by its own writer task, so a slow reader never slows the
//! others and never makes the server's memory grow: when its queue is full,
//! the [`SlowConsumer`] policy applies. Dropping `Incoming` (the session is
//! over) removes the connection from the hub and from every room, once.
//!
//! ```no_run
//! use hyperws::hub::Hub;
//! use hyperws::{Message, WebSocket};
//!
//! async fn session(hub: Hub, socket: WebSocket) {
//!     let (conn, mut incoming) = hub.connect(socket);
//!     conn.join("lobby");
//!     hub.except(conn.id()).to_room("lobby", Message::text(format!("{} joined", conn.id())));
//!     while let Some(Ok(msg)) = incoming.recv().await {
//!         if msg.is_data() {
//!             // One `Bytes` shared by every receiver, not a copy each.
//!             hub.to_room("lobby", msg);
//!         }
//!     }
//!     // `incoming` dropped here: the connection leaves every room.
//! }
//! ```

#[cfg(feature = "redis")]
mod backplane;
#[cfg(all(feature = "redis", feature = "__fuzz"))]
pub(crate) use backplane::round_trip as fuzz_envelope;
mod outbox;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt};
use tokio_util::sync::CancellationToken;

use crate::socket::{WebSocket, WebSocketReceiver, WebSocketSender};
use crate::{Error, Message};
pub use outbox::SlowConsumer;
use outbox::{Outbox, Refused};

/// How long a closing writer may take to say goodbye to its peer.
const GOODBYE: Duration = Duration::from_secs(1);
/// How long a writer may take, on the server's graceful shutdown, to send
/// what is queued and its 1001; the server's grace period (10 s by
/// default) bounds the whole shutdown anyway.
const SHUTDOWN_GOODBYE: Duration = Duration::from_secs(10);
/// How long a slow consumer's writer keeps trying to deliver its close
/// frame, behind what the peer has not read yet.
const SLOW_GOODBYE: Duration = Duration::from_secs(10);
/// Messages written per flush, at most.
const BATCH: usize = 64;

/// A connection's id: unique within the process, printable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The id as a number.
    #[must_use]
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Ids are unique across every hub of the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Connections, rooms and broadcast. Cheap to clone: clones share the same
/// connections.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    members: RwLock<HashMap<ConnectionId, Member>>,
    rooms: RwLock<HashMap<Arc<str>, HashSet<ConnectionId>>>,
    queue_capacity: usize,
    slow_consumer: SlowConsumer,
    #[cfg(feature = "redis")]
    backplane: Option<backplane::Backplane>,
}

struct Member {
    outbox: Arc<Outbox>,
    rooms: HashSet<Arc<str>>,
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
        Hub {
            inner: Arc::new_cyclic(|_weak| Inner {
                members: RwLock::default(),
                rooms: RwLock::default(),
                queue_capacity: self.queue_capacity,
                slow_consumer: self.slow_consumer,
                #[cfg(feature = "redis")]
                backplane: redis.map(|(client, channel, runtime)| {
                    backplane::Backplane::start(&runtime, client, channel, _weak.clone())
                }),
            }),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // The maps stay consistent even if a holder panicked: keep serving.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    /// handle and its incoming messages. Dropping the [`Incoming`] removes
    /// it again.
    pub fn connect(&self, socket: WebSocket) -> (Connection, Incoming) {
        let id = ConnectionId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::new(
            self.inner.queue_capacity,
            self.inner.slow_consumer,
        ));
        write(&self.inner.members).insert(
            id,
            Member {
                outbox: outbox.clone(),
                rooms: HashSet::new(),
            },
        );
        let mut socket = socket;
        // The writer closes with 1001 on shutdown, after what is queued.
        let shutdown = socket.take_shutdown();
        let (tx, rx) = socket.split();
        let writer = write_loop(
            tx,
            outbox.clone(),
            shutdown.as_ref().map(|s| s.token.clone()),
        );
        // The server waits for the writer too: what was broadcast before
        // the shutdown still goes out, ahead of the 1001.
        match shutdown {
            Some(shutdown) => shutdown.tracker.spawn(writer),
            None => tokio::spawn(writer),
        };
        let conn = Connection {
            id,
            hub: self.clone(),
            outbox: outbox.clone(),
        };
        let incoming = Incoming {
            rx,
            outbox,
            hub: self.clone(),
            id,
            failed: false,
        };
        (conn, incoming)
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
        let outbox = read(&self.inner.members).get(&id).map(|m| m.outbox.clone());
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
        let mut members = write(&self.inner.members);
        let Some(member) = members.get_mut(&id) else {
            return false;
        };
        let room: Arc<str> = Arc::from(room);
        if !member.rooms.insert(room.clone()) {
            return false;
        }
        write(&self.inner.rooms).entry(room).or_default().insert(id);
        true
    }

    /// Takes a connection out of a room; `false` if it was not in.
    pub fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let mut members = write(&self.inner.members);
        let Some(member) = members.get_mut(&id) else {
            return false;
        };
        if !member.rooms.remove(room) {
            return false;
        }
        let mut rooms = write(&self.inner.rooms);
        if let Some(set) = rooms.get_mut(room) {
            set.remove(&id);
            if set.is_empty() {
                rooms.remove(room);
            }
        }
        true
    }

    /// The members of a room.
    #[must_use]
    pub fn members(&self, room: &str) -> Vec<ConnectionId> {
        read(&self.inner.rooms)
            .get(room)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many connections are in a room.
    #[must_use]
    pub fn room_count(&self, room: &str) -> usize {
        read(&self.inner.rooms).get(room).map_or(0, HashSet::len)
    }

    /// The rooms that have members.
    #[must_use]
    pub fn rooms(&self) -> Vec<String> {
        read(&self.inner.rooms)
            .keys()
            .map(|r| r.to_string())
            .collect()
    }

    /// The rooms a connection is in.
    #[must_use]
    pub fn rooms_of(&self, id: ConnectionId) -> Vec<String> {
        read(&self.inner.members)
            .get(&id)
            .map(|m| m.rooms.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many connections the hub holds.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        read(&self.inner.members).len()
    }

    /// Whether a connection is in the hub.
    #[must_use]
    pub fn contains(&self, id: ConnectionId) -> bool {
        read(&self.inner.members).contains_key(&id)
    }

    /// Delivers here, and (with a backplane) to the other processes.
    fn deliver(&self, msg: Message, room: Option<&str>, except: Option<ConnectionId>) -> usize {
        #[cfg(feature = "redis")]
        if let Some(backplane) = &self.inner.backplane {
            backplane.publish(&msg, room);
        }
        deliver_local(&self.inner, msg, room, except)
    }

    /// Removes a connection from the hub and its rooms; once.
    fn remove(&self, id: ConnectionId) {
        let Some(member) = write(&self.inner.members).remove(&id) else {
            return;
        };
        let mut rooms = write(&self.inner.rooms);
        for room in member.rooms {
            if let Some(set) = rooms.get_mut(&room) {
                set.remove(&id);
                if set.is_empty() {
                    rooms.remove(&room);
                }
            }
        }
    }
}

/// Queues `msg` for this process's members (of `room`, but `except`);
/// returns how many queued it.
fn deliver_local(
    inner: &Inner,
    msg: Message,
    room: Option<&str>,
    except: Option<ConnectionId>,
) -> usize {
    // Collect the queues under the lock, push outside it.
    let targets: Vec<Arc<Outbox>> = {
        let members = read(&inner.members);
        match room {
            None => members
                .iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(_, m)| m.outbox.clone())
                .collect(),
            Some(room) => {
                let rooms = read(&inner.rooms);
                let Some(set) = rooms.get(room) else {
                    return 0;
                };
                set.iter()
                    .filter(|id| Some(**id) != except)
                    .filter_map(|id| members.get(id).map(|m| m.outbox.clone()))
                    .collect()
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

/// One connection of a [`Hub`]: its id, its rooms, its queue. Cheap to
/// clone; keeps working (as a no-op) after the connection is gone.
#[derive(Clone)]
pub struct Connection {
    id: ConnectionId,
    hub: Hub,
    outbox: Arc<Outbox>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("queued", &self.outbox.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Connection {
    /// The connection's id.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Queues a message for this connection; `false` if it is gone or its
    /// queue refused it.
    pub fn send(&self, msg: impl Into<Message>) -> bool {
        self.outbox.push(msg.into()).is_ok()
    }

    /// Joins a room; `false` if already in or gone.
    pub fn join(&self, room: &str) -> bool {
        self.hub.join(self.id, room)
    }

    /// Leaves a room; `false` if not in.
    pub fn leave(&self, room: &str) -> bool {
        self.hub.leave(self.id, room)
    }

    /// The rooms this connection is in.
    #[must_use]
    pub fn rooms(&self) -> Vec<String> {
        self.hub.rooms_of(self.id)
    }

    /// How many messages the `DropOldest` policy dropped for this
    /// connection.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.outbox.dropped()
    }
}

/// What the peer of a hub connection sends. Dropping it ends the session:
/// the connection leaves the hub and its rooms, and its writer sends what
/// is still queued, then closes.
pub struct Incoming {
    rx: WebSocketReceiver,
    outbox: Arc<Outbox>,
    hub: Hub,
    id: ConnectionId,
    failed: bool,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Receives the next message; `None` once the connection is closed.
    /// When this connection's queue overflowed under
    /// [`SlowConsumer::Close`], returns an error for which
    /// [`Error::is_slow_consumer`] is true, then `None`.
    ///
    /// Keep calling it: keepalive pings and the server's shutdown close
    /// happen while it waits.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        if self.failed {
            return None;
        }
        tokio::select! {
            biased;
            () = self.outbox.overflowed() => {
                self.failed = true;
                Some(Err(Error::slow_consumer()))
            }
            item = self.rx.recv() => item,
        }
    }

    /// Receives the next data message as JSON; see
    /// [`WebSocket::recv_json`].
    #[cfg(feature = "json")]
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        loop {
            match crate::json::decode(self.recv().await?) {
                crate::json::Decoded::Skip => continue,
                crate::json::Decoded::End => return None,
                crate::json::Decoded::Item(item) => return Some(item),
            }
        }
    }

    /// The connection's id.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.id
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.hub.remove(self.id);
        self.outbox.finish();
    }
}

/// Empties one connection's queue into its socket, a batch per flush. On
/// the server's graceful shutdown, sends what is queued, then closes with
/// 1001.
async fn write_loop(
    mut tx: WebSocketSender,
    outbox: Arc<Outbox>,
    shutdown: Option<CancellationToken>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let shutdown = async {
        match shutdown {
            Some(token) => token.cancelled_owned().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown);
    loop {
        let taken = tokio::select! {
            taken = outbox.take(&mut batch, BATCH) => taken,
            () = &mut shutdown => {
                let goodbye = async {
                    // Whatever is queued now goes out before the close.
                    while let Some(Ok(())) = outbox.take(&mut batch, BATCH).now_or_never() {
                        for msg in batch.drain(..) {
                            tx.feed(msg).await?;
                        }
                    }
                    tx.close(crate::close_code::AWAY, "server shutting down").await
                };
                let _ = tokio::time::timeout(SHUTDOWN_GOODBYE, goodbye).await;
                return;
            }
        };
        match taken {
            Ok(()) => {
                let send = async {
                    for msg in batch.drain(..) {
                        tx.feed(msg).await?;
                    }
                    SinkExt::flush(&mut tx).await
                };
                tokio::select! {
                    sent = send => if sent.is_err() { return },
                    // The peer stopped reading while this batch was stuck.
                    () = outbox.overflowed() => {}
                }
            }
            Err(Some(code)) => {
                // The close frame waits behind what the peer has not read:
                // it gets a bounded while to read it, then the socket goes.
                let _ = tokio::time::timeout(SLOW_GOODBYE, tx.close(code, "slow consumer")).await;
                return;
            }
            Err(None) => {
                // The session is over: write what is owed (a close reply
                // included), then close unless the peer already did.
                let goodbye = async {
                    let _ = SinkExt::flush(&mut tx).await;
                    let _ = tx.close(crate::close_code::NORMAL, "").await;
                };
                let _ = tokio::time::timeout(GOODBYE, goodbye).await;
                return;
            }
        }
    }
}
