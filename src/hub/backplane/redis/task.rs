//! The task behind a [`Redis`](super::Redis) backplane: one RESP3
//! connection for publishing, subscribing and receiving, the presence keys
//! and their refresh, and reconnecting.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::{PushKind, Value};
use tokio::sync::{mpsc, oneshot};

use super::super::{Channel, Inbound, Record, Stored};
use super::history::{stored_from, RECORD, STORED};
use crate::hub::{NodeId, Position, Present};
use crate::message::Message;

/// A packet for a channel, and when the hub handed it over.
pub(super) type Publish = (String, Bytes, std::time::Instant);

/// At most this many publishes go in one pipeline.
const BATCH: usize = 256;

/// What the task is asked besides publishing; never dropped.
pub(super) enum Control {
    Subscription(String, bool),
    Present {
        room: String,
        id: String,
        info: String,
    },
    Absent {
        room: String,
        id: String,
    },
    Read {
        room: String,
        reply: oneshot::Sender<Option<Vec<Present>>>,
    },
    Record {
        record: Box<Record>,
        reply: oneshot::Sender<Option<Position>>,
    },
    Stored {
        room: String,
        max_age: Duration,
        reply: oneshot::Sender<Option<Option<Stored>>>,
    },
}

impl Control {
    /// Answers a request that cannot be run (Redis is unreachable);
    /// hands back the others.
    fn refuse(self) -> Option<Self> {
        match self {
            Self::Read { reply, .. } => {
                let _ = reply.send(None);
            }
            Self::Record { reply, .. } => {
                let _ = reply.send(None);
            }
            Self::Stored { reply, .. } => {
                let _ = reply.send(None);
            }
            other => return Some(other),
        }
        None
    }
}

/// Prunes what has expired, then lists the members and their infos.
const READ_PRESENCE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
if #ids == 0 then
  redis.call('DEL', KEYS[2])
  return {{}, {}}
end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

pub(super) struct Task {
    client: redis::Client,
    prefix: String,
    ttl: Duration,
    node: NodeId,
    inbound: Inbound,
    publishes: mpsc::Receiver<Publish>,
    changes: mpsc::UnboundedReceiver<Control>,
    /// The channels this hub should be subscribed to.
    wanted: HashSet<String>,
    /// This hub's members of presence rooms: room -> id -> info.
    present: HashMap<String, HashMap<String, String>>,
    /// Members that left while Redis was unreachable, to remove there.
    gone: Vec<(String, String)>,
    /// Publishes dropped while Redis was unreachable, not yet logged.
    dropped: u64,
    /// Requests that came while connecting, to run once connected.
    asked: Vec<Control>,
}

/// Why a connected session ended.
enum Ended {
    /// The hub is gone.
    Done,
    /// The connection failed: reconnect.
    Lost(redis::RedisError),
}

impl Task {
    pub(super) fn new(
        client: redis::Client,
        prefix: String,
        ttl: Duration,
        (node, inbound): (NodeId, Inbound),
        publishes: mpsc::Receiver<Publish>,
        changes: mpsc::UnboundedReceiver<Control>,
    ) -> Self {
        Self {
            client,
            prefix,
            ttl,
            node,
            inbound,
            publishes,
            changes,
            wanted: HashSet::new(),
            present: HashMap::new(),
            gone: Vec::new(),
            dropped: 0,
            asked: Vec::new(),
        }
    }

    pub(super) async fn run(mut self) {
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
                    for control in std::mem::take(&mut self.asked) {
                        let _ = control.refuse();
                    }
                    lost = true;
                    if !self.wait(backoff(attempt)).await {
                        return;
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Waits out a reconnect delay, following what the hub asks meanwhile
    /// (publishes are dropped, presence reads answer "unknown"); `false`
    /// once the hub is gone.
    async fn wait(&mut self, delay: Duration) -> bool {
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                control = self.changes.recv() => match control {
                    Some(control) => {
                        if let Some(control) = control.refuse() {
                            self.note(&control);
                        }
                    }
                    None => return false,
                },
                publish = self.publishes.recv() => match publish {
                    Some(_) => self.dropped += 1,
                    None => return false,
                },
            }
        }
        if self.dropped > 0 {
            crate::telemetry::backplane_failed(self.dropped);
            tracing::warn!(
                dropped = self.dropped,
                "hub backplane: Redis unreachable; messages not sent to other processes"
            );
            self.dropped = 0;
        }
        true
    }

