//! [`Redis`]: the backplane over Redis pub/sub.
//!
//! One task per hub owns one RESP3 connection, on which it publishes and
//! subscribes and receives what is published (RESP3 carries both on one
//! connection); on a Redis Cluster ([`Redis::cluster`]), one per shard,
//! kept by redis-rs, each command sent to the shard of its slot. A room's
//! channel is subscribed while the room has members on this process, so a
//! process receives none of a room's traffic when it has no member in it.
//! On Redis 7 and later the channels are sharded (`SPUBLISH`/`SSUBSCRIBE`,
//! the commands a Redis Cluster spreads over its shards); before 7, plain
//! `PUBLISH`/`SUBSCRIBE`.
//!
//! - `link`: the server or the Cluster, and pipelines cut per slot;
//! - `task`: the task, its requests, reconnecting;
//! - `presence` and `history`: the keys and scripts of each.
//!
//! Presence lives in two keys per room, `{PREFIX:presence:ROOM}` (a sorted
//! set of connection ids scored by when they expire) and
//! `{PREFIX:presence:ROOM}:info` (a hash of their infos); the braces keep
//! both on one Cluster slot. Each process refreshes the expiry of its own
//! members every third of the TTL; a read first prunes what has expired,
//! so a crashed process's members are gone within the TTL.
//!
//! Room history (with [`HubBuilder::history`](crate::hub::HubBuilder::history))
//! is kept in Redis Streams, shared by every process: see
//! `docs/realtime.md`.
//!
//! When Redis is unreachable, local delivery goes on, what was to cross is
//! dropped (and the drops are logged), presence reads answer "unknown",
//! and the task reconnects with a growing delay, then subscribes again to
//! every channel it should be on and records its members' presence again.

mod history;
mod link;
mod presence;
mod task;

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use redis::{IntoConnectionInfo, ProtocolVersion};
use tokio::sync::{mpsc, oneshot};

use super::{Backplane, Channel, Inbound, PresenceFuture, Record, RecordFuture, StoredFuture};
use crate::error::Error;
use crate::hub::{ConnectionId, NodeId};
use link::Server;
use task::{Control, Publish, Task};

/// Publishes waiting to be sent; past this, new ones are dropped.
const PUBLISH_QUEUE: usize = 4096;

/// A backplane over a Redis server, or a Redis Cluster (6.0 or later: it
/// speaks RESP3), shared by every process whose hub uses the same Redis
/// and prefix.
///
/// ```no_run
/// # async fn run() -> Result<(), hyperws::Error> {
/// use hyperws::hub::{backplane::Redis, Hub};
///
/// let hub = Hub::builder()
///     .backplane(Redis::new("redis://127.0.0.1:6379/")?.prefix("chat"))
///     .build();
/// # Ok(()) }
/// ```
pub struct Redis {
    server: Server,
    prefix: String,
    presence_ttl: Duration,
    runtime: tokio::runtime::Handle,
    /// Set by `attach`: the task's inputs.
    started: Mutex<Option<Inputs>>,
}

struct Inputs {
    publish: mpsc::Sender<Publish>,
    control: mpsc::UnboundedSender<Control>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A backplane for the Redis at `url` (`redis://host:port/`), with the
    /// channel prefix `hyperws`. Its task runs on the tokio runtime this is
    /// called in, from when a hub is built with it.
    ///
    /// # Errors
    ///
    /// When the URL is not a Redis URL, or when called outside a tokio
    /// runtime. Reaching Redis is not checked here: the backplane connects
    /// in the background and keeps retrying.
    pub fn new(url: &str) -> Result<Self, Error> {
        let info = url.into_connection_info().map_err(Error::backplane)?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client =
            redis::Client::open(info.set_redis_settings(settings)).map_err(Error::backplane)?;
        Self::on(Server::Single(client))
    }

    /// A backplane for the Redis Cluster that `nodes` (`redis://host:port/`
    /// URLs, one or more of its nodes) belong to. The rest of the cluster
    /// is discovered from them, and each command goes to the shard that
    /// serves its slot: a room's channel, its presence and its history
    /// live on that room's shard, so rooms spread over the shards.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), hyperws::Error> {
    /// use hyperws::hub::{backplane::Redis, Hub};
    ///
    /// let nodes = ["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"];
    /// let hub = Hub::builder()
    ///     .backplane(Redis::cluster(nodes)?.prefix("chat"))
    ///     .build();
    /// # Ok(()) }
    /// ```
    ///
    /// On a Cluster, messages keep their order within a room (and within
    /// sends to everyone), not between rooms: two rooms on two shards
    /// reach another process on two connections. A command that the
    /// cluster has not answered within 3 s (redirects and retries
    /// included) counts as Redis lost: the backplane reconnects, as it does
    /// when one server goes away.
    ///
    /// # Errors
    ///
    /// When `nodes` is empty or holds something that is not a Redis URL,
    /// or when called outside a tokio runtime. Reaching the cluster is not
    /// checked here.
    pub fn cluster<I, U>(nodes: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let nodes = nodes
            .into_iter()
            .map(|url| url.as_ref().into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::backplane)?;
        // redis-rs's default retries wait 1.3 s or more each, up to 16
        // times: the task would stall minutes on a cluster that is down.
        // Redirects during a resharding retry fast; a command gets 3 s.
        let client = redis::cluster::ClusterClientBuilder::new(nodes)
            .use_protocol(ProtocolVersion::RESP3)
            .min_retry_wait(20)
            .max_retry_wait(500)
            .overall_response_timeout(Some(Duration::from_secs(3)))
            .build()
            .map_err(Error::backplane)?;
        Self::on(Server::Cluster(Box::new(client)))
    }

