//! The task behind a [`Redis`](super::Redis) backplane: one RESP3 link
//! (to a server, or to a Cluster's shards) for publishing, subscribing and
//! receiving, the requests the hub makes of it, and reconnecting.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use redis::{PushKind, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use super::super::{Inbound, Record, Stored};
use super::history;
use super::link::{Flavour, Link, Server};
use super::presence::Presence;
use crate::hub::{NodeId, Position, Present};
use crate::telemetry::Handed;

/// A packet for a channel, and when the hub handed it over.
pub(super) type Publish = (String, Bytes, Handed);

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

/// Waits before reconnecting: 100 ms, doubling up to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

pub(super) struct Task {
    server: Server,
    prefix: String,
    node: NodeId,
    inbound: Inbound,
    publishes: mpsc::Receiver<Publish>,
    changes: mpsc::UnboundedReceiver<Control>,
    /// The channels this hub should be subscribed to.
    wanted: HashSet<String>,
    /// This hub's members of presence rooms.
    presence: Presence,
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
        server: Server,
        prefix: String,
        ttl: Duration,
        (node, inbound): (NodeId, Inbound),
        publishes: mpsc::Receiver<Publish>,
        changes: mpsc::UnboundedReceiver<Control>,
    ) -> Self {
        Self {
            server,
            presence: Presence::new(prefix.clone(), ttl),
            prefix,
            node,
            inbound,
            publishes,
            changes,
            wanted: HashSet::new(),
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
                Ok((link, pushes, flavour)) => {
                    if lost {
                        tracing::info!(node = %self.node, "hub backplane: connected to Redis again");
                    }
                    attempt = 0;
                    match self.serve(link, pushes, flavour).await {
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
                            self.note(control);
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
    fn note(&mut self, control: Control) {
        match control {
            Control::Subscription(channel, true) => {
                self.wanted.insert(channel);
            }
            Control::Subscription(channel, false) => {
                self.wanted.remove(&channel);
            }
            Control::Present { room, id, info } => self.presence.note_present(room, id, info),
            Control::Absent { room, id } => self.presence.note_absent(&room, &id),
            Control::Read { .. } | Control::Record { .. } | Control::Stored { .. } => {}
        }
    }

    /// Connects, subscribes to every wanted channel and records presence
    /// again.
    async fn connect(
        &mut self,
    ) -> RedisResult<(Link, mpsc::UnboundedReceiver<redis::PushInfo>, Flavour)> {
        let (tx, pushes) = mpsc::unbounded_channel();
        let (mut link, flavour) = self.server.connect(tx).await?;
        // What changed while disconnected is in `wanted` once drained;
        // requests asked while connecting run once connected.
        while let Ok(control) = self.changes.try_recv() {
            match control {
                Control::Read { .. } | Control::Record { .. } | Control::Stored { .. } => {
                    self.asked.push(control);
                }
                control => self.note(control),
            }
        }
        for channel in &self.wanted {
            link.subscription(flavour, channel, true).await?;
        }
        self.presence.refresh(&mut link).await?;
        Ok((link, pushes, flavour))
    }

    /// Runs one control request against Redis.
    async fn control(
        &mut self,
        link: &mut Link,
        flavour: Flavour,
        control: Control,
    ) -> RedisResult<()> {
        match control {
            Control::Subscription(channel, on) => {
                let done = link.subscription(flavour, &channel, on).await;
                self.note(Control::Subscription(channel, on));
                done
            }
            Control::Present { room, id, info } => self.presence.add(link, room, id, info).await,
            Control::Absent { room, id } => self.presence.remove(link, &room, &id).await,
            Control::Read { room, reply } => {
                answer(reply, self.presence.read(link, &room).await.map(Some))
            }
            Control::Record { record, reply } => answer(
                reply,
                history::record(link, &self.prefix, flavour, &record).await,
            ),
            Control::Stored {
                room,
                max_age,
                reply,
            } => answer(
                reply,
                history::stored(link, &self.prefix, &room, max_age).await,
            ),
        }
    }

    /// Publishes `first` and whatever else is waiting, up to [`BATCH`],
    /// in order (in one pipeline on a server, one per slot on a Cluster).
    async fn publish(
        &mut self,
        link: &mut Link,
        flavour: Flavour,
        first: Publish,
    ) -> RedisResult<()> {
        // What the hub asked before this publish is done first: a join
        // event must not overtake the presence record it announces (on a
        // Cluster the two go to different shards).
        while let Ok(control) = self.changes.try_recv() {
            if let Err(err) = self.control(link, flavour, control).await {
                crate::telemetry::backplane_failed(1);
                return Err(err);
            }
        }
        let handed = first.2;
        let waiting = std::iter::from_fn(|| self.publishes.try_recv().ok());
        let mut pipes = link.pipelines();
        let mut batch = 0;
        for (channel, packet, _) in std::iter::once(first).chain(waiting).take(BATCH) {
            pipes
                .on(&channel)
                .cmd(flavour.publish)
                .arg(&channel)
                .arg(packet.as_ref())
                .ignore();
            batch += 1;
        }
        if let Err(err) = pipes.exec(link).await {
            crate::telemetry::backplane_failed(batch as u64);
            tracing::warn!(
                messages = batch,
                "hub backplane: publish failed; messages not sent to other processes"
            );
            return Err(err);
        }
        crate::telemetry::backplane_lag(handed);
        Ok(())
    }

    async fn serve(
        &mut self,
        mut link: Link,
        mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
        flavour: Flavour,
    ) -> Ended {
        let mut refresh = tokio::time::interval(self.presence.refresh_interval());
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.reset();
        for control in std::mem::take(&mut self.asked) {
            if let Err(err) = self.control(&mut link, flavour, control).await {
                return Ended::Lost(err);
            }
        }
        loop {
            let done = tokio::select! {
                control = self.changes.recv() => {
                    let Some(control) = control else { return Ended::Done };
                    self.control(&mut link, flavour, control).await
                }
                _ = refresh.tick() => self.presence.refresh(&mut link).await,
                first = self.publishes.recv() => {
                    let Some(first) = first else { return Ended::Done };
                    self.publish(&mut link, flavour, first).await
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
                        // On a Cluster, one shard's connection: redis-rs
                        // would reconnect that shard alone, but starting
                        // over also records presence again at once.
                        PushKind::Disconnection => return Ended::Lost(disconnected()),
                        _ => {}
                    }
                    Ok(())
                }
            };
            if let Err(err) = done {
                return Ended::Lost(err);
            }
        }
    }
}

/// Sends a request's answer (`None` when it failed) and hands back the
/// failure.
fn answer<T>(reply: oneshot::Sender<Option<T>>, result: RedisResult<Option<T>>) -> RedisResult<()> {
    match result {
        Ok(value) => {
            let _ = reply.send(value);
            Ok(())
        }
        Err(err) => {
            let _ = reply.send(None);
            Err(err)
        }
    }
}

fn disconnected() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection to Redis closed",
    ))
}