    /// Keeps the task's own record of what it should be subscribed to and
    /// who is present, so that both can be restored after a reconnect.
    fn note(&mut self, control: &Control) {
        match control {
            Control::Subscription(channel, true) => {
                self.wanted.insert(channel.clone());
            }
            Control::Subscription(channel, false) => {
                self.wanted.remove(channel);
            }
            Control::Present { room, id, info } => {
                let members = self.present.entry(room.clone()).or_default();
                members.insert(id.clone(), info.clone());
            }
            Control::Absent { room, id } => {
                if let Some(members) = self.present.get_mut(room) {
                    members.remove(id);
                    if members.is_empty() {
                        self.present.remove(room);
                    }
                }
                self.gone.push((room.clone(), id.clone()));
            }
            Control::Read { .. } | Control::Record { .. } | Control::Stored { .. } => {}
        }
    }

    fn keys(&self, room: &str) -> (String, String) {
        let set = format!("{{{}:presence:{room}}}", self.prefix);
        let info = format!("{set}:info");
        (set, info)
    }

    /// A room's history keys: its stream and its meta hash (epoch, last
    /// offset), tagged with the room's channel, so that on a Cluster the
    /// record script's keys and its publish share a slot.
    fn history_keys(&self, room: &str) -> (String, String) {
        let channel = Channel::Room(room).name(&self.prefix);
        (
            format!("{{{channel}}}:history"),
            format!("{{{channel}}}:meta"),
        )
    }