    fn on(server: Server) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(Error::backplane_runtime)?;
        Ok(Self {
            server,
            prefix: "hyperws".to_owned(),
            presence_ttl: Duration::from_secs(30),
            runtime,
            started: Mutex::new(None),
        })
    }

    /// The prefix of every channel name (`PREFIX:all`, `PREFIX:room:NAME`,
    /// `PREFIX:node:NODE`). Default: `hyperws`. Give each application its
    /// own when several share one Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a member stays in presence after its process stopped
    /// refreshing it (crashed, or cut off from Redis). Default: 30 s;
    /// at least 3 s. Each process refreshes its members every third of it.
    #[must_use]
    pub fn presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl.max(Duration::from_secs(3));
        self
    }

    /// Sends the task a request made with `request` from its reply
    /// channel; resolves to the answer, or `None` when there is none (no
    /// task, or Redis unreachable).
    fn ask<T: Send + 'static>(
        &self,
        request: impl FnOnce(oneshot::Sender<Option<T>>) -> Control,
    ) -> impl std::future::Future<Output = Option<T>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.inputs(|i| i.control.send(request(reply)).is_ok());
        async move {
            match sent {
                Some(true) => answer.await.ok().flatten(),
                _ => None,
            }
        }
    }

    fn inputs<T>(&self, f: impl FnOnce(&Inputs) -> T) -> Option<T> {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        started.as_ref().map(f)
    }
}

impl Backplane for Redis {
    fn attach(&self, node: NodeId, inbound: Inbound) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if started.is_some() {
            tracing::error!("a Redis backplane was given to two hubs; build one per hub");
            return;
        }
        let (publish, publishes) = mpsc::channel(PUBLISH_QUEUE);
        let (control, changes) = mpsc::unbounded_channel();
        *started = Some(Inputs { publish, control });
        let task = Task::new(
            self.server.clone(),
            self.prefix.clone(),
            self.presence_ttl,
            (node, inbound),
            publishes,
            changes,
        );
        self.runtime.spawn(task.run());
    }

    fn publish(&self, channel: Channel<'_>, packet: Bytes) {
        let name = channel.name(&self.prefix);
        let publish = (name, packet, crate::telemetry::Handed::now());
        let queued = self.inputs(|i| i.publish.try_send(publish).is_ok());
        if queued == Some(false) {
            crate::telemetry::backplane_failed(1);
            tracing::warn!(
                "hub backplane: publish queue full, message not sent to other processes"
            );
        }
    }

    fn subscribe(&self, channel: Channel<'_>) {
        let name = channel.name(&self.prefix);
        self.inputs(|i| i.control.send(Control::Subscription(name, true)));
    }

    fn unsubscribe(&self, channel: Channel<'_>) {
        let name = channel.name(&self.prefix);
        self.inputs(|i| i.control.send(Control::Subscription(name, false)));
    }

    fn present(&self, room: &str, id: ConnectionId, info: &str) {
        let control = Control::Present {
            room: room.to_owned(),
            id: id.to_string(),
            info: info.to_owned(),
        };
        self.inputs(|i| i.control.send(control));
    }

    fn absent(&self, room: &str, id: ConnectionId) {
        let control = Control::Absent {
            room: room.to_owned(),
            id: id.to_string(),
        };
        self.inputs(|i| i.control.send(control));
    }

    fn keeps_history(&self) -> bool {
        true
    }

    fn record(&self, record: Record) -> RecordFuture {
        Box::pin(self.ask(|reply| Control::Record {
            record: Box::new(record),
            reply,
        }))
    }

    fn stored(&self, room: &str, max_age: Duration) -> StoredFuture {
        let room = room.to_owned();
        Box::pin(self.ask(|reply| Control::Stored {
            room,
            max_age,
            reply,
        }))
    }

    fn presence(&self, room: &str) -> PresenceFuture {
        let room = room.to_owned();
        Box::pin(self.ask(|reply| Control::Read { room, reply }))
    }
}
