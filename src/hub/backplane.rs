//! The hub's backplane: `broadcast` and `to_room` reach the members on every
//! process sharing one Redis, over pub/sub.
//!
//! Each process delivers to its own members directly and publishes the
//! message once; every other process delivers what it receives to its
//! members. A process ignores what it published itself, so nothing loops
//! and every member gets each message once. When Redis is unreachable,
//! local delivery goes on, the error is logged, messages for other
//! processes are dropped (and counted in the log), and both tasks reconnect
//! with a growing delay; the subscription is renewed when Redis is back.

use std::hash::{BuildHasher, Hasher};
use std::sync::Weak;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::registry::Registry;
use crate::message::Message;
use crate::message::Utf8Bytes;

/// Envelopes waiting to be published; past this, new ones are dropped.
const PUBLISH_QUEUE: usize = 4096;
const VERSION: u8 = 1;

/// This process's end of the backplane.
pub(crate) struct Backplane {
    node: [u8; 16],
    outgoing: mpsc::Sender<Bytes>,
}

impl std::fmt::Debug for Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backplane").finish_non_exhaustive()
    }
}

/// A random id for this process's hub (SipHash keys are random per
/// process).
fn node_id() -> [u8; 16] {
    let state = std::collections::hash_map::RandomState::new();
    let (mut a, mut b) = (state.build_hasher(), state.build_hasher());
    a.write_u8(1);
    b.write_u8(2);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.finish().to_be_bytes());
    id[8..].copy_from_slice(&b.finish().to_be_bytes());
    id
}

impl Backplane {
    /// Starts the publishing and subscribing tasks; they stop when the hub
    /// is dropped.
    pub(crate) fn start(
        runtime: &tokio::runtime::Handle,
        client: redis::Client,
        channel: String,
        hub: Weak<Registry>,
    ) -> Self {
        let node = node_id();
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        runtime.spawn(publish_loop(client.clone(), channel.clone(), queue));
        runtime.spawn(subscribe_loop(client, channel, node, hub));
        Self { node, outgoing }
    }

    /// Publishes a message for the other processes, without waiting.
    pub(crate) fn publish(&self, msg: &Message, room: Option<&str>) {
        let Some(envelope) = encode(self.node, msg, room) else {
            return;
        };
        if self.outgoing.try_send(envelope).is_err() {
            tracing::warn!(
                "hub backplane: publish queue full, message not sent to other processes"
            );
        }
    }
}

/// `[version][node: 16][text: 1][room length: 2][room][payload]`.
fn encode(node: [u8; 16], msg: &Message, room: Option<&str>) -> Option<Bytes> {
    let (text, payload): (bool, Bytes) = match msg {
        Message::Text(text) => (true, text.as_bytes()),
        Message::Binary(data) => (false, data.clone()),
        // Control frames are per connection, never broadcast.
        _ => return None,
    };
    // The flag, not the length, says whether there is a room: a room
    // named "" must not reach other processes as a broadcast to all.
    let room_flag = if room.is_some() { 2 } else { 0 };
    let room = room.unwrap_or("").as_bytes();
    let room_len = u16::try_from(room.len()).ok()?;
    let mut buf = BytesMut::with_capacity(20 + room.len() + payload.len());
    buf.put_u8(VERSION);
    buf.put_slice(&node);
    buf.put_u8(u8::from(text) | room_flag);
    buf.put_u16(room_len);
    buf.put_slice(room);
    buf.put_slice(&payload);
    Some(buf.freeze())
}

struct Envelope {
    node: [u8; 16],
    room: Option<String>,
    msg: Message,
}

/// Decodes an envelope and encodes it again (for the fuzz target): what
/// decodes must survive a round trip unchanged.
#[cfg(feature = "__fuzz")]
pub(crate) fn round_trip(bytes: &[u8]) {
    let Some(envelope) = decode(bytes) else {
        return;
    };
    let again = encode(envelope.node, &envelope.msg, envelope.room.as_deref())
        .expect("a decoded data message encodes");
    let back = decode(&again).expect("an encoded envelope decodes");
    assert_eq!(back.node, envelope.node);
    assert_eq!(back.room, envelope.room);
    assert_eq!(back.msg, envelope.msg);
}

