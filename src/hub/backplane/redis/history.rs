//! Room history in Redis Streams: the two scripts the backplane task runs
//! (record, read) and the reading of what the read returns.

use std::time::Duration;

use bytes::Bytes;
use redis::{RedisResult, Value};

use super::super::{Channel, Record, Stored};
use super::link::{Flavour, Link};
use super::presence::ttl_ms;
use crate::hub::{Position, Recorded};
use crate::message::{Message, Utf8Bytes};

/// A room's history keys: its stream and its meta hash (epoch, last
/// offset), tagged with the room's channel, so that on a Cluster the
/// record script's keys and its publish share a slot.
fn keys(prefix: &str, room: &str) -> (String, String) {
    let channel = Channel::Room(room).name(prefix);
    (
        format!("{{{channel}}}:history"),
        format!("{{{channel}}}:meta"),
    )
}

/// Records `record` and publishes it (see [`RECORD`]); its position, or
/// `None` when the script's answer cannot be read.
pub(super) async fn record(
    link: &mut Link,
    prefix: &str,
    flavour: Flavour,
    record: &Record,
) -> RedisResult<Option<Position>> {
    let (stream, meta) = keys(prefix, &record.room);
    let channel = Channel::Room(&record.room).name(prefix);
    let (kind, payload) = match &record.message {
        Message::Binary(data) => ("b", data.clone()),
        other => (
            "t",
            Bytes::copy_from_slice(other.as_text().unwrap_or_default().as_bytes()),
        ),
    };
    let (epoch, offset): (String, u64) = redis::Script::new(RECORD)
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
        .invoke_async(link)
        .await?;
    Ok(u64::from_str_radix(&epoch, 16)
        .ok()
        .map(|epoch| Position::new(epoch, offset)))
}

/// What `room`'s history holds, as [`stored_from`] reads it.
pub(super) async fn stored(
    link: &mut Link,
    prefix: &str,
    room: &str,
    max_age: Duration,
) -> RedisResult<Option<Option<Stored>>> {
    let (stream, meta) = keys(prefix, room);
    let value: Value = redis::Script::new(STORED)
        .key(&stream)
        .key(&meta)
        .invoke_async(link)
        .await?;
    let stored = stored_from(value, ttl_ms(max_age));
    if stored.is_none() {
        tracing::warn!(%room, "hub backplane: unreadable history in Redis");
    }
    Ok(stored)
}

/// Appends a message to a room's stream at the next offset (a new epoch
/// when the history was lost), trims it, renews both keys' expiry, and
/// publishes the recorded send with its position spliced in: one step, so
/// that positions and publishes come in the same order.
///
/// KEYS: stream, meta. ARGV: new epoch, max length, TTL (ms), kind, payload,
/// channel, packet head, packet tail, publish command.
const RECORD: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 'last', 1)
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '0-' .. offset, 'k', ARGV[4], 'm', ARGV[5], 't', ms)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local position = epoch .. ':' .. offset
redis.call(ARGV[9], ARGV[6], ARGV[7] .. string.char(#position) .. position .. ARGV[8])
return {epoch, offset}
";

/// A room's history: `{}` when it has none, else its epoch, last offset,
/// Redis's clock (ms) and the stream's entries.
const STORED: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  return {}
end
local last = redis.call('HGET', KEYS[2], 'last')
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return {epoch, last, ms, redis.call('XRANGE', KEYS[1], '-', '+')}
";

/// A room's history from what the `STORED` script returned: `Some(None)`
/// when the room has none, `None` when the reply cannot be read. Messages
/// older than `max_age_ms` by Redis's clock are left out.
fn stored_from(value: Value, max_age_ms: u64) -> Option<Option<Stored>> {
    let Value::Array(parts) = value else {
        return None;
    };
    if parts.is_empty() {
        return Some(None);
    }
    let [epoch, last, now, entries] = <[Value; 4]>::try_from(parts).ok()?;
    let epoch = u64::from_str_radix(&text(&epoch)?, 16).ok()?;
    let last: u64 = text(&last)?.parse().ok()?;
    let Value::Int(now) = now else { return None };
    let oldest = u64::try_from(now).ok()?.saturating_sub(max_age_ms);
    let Value::Array(entries) = entries else {
        return None;
    };
    let mut messages = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(entry) = entry else {
            return None;
        };
        let [id, Value::Array(fields)] = <[Value; 2]>::try_from(entry).ok()? else {
            return None;
        };
        // Ids are `0-OFFSET`.
        let offset: u64 = text(&id)?.strip_prefix("0-")?.parse().ok()?;
        let (mut kind, mut payload, mut at) = (None, None, None);
        for pair in fields.chunks(2) {
            let [name, value] = pair else { return None };
            match text(name)?.as_str() {
                "k" => kind = text(value),
                "m" => payload = bytes(value),
                "t" => at = text(value)?.parse::<u64>().ok(),
                _ => {}
            }
        }
        if at? <= oldest {
            continue;
        }
        let message = match kind?.as_str() {
            "b" => Message::Binary(payload?),
            _ => Message::Text(Utf8Bytes::try_from(payload?).ok()?),
        };
        messages.push(Recorded {
            position: Position::new(epoch, offset),
            message,
        });
    }
    Some(Some(Stored {
        epoch,
        last,
        messages,
    }))
}

fn bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::BulkString(data) => Some(Bytes::copy_from_slice(data)),
        Value::SimpleString(text) => Some(Bytes::copy_from_slice(text.as_bytes())),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Int(n) => Some(n.to_string()),
        other => String::from_utf8(bytes(other)?.to_vec()).ok(),
    }
}
