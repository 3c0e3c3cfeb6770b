//! Presence in Redis: per room, a sorted set of connection ids scored by
//! when they expire and a hash of their infos, both under the room's hash
//! tag (`{PREFIX:presence:ROOM}`, one Cluster slot); this process's own
//! members, refreshed every third of the TTL and recorded again after a
//! reconnect; and the read, which prunes what has expired first.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::RedisResult;

use super::link::{Link, Pipelines};
use crate::hub::backplane::escape_braces;
use crate::hub::Present;

/// Prunes what has expired, then lists the members and their infos.
const READ: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
if #ids == 0 then
  redis.call('DEL', KEYS[2])
  return {{}, {}}
end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
";

/// This process's side of presence.
pub(super) struct Presence {
    prefix: String,
    ttl: Duration,
    /// This hub's members of presence rooms: room -> id -> info.
    present: HashMap<String, HashMap<String, String>>,
    /// Members that left while Redis was unreachable, to remove there.
    gone: Vec<(String, String)>,
}

impl Presence {
    pub(super) fn new(prefix: String, ttl: Duration) -> Self {
        Self {
            prefix,
            ttl,
            present: HashMap::new(),
            gone: Vec::new(),
        }
    }

    /// How often the members here are refreshed.
    pub(super) fn refresh_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// A room's keys: the sorted set and the info hash.
    fn keys(&self, room: &str) -> (String, String) {
        let set = format!("{{{}:presence:{}}}", self.prefix, escape_braces(room));
        let info = format!("{set}:info");
        (set, info)
    }

    /// Notes that `id` is in `room` (to record again after a reconnect).
    pub(super) fn note_present(&mut self, room: String, id: String, info: String) {
        self.present.entry(room).or_default().insert(id, info);
    }

    /// Notes that `id` left `room`; it stays to be removed from Redis
    /// until [`removed`](Self::removed) says it was.
    pub(super) fn note_absent(&mut self, room: &str, id: &str) {
        if let Some(members) = self.present.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                self.present.remove(room);
            }
        }
        self.gone.push((room.to_owned(), id.to_owned()));
    }

    /// Records `id` in `room` with `info`, expiring one TTL from now.
    pub(super) async fn add(
        &mut self,
        link: &mut Link,
        room: String,
        id: String,
        info: String,
    ) -> RedisResult<()> {
        let mut pipes = link.pipelines();
        self.add_commands(
            &mut pipes,
            now_ms() + ttl_ms(self.ttl),
            &room,
            [(&id, &info)],
        );
        self.note_present(room, id, info);
        pipes.exec(link).await
    }

    /// Removes `id` from `room`.
    pub(super) async fn remove(
        &mut self,
        link: &mut Link,
        room: &str,
        id: &str,
    ) -> RedisResult<()> {
        self.note_absent(room, id);
        let mut pipes = link.pipelines();
        self.remove_commands(&mut pipes, room, id);
        pipes.exec(link).await?;
        self.gone
            .retain(|(r, i)| (r.as_str(), i.as_str()) != (room, id));
        Ok(())
    }

    /// Removes who left while Redis was away, and moves the expiry of
    /// every member here one TTL ahead (recording them again, if Redis
    /// lost them).
    pub(super) async fn refresh(&mut self, link: &mut Link) -> RedisResult<()> {
        let mut pipes = link.pipelines();
        for (room, id) in &self.gone {
            self.remove_commands(&mut pipes, room, id);
        }
        let expiry = now_ms() + ttl_ms(self.ttl);
        for (room, members) in &self.present {
            self.add_commands(&mut pipes, expiry, room, members);
        }
        if pipes.is_empty() {
            return Ok(());
        }
        pipes.exec(link).await?;
        self.gone.clear();
        Ok(())
    }

    /// Everyone Redis lists in `room`, after pruning the expired.
    pub(super) async fn read(&self, link: &mut Link, room: &str) -> RedisResult<Vec<Present>> {
        let (set, info) = self.keys(room);
        let (ids, infos): (Vec<String>, Vec<Option<String>>) = redis::cmd("EVAL")
            .arg(READ)
            .arg(2)
            .arg(&set)
            .arg(&info)
            .arg(now_ms())
            .query_async(link)
            .await?;
        Ok(ids
            .iter()
            .zip(infos)
            .filter_map(|(id, info)| {
                Some(Present {
                    id: id.parse().ok()?,
                    info: info.unwrap_or_default(),
                })
            })
            .collect())
    }

    fn add_commands<'a>(
        &self,
        pipes: &mut Pipelines,
        expiry: u64,
        room: &str,
        members: impl IntoIterator<Item = (&'a String, &'a String)> + Clone,
    ) {
        let (set, info) = self.keys(room);
        let pipe = pipes.on(&set);
        let zadd = pipe.cmd("ZADD").arg(&set);
        for (id, _) in members.clone() {
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

    fn remove_commands(&self, pipes: &mut Pipelines, room: &str, id: &str) {
        let (set, info) = self.keys(room);
        let pipe = pipes.on(&set);
        pipe.cmd("ZREM").arg(&set).arg(id).ignore();
        pipe.cmd("HDEL").arg(&info).arg(id).ignore();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `ttl` in milliseconds, for Redis.
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 4)
}