    /// Connects, picks the flavour, subscribes to every wanted channel and
    /// records presence again.
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
        // What changed while disconnected is in `wanted` once drained;
        // requests asked while connecting run once connected.
        while let Ok(control) = self.changes.try_recv() {
            match control {
                Control::Read { .. } | Control::Record { .. } | Control::Stored { .. } => {
                    self.asked.push(control);
                }
                control => self.note(&control),
            }
        }
        for channel in &self.wanted {
            subscribe_like(&mut conn, flavour.subscribe, channel).await?;
        }
        self.refresh(&mut conn).await?;
        Ok((conn, pushes, flavour))
    }

    /// Removes who left while Redis was away, and moves the expiry of
    /// every member here one TTL ahead.
    async fn refresh(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        if self.gone.is_empty() && self.present.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (room, id) in &self.gone {
            let (set, info) = self.keys(room);
            pipe.cmd("ZREM").arg(&set).arg(id).ignore();
            pipe.cmd("HDEL").arg(&info).arg(id).ignore();
        }
        let expiry = now_ms() + ttl_ms(self.ttl);
        for (room, members) in &self.present {
            let (set, info) = self.keys(room);
            let zadd = pipe.cmd("ZADD").arg(&set);
            for id in members.keys() {
                zadd.arg(expiry).arg(id);
            }
            zadd.ignore();
            let hset = pipe.cmd("HSET").arg(&info);
            for (id, text) in members {
                hset.arg(id).arg(text);
            }
            hset.ignore();
            // The keys outlive their last refresher by at most two TTLs.
            for key in [&set, &info] {
                pipe.cmd("PEXPIRE")
                    .arg(key)
                    .arg(2 * ttl_ms(self.ttl))
                    .ignore();
            }
        }
        pipe.exec_async(conn).await?;
        self.gone.clear();
        Ok(())
    }

    /// Runs one control request against Redis.
    async fn control(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
        flavour: Flavour,
        control: Control,
    ) -> redis::RedisResult<()> {
        match control {
            Control::Subscription(channel, on) => {
                let command = if on {
                    flavour.subscribe
                } else {
                    flavour.unsubscribe
                };
                self.note(&Control::Subscription(channel.clone(), on));
                subscribe_like(conn, command, &channel).await
            }
            Control::Present { room, id, info } => {
                let (set, key) = self.keys(&room);
                let ttl = ttl_ms(self.ttl);
                let mut pipe = redis::pipe();
                pipe.cmd("ZADD")
                    .arg(&set)
                    .arg(now_ms() + ttl)
                    .arg(&id)
                    .ignore();
                pipe.cmd("HSET").arg(&key).arg(&id).arg(&info).ignore();
                pipe.cmd("PEXPIRE").arg(&set).arg(2 * ttl).ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(2 * ttl).ignore();
                self.note(&Control::Present { room, id, info });
                pipe.exec_async(conn).await
            }
            Control::Absent { room, id } => {
                let (set, key) = self.keys(&room);
                self.note(&Control::Absent {
                    room: room.clone(),
                    id: id.clone(),
                });
                let mut pipe = redis::pipe();
                pipe.cmd("ZREM").arg(&set).arg(&id).ignore();
                pipe.cmd("HDEL").arg(&key).arg(&id).ignore();
                pipe.exec_async(conn).await?;
                self.gone.retain(|(r, i)| (r, i) != (&room, &id));
                Ok(())
            }
            Control::Read { room, reply } => {
                let (set, key) = self.keys(&room);
                let read: redis::RedisResult<(Vec<String>, Vec<Option<String>>)> =
                    redis::cmd("EVAL")
                        .arg(READ_PRESENCE)
                        .arg(2)
                        .arg(&set)
                        .arg(&key)
                        .arg(now_ms())
                        .query_async(conn)
                        .await;
                match read {
                    Ok((ids, infos)) => {
                        self.presence_read(ids, infos, reply);
                        Ok(())
                    }
                    Err(err) => {
                        let _ = reply.send(None);
                        Err(err)
                    }
                }
            }
            Control::Record { record, reply } => {
                let (stream, meta) = self.history_keys(&record.room);
                let channel = Channel::Room(&record.room).name(&self.prefix);
                let (kind, payload) = match &record.message {
                    Message::Binary(data) => ("b", data.clone()),
                    other => (
                        "t",
                        Bytes::copy_from_slice(other.as_text().unwrap_or_default().as_bytes()),
                    ),
                };
                let done: redis::RedisResult<(String, u64)> = redis::Script::new(RECORD)
                    .key(&stream)
                    .key(&meta)
                    .arg(format!("{:016x}", record.new_epoch))
                    .arg(record.max_messages)
                    .arg(ttl_ms(record.max_age).max(1))
                    .arg(kind)
                    .arg(payload.as_ref())
                    .arg(&channel)
                    .arg(record.head.as_ref())
                    .arg(record.tail.as_ref())
                    .arg(flavour.publish)
                    .invoke_async(conn)
                    .await;
                match done {
                    Ok((epoch, offset)) => {
                        let position = u64::from_str_radix(&epoch, 16)
                            .ok()
                            .map(|epoch| Position::new(epoch, offset));
                        let _ = reply.send(position);
                        Ok(())
                    }
                    Err(err) => {
                        let _ = reply.send(None);
                        Err(err)
                    }
                }
            }
            Control::Stored {
                room,
                max_age,
                reply,
            } => {
                let (stream, meta) = self.history_keys(&room);
                let read: redis::RedisResult<Value> = redis::Script::new(STORED)
                    .key(&stream)
                    .key(&meta)
                    .invoke_async(conn)
                    .await;
                match read {
                    Ok(value) => {
                        let stored = stored_from(value, ttl_ms(max_age));
                        if stored.is_none() {
                            tracing::warn!(%room, "hub backplane: unreadable history in Redis");
                        }
                        let _ = reply.send(stored);
                        Ok(())
                    }
                    Err(err) => {
                        let _ = reply.send(None);
                        Err(err)
                    }
                }
            }
        }
    }

    /// Answers a presence read with the members Redis listed.
    fn presence_read(
        &self,
        ids: Vec<String>,
        infos: Vec<Option<String>>,
        reply: oneshot::Sender<Option<Vec<Present>>>,
    ) {
        let members = ids
            .iter()
            .zip(infos)
            .filter_map(|(id, info)| {
                Some(Present {
                    id: id.parse().ok()?,
                    info: info.unwrap_or_default(),
                })
            })
            .collect();
        let _ = reply.send(Some(members));
    }

    async fn serve(
        &mut self,
        mut conn: redis::aio::MultiplexedConnection,
        mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
        flavour: Flavour,
    ) -> Ended {
        let mut refresh = tokio::time::interval(self.ttl / 3);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.reset();
        for control in std::mem::take(&mut self.asked) {
            if let Err(err) = self.control(&mut conn, flavour, control).await {
                return Ended::Lost(err);
            }
        }
        loop {
            tokio::select! {
                control = self.changes.recv() => {
                    let Some(control) = control else { return Ended::Done };
                    if let Err(err) = self.control(&mut conn, flavour, control).await {
                        return Ended::Lost(err);
                    }
                }
                _ = refresh.tick() => {
                    if let Err(err) = self.refresh(&mut conn).await {
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
                        let Ok((channel, packet, _)) = self.publishes.try_recv() else { break };
                        pipe.cmd(flavour.publish).arg(&channel).arg(packet.as_ref()).ignore();
                        batch += 1;
                    }
                    if let Err(err) = pipe.exec_async(&mut conn).await {
                        crate::telemetry::backplane_failed(batch as u64);
                        tracing::warn!(messages = batch, "hub backplane: publish failed; messages not sent to other processes");
                        return Ended::Lost(err);
                    }
                    crate::telemetry::backplane_lag(first.2.elapsed());
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

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 4)
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
