//! [`Redis`]: the backplane over Redis pub/sub.
//!
//! One task per hub owns one RESP3 connection, on which it publishes and
//! subscribes and receives what is published (RESP3 carries both on one
//! connection). A room's channel is subscribed while the room has members
//! on this process, so a process receives none of a room's traffic when it
//! has no member in it. On Redis 7 and later the channels are sharded
//! (`SPUBLISH`/`SSUBSCRIBE`), which a Redis Cluster spreads over its
//! shards; before 7, plain `PUBLISH`/`SUBSCRIBE`.
//!
//! When Redis is unreachable, local delivery goes on, what was to cross is
//! dropped (and the drops are logged), and the task reconnects with a
//! growing delay, then subscribes again to every channel it should be on.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use redis::{IntoConnectionInfo, ProtocolVersion, PushKind, Value};
use tokio::sync::mpsc;

use super::{Backplane, Channel, Inbound};
use crate::error::Error;
use crate::hub::NodeId;

/// Publishes waiting to be sent; past this, new ones are dropped.
const PUBLISH_QUEUE: usize = 4096;
/// At most this many publishes go in one pipeline.
const BATCH: usize = 256;

/// A backplane over a Redis server (6.0 or later: it speaks RESP3), shared
/// by every process whose hub uses the same server and prefix.
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
    client: redis::Client,
    prefix: String,
    runtime: tokio::runtime::Handle,
    /// Set by `attach`: the task's inputs.
    started: Mutex<Option<Inputs>>,
}

