//! Room history in Redis Streams: the two scripts the backplane task runs
//! (record, read) and the reading of what the read returns.

use bytes::Bytes;
use redis::Value;

use super::super::Stored;
use crate::hub::{Position, Recorded};
use crate::message::{Message, Utf8Bytes};

/// Appends a message to a room's stream at the next offset (a new epoch
/// when the history was lost), trims it, renews both keys' expiry, and
/// publishes the recorded send with its position spliced in: one step, so
/// that positions and publishes come in the same order.
///
/// KEYS: stream, meta. ARGV: new epoch, max length, TTL (ms), kind, payload,
/// channel, packet head, packet tail, publish command.
pub(super) const RECORD: &str = r"
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
pub(super) const STORED: &str = r"
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
pub(super) fn stored_from(value: Value, max_age_ms: u64) -> Option<Option<Stored>> {
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
