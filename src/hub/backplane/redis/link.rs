//! What the backplane's task talks to: one Redis server, or a Redis
//! Cluster (redis-rs keeps a connection per shard and routes each command
//! by its key or shard channel), and the pipelines that must be cut so
//! that each stays on one Cluster slot.

use std::fmt;

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, PushInfo, RedisFuture, RedisResult, Value};
use tokio::sync::mpsc;

/// The commands of one flavour of pub/sub.
#[derive(Clone, Copy)]
pub(super) struct Flavour {
    pub(super) publish: &'static str,
    sharded: bool,
}

/// `SPUBLISH`/`SSUBSCRIBE` (Redis 7 and later): on a Cluster each channel
/// lives on its slot's shard.
const SHARDED: Flavour = Flavour {
    publish: "SPUBLISH",
    sharded: true,
};
/// `PUBLISH`/`SUBSCRIBE`: on a Cluster every shard carries every message.
const PLAIN: Flavour = Flavour {
    publish: "PUBLISH",
    sharded: false,
};

impl Flavour {
    /// The flavour a server answering `INFO server` with `info` has.
    fn of(info: &str) -> Self {
        if major_version(info) >= 7 {
            SHARDED
        } else {
            PLAIN
        }
    }

    fn subscription(self, on: bool) -> &'static str {
        match (self.sharded, on) {
            (true, true) => "SSUBSCRIBE",
            (true, false) => "SUNSUBSCRIBE",
            (false, true) => "SUBSCRIBE",
            (false, false) => "UNSUBSCRIBE",
        }
    }
}

/// Where the backplane connects.
#[derive(Clone)]
pub(super) enum Server {
    /// One server (or a primary behind a proxy).
    Single(redis::Client),
    /// The nodes a Cluster is discovered from.
    Cluster(Box<ClusterClient>),
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(client) => write!(f, "{}", client.get_connection_info().addr()),
            Self::Cluster(_) => f.write_str("Redis Cluster"),
        }
    }
}

impl Server {
    /// Connects with pushes (what is published, disconnections) going to
    /// `pushes`, and finds the server's pub/sub flavour.
    pub(super) async fn connect(
        &self,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> RedisResult<(Link, Flavour)> {
        let mut info = redis::cmd("INFO");
        info.arg("server");
        match self {
            Self::Single(client) => {
                let config = redis::AsyncConnectionConfig::new().set_push_sender(pushes);
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                let info: String = info.query_async(&mut conn).await?;
                Ok((Link::Single(conn), Flavour::of(&info)))
            }
            Self::Cluster(client) => {
                let config = ClusterConfig::new().set_push_sender(pushes);
                let mut conn = client.get_async_connection_with_config(config).await?;
                // One node's answer: a Cluster's nodes run one version.
                let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                let info: String =
                    redis::from_redis_value(conn.route_command(info, random).await?)?;
                Ok((Link::Cluster(conn), Flavour::of(&info)))
            }
        }
    }
}

/// A connection to a [`Server`].
#[derive(Clone)]
pub(super) enum Link {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Link {
    /// Subscribes to `channel`, or unsubscribes. On one server, one
    /// channel per command, so that its confirmation is the reply; on a
    /// Cluster, redis-rs sends it to the channel's shard and subscribes
    /// again after it reconnects a shard.
    pub(super) async fn subscription(
        &mut self,
        flavour: Flavour,
        channel: &str,
        on: bool,
    ) -> RedisResult<()> {
        match self {
            Self::Single(conn) => {
                redis::cmd(flavour.subscription(on))
                    .arg(channel)
                    .exec_async(conn)
                    .await
            }
            Self::Cluster(conn) => match (flavour.sharded, on) {
                (true, true) => conn.ssubscribe(channel).await,
                (true, false) => conn.sunsubscribe(channel).await,
                (false, true) => conn.subscribe(channel).await,
                (false, false) => conn.unsubscribe(channel).await,
            },
        }
    }

    /// Pipelines for this link: one on a single server, one per slot on a
    /// Cluster (where a pipeline must not span slots).
    pub(super) fn pipelines(&self) -> Pipelines {
        Pipelines {
            per_slot: matches!(self, Self::Cluster(_)),
            groups: Vec::new(),
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Commands to send in as few pipelines as the link allows. On a single
/// server everything goes in one, in the order given. On a Cluster they
/// are grouped by the slot their key names: the order holds within a slot
/// (and so within a channel), not across slots, which different shards
/// serve anyway.
pub(super) struct Pipelines {
    per_slot: bool,
    /// The hash tag of each group's keys, and its pipeline.
    groups: Vec<(String, Pipeline)>,
}

impl Pipelines {
    /// The pipeline for commands on `key` (a key or a shard channel).
    pub(super) fn on(&mut self, key: &str) -> &mut Pipeline {
        let tag = if self.per_slot { hash_tag(key) } else { "" };
        let index = match self.groups.iter().position(|(t, _)| t == tag) {
            Some(index) => index,
            None => {
                self.groups.push((tag.to_owned(), redis::pipe()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[index].1
    }

    /// Whether no command was added.
    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Sends every pipeline (a Cluster's at once, one per slot) and
    /// waits for all; the first error, if any. An empty one sends nothing
    /// (redis-rs would wait forever for its zero replies).
    pub(super) async fn exec(self, link: &mut Link) -> RedisResult<()> {
        match <[_; 1]>::try_from(self.groups) {
            Ok([(_, pipe)]) => pipe.exec_async(link).await,
            Err(groups) => {
                try_join_all(groups.into_iter().map(|(_, pipe)| {
                    let mut link = link.clone();
                    async move { pipe.exec_async(&mut link).await }
                }))
                .await?;
                Ok(())
            }
        }
    }
}

/// The part of `key` a Cluster hashes to find its slot: what is between
/// the first `{` and the next `}` when that is not empty, else the whole.
fn hash_tag(key: &str) -> &str {
    key.find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key)
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

    #[test]
    fn finds_the_hash_tag_as_a_cluster_does() {
        assert_eq!(hash_tag("{app:presence:lobby}:info"), "app:presence:lobby");
        assert_eq!(hash_tag("app:room:lobby"), "app:room:lobby");
        assert_eq!(hash_tag("a{}b{c}"), "a{}b{c}");
        assert_eq!(hash_tag("a{b}{c}"), "b");
        assert_eq!(hash_tag("a{bc"), "a{bc");
        assert_eq!(hash_tag("a}b{c}"), "c");
    }

    #[test]
    fn one_pipeline_on_one_server_one_per_slot_on_a_cluster() {
        let mut single = Pipelines {
            per_slot: false,
            groups: Vec::new(),
        };
        let mut cluster = Pipelines {
            per_slot: true,
            groups: Vec::new(),
        };
        assert!(single.is_empty() && cluster.is_empty());
        for key in ["p:room:a", "{p:room:a}:history", "p:room:b", "p:all"] {
            single.on(key).cmd("PING");
            cluster.on(key).cmd("PING");
        }
        assert_eq!(single.groups.len(), 1);
        let tags: Vec<&str> = cluster.groups.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tags, ["p:room:a", "p:room:b", "p:all"]);
    }
}