struct Inputs {
    publish: mpsc::Sender<(String, Bytes)>,
    subscriptions: mpsc::UnboundedSender<(String, bool)>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("server", &self.client.get_connection_info().addr())
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
        let runtime = tokio::runtime::Handle::try_current().map_err(Error::backplane_runtime)?;
        Ok(Self {
            client,
            prefix: "hyperws".to_owned(),
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
        let (subscriptions, changes) = mpsc::unbounded_channel();
        *started = Some(Inputs {
            publish,
            subscriptions,
        });
        let task = Task {
            client: self.client.clone(),
            node,
            inbound,
            publishes,
            changes,
            wanted: HashSet::new(),
            dropped: 0,
        };
        self.runtime.spawn(task.run());
    }

    fn publish(&self, channel: Channel<'_>, packet: Bytes) {
        let name = channel.name(&self.prefix);
        let queued = self.inputs(|i| i.publish.try_send((name, packet)).is_ok());
        if queued == Some(false) {
            tracing::warn!(
                "hub backplane: publish queue full, message not sent to other processes"
            );
        }
    }

    fn subscribe(&self, channel: Channel<'_>) {
        let name = channel.name(&self.prefix);
        self.inputs(|i| i.subscriptions.send((name, true)));
    }

    fn unsubscribe(&self, channel: Channel<'_>) {
        let name = channel.name(&self.prefix);
        self.inputs(|i| i.subscriptions.send((name, false)));
    }
}

/// Waits before reconnecting: 100 ms, doubling up to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// The commands of one flavour of pub/sub.
#[derive(Clone, Copy)]
struct Flavour {
    publish: &'static str,
    subscribe: &'static str,
    unsubscribe: &'static str,
}

const SHARDED: Flavour = Flavour {
    publish: "SPUBLISH",
    subscribe: "SSUBSCRIBE",
    unsubscribe: "SUNSUBSCRIBE",
};
const PLAIN: Flavour = Flavour {
    publish: "PUBLISH",
    subscribe: "SUBSCRIBE",
    unsubscribe: "UNSUBSCRIBE",
};

struct Task {
    client: redis::Client,
    node: NodeId,
    inbound: Inbound,
    publishes: mpsc::Receiver<(String, Bytes)>,
    changes: mpsc::UnboundedReceiver<(String, bool)>,
    /// The channels this hub should be subscribed to.
    wanted: HashSet<String>,
    /// Publishes dropped while Redis was unreachable, not yet logged.
    dropped: u64,
}

/// Why a connected session ended.
enum Ended {
    /// The hub is gone.
    Done,
    /// The connection failed: reconnect.
    Lost(redis::RedisError),
}

impl Task {
    async fn run(mut self) {
        let mut attempt = 0;
        let mut lost = false;
        loop {
            if self.inbound.is_closed() {
                return;
            }
            match self.connect().await {
                Ok((conn, pushes, flavour)) => {
                    if lost {
                        tracing::info!(node = %self.node, "hub backplane: connected to Redis again");
                    }
                    attempt = 0;
                    match self.serve(conn, pushes, flavour).await {
                        Ended::Done => return,
                        Ended::Lost(err) => {
                            tracing::warn!(%err, "hub backplane: lost Redis; reconnecting");
                            lost = true;
                        }
                    }
                }
                Err(err) => {
                    if attempt == 0 {
                        tracing::warn!(%err, "hub backplane: cannot reach Redis; retrying");
                    }
                    lost = true;
                    // Meanwhile: follow the subscriptions, drop publishes.
                    let wait = tokio::time::sleep(backoff(attempt));
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            () = &mut wait => break,
                            change = self.changes.recv() => match change {
                                Some(change) => self.note(change),
                                None => return,
                            },
                            publish = self.publishes.recv() => match publish {
                                Some(_) => self.dropped += 1,
                                None => return,
                            },
                        }
                    }
                    if self.dropped > 0 {
                        tracing::warn!(dropped = self.dropped, "hub backplane: Redis unreachable; messages not sent to other processes");
                        self.dropped = 0;
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn note(&mut self, (channel, on): (String, bool)) {
        if on {
            self.wanted.insert(channel);
        } else {
            self.wanted.remove(&channel);
        }
    }

    /// Connects, picks the flavour, and subscribes to every wanted channel.
    async fn connect(
        &mut self,
    ) -> redis::RedisResult<(
        redis::aio::MultiplexedConnection,
        mpsc::UnboundedReceiver<redis::PushInfo>,
        Flavour,
    )> {
        let (tx, pushes) = mpsc::unbounded_channel();
        let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        let flavour = if major_version(&info) >= 7 {
            SHARDED
        } else {
            PLAIN
        };
        // What changed while disconnected is in `wanted` once drained.
        while let Ok(change) = self.changes.try_recv() {
            self.note(change);
        }
        for channel in &self.wanted {
            subscribe_like(&mut conn, flavour.subscribe, channel).await?;
        }
        Ok((conn, pushes, flavour))
    }

    async fn serve(
        &mut self,
        mut conn: redis::aio::MultiplexedConnection,
        mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
        flavour: Flavour,
    ) -> Ended {
        loop {
            tokio::select! {
                change = self.changes.recv() => {
                    let Some(change) = change else { return Ended::Done };
                    let command = if change.1 { flavour.subscribe } else { flavour.unsubscribe };
                    let channel = change.0.clone();
                    self.note(change);
                    if let Err(err) = subscribe_like(&mut conn, command, &channel).await {
                        return Ended::Lost(err);
                    }
                }
                first = self.publishes.recv() => {
                    let Some(first) = first else { return Ended::Done };
                    // Everything waiting goes in one pipeline, in order.
                    let mut pipe = redis::pipe();
                    pipe.cmd(flavour.publish).arg(&first.0).arg(first.1.as_ref()).ignore();
                    let mut batch = 1;
                    while batch < BATCH {
                        let Ok((channel, packet)) = self.publishes.try_recv() else { break };
                        pipe.cmd(flavour.publish).arg(&channel).arg(packet.as_ref()).ignore();
                        batch += 1;
                    }
                    if let Err(err) = pipe.exec_async(&mut conn).await {
                        tracing::warn!(messages = batch, "hub backplane: publish failed; messages not sent to other processes");
                        return Ended::Lost(err);
                    }
                }
                push = pushes.recv() => {
                    let Some(push) = push else {
                        return Ended::Lost(disconnected());
                    };
                    match push.kind {
                        PushKind::Message | PushKind::SMessage => {
                            if let Some(Value::BulkString(payload)) = push.data.get(1) {
                                self.inbound.deliver(payload);
                            }
                            if self.inbound.is_closed() {
                                return Ended::Done;
                            }
                        }
                        PushKind::Disconnection => return Ended::Lost(disconnected()),
                        _ => {}
                    }
                }
            }
        }
    }
}

fn disconnected() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection to Redis closed",
    ))
}

/// Subscribes or unsubscribes one channel. One channel per command: its
/// confirmation is the command's reply.
async fn subscribe_like(
    conn: &mut redis::aio::MultiplexedConnection,
    command: &str,
    channel: &str,
) -> redis::RedisResult<()> {
    redis::cmd(command).arg(channel).exec_async(conn).await
}

/// The major version in `INFO server`'s `redis_version:7.0.15` line.
fn major_version(info: &str) -> u32 {
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .and_then(|v| v.trim().split('.').next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_major_version() {
        assert_eq!(
            major_version("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n"),
            7
        );
        assert_eq!(major_version("redis_version:6.2.1"), 6);
        assert_eq!(major_version("nothing"), 0);
    }
}