fn decode(bytes: &[u8]) -> Option<Envelope> {
    if bytes.len() < 20 || bytes[0] != VERSION {
        return None;
    }
    let node: [u8; 16] = bytes[1..17].try_into().ok()?;
    let flags = bytes[17];
    let room_len = usize::from(u16::from_be_bytes([bytes[18], bytes[19]]));
    let room_end = 20usize.checked_add(room_len)?;
    let room = bytes.get(20..room_end)?;
    let payload = Bytes::copy_from_slice(bytes.get(room_end..)?);
    let room = if flags & 2 != 0 {
        Some(std::str::from_utf8(room).ok()?.to_owned())
    } else {
        None
    };
    let msg = if flags & 1 != 0 {
        Message::Text(Utf8Bytes::try_from(payload).ok()?)
    } else {
        Message::Binary(payload)
    };
    Some(Envelope { node, room, msg })
}

/// Waits before reconnecting: 100 ms, doubling up to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

async fn publish_loop(client: redis::Client, channel: String, mut queue: mpsc::Receiver<Bytes>) {
    let mut conn = None;
    let mut attempt = 0;
    while let Some(envelope) = queue.recv().await {
        if conn.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => {
                    conn = Some(c);
                    attempt = 0;
                }
                Err(err) => {
                    tracing::warn!(%err, "hub backplane: cannot reach Redis to publish; message not sent to other processes");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(envelope.as_ref())
            .query_async(c)
            .await;
        if let Err(err) = sent {
            tracing::warn!(%err, "hub backplane: publish failed; message not sent to other processes");
            conn = None;
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    node: [u8; 16],
    hub: Weak<Registry>,
) {
    let mut attempt = 0;
    let mut lost = false;
    loop {
        if hub.strong_count() == 0 {
            return;
        }
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        let mut messages = match subscribed.await {
            Ok(messages) => {
                if lost {
                    tracing::info!("hub backplane: subscribed to Redis again");
                }
                attempt = 0;
                messages
            }
            Err(err) => {
                tracing::warn!(%err, "hub backplane: cannot subscribe to Redis; retrying");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        while let Some(msg) = messages.next().await {
            let Some(inner) = hub.upgrade() else { return };
            match decode(msg.get_payload_bytes()) {
                // Our own messages were delivered locally already.
                Some(envelope) if envelope.node == node => {}
                Some(envelope) => {
                    inner.deliver(envelope.msg, envelope.room.as_deref(), None);
                }
                None => tracing::warn!("hub backplane: ignored a message this version cannot read"),
            }
        }
        tracing::warn!("hub backplane: lost the Redis subscription; resubscribing");
        lost = true;
        tokio::time::sleep(backoff(0)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let node = node_id();
        for (msg, room) in [
            (Message::text("héllo"), Some("lobby")),
            (Message::binary(vec![0u8, 1, 2]), None),
            (Message::text(""), Some("r")),
            // Found by the fuzz target: a room named "" is still a room,
            // not a broadcast to every connection of the other processes.
            (Message::text("x"), Some("")),
        ] {
            let decoded = decode(&encode(node, &msg, room).unwrap()).unwrap();
            assert_eq!(decoded.node, node);
            assert_eq!(decoded.msg, msg);
            assert_eq!(decoded.room.as_deref(), room);
        }
        assert!(encode(node, &Message::Ping(Bytes::new()), None).is_none());
        assert!(decode(b"short").is_none());
        let mut bad = encode(node, &Message::text("x"), Some("room"))
            .unwrap()
            .to_vec();
        bad.truncate(22);
        assert!(decode(&bad).is_none(), "a truncated room is refused");
    }

    #[test]
    fn node_ids_differ() {
        assert_ne!(node_id(), node_id());
    }
}
