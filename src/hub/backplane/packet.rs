//! The bytes that travel between hubs, and what a hub does with them.
//!
//! `[version 2][origin node: 8][kind: 1]`, then by kind:
//!
//! - 1, a send: `[text: 1][index: 2][rooms][except ids][except rooms]
//!   [payload]`. It is published once per room, on that room's channel,
//!   with `index` naming the room; the receiver delivers to that room's
//!   members that are in none of the rooms before it (which got their own
//!   copy), so a member of several rooms gets it once. Without rooms it is
//!   published once, on the channel of all.
//! - 2, a send to one connection: `[id: 16][text: 1][payload]`.
//! - 3, a disconnect: `[id: 16][code: 2][reason]`.
//! - 4, a presence event: `[joined: 1][id: 16][room][info]`, published on
//!   the room's channel.
//! - 5, a recorded send: `[position length: 1][position as text]`, then a
//!   send's bytes (one room, index 0). The backplane's store writes the
//!   position between the two halves the hub gives it, as it records.
//!
//! Lists are `[count: 2]` then the items; a room is `[length: 2][UTF-8]`; an
//! id is its node and number, 8 bytes each. Integers are big-endian.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::super::history::Position;
use super::super::presence::{PresenceChange, PresenceEvent, Present};
use super::super::target::Selector;
use super::super::{ConnectionId, Hub, NodeId};
use crate::message::{CloseFrame, Message, Utf8Bytes};

const VERSION: u8 = 2;
const SEND: u8 = 1;
const SEND_TO: u8 = 2;
const DISCONNECT: u8 = 3;
const PRESENCE: u8 = 4;
const RECORDED: u8 = 5;

/// A decoded packet.
#[derive(Debug, PartialEq)]
pub(crate) struct Packet {
    pub(crate) origin: NodeId,
    pub(crate) body: Body,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Body {
    Send {
        selector: Selector,
        index: usize,
        msg: Message,
    },
    SendTo {
        id: ConnectionId,
        msg: Message,
    },
    Disconnect {
        id: ConnectionId,
        frame: CloseFrame,
    },
    Presence(PresenceEvent),
    Recorded {
        position: Position,
        selector: Selector,
        msg: Message,
    },
}

impl Packet {
    /// A recorded send, which its own sender delivers too.
    pub(crate) fn is_recorded(&self) -> bool {
        matches!(self.body, Body::Recorded { .. })
    }
}

/// A data message's kind and bytes; control frames never cross.
fn data(msg: &Message) -> Option<(bool, Bytes)> {
    match msg {
        Message::Text(text) => Some((true, text.as_bytes())),
        Message::Binary(data) => Some((false, data.clone())),
        _ => None,
    }
}

fn header(origin: NodeId, kind: u8, capacity: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(10 + capacity);
    buf.put_u8(VERSION);
    buf.put_u64(origin.0);
    buf.put_u8(kind);
    buf
}

fn put_str(buf: &mut BytesMut, s: &str) -> Option<()> {
    buf.put_u16(u16::try_from(s.len()).ok()?);
    buf.put_slice(s.as_bytes());
    Some(())
}

fn put_rooms(buf: &mut BytesMut, rooms: &[Arc<str>]) -> Option<()> {
    buf.put_u16(u16::try_from(rooms.len()).ok()?);
    for room in rooms {
        put_str(buf, room)?;
    }
    Some(())
}

fn put_id(buf: &mut BytesMut, id: ConnectionId) {
    buf.put_u64(id.node().0);
    buf.put_u64(id.seq());
}

/// A send for the room at `index` of the selector's rooms (0 when it has
/// none). `None` for a control message, or names or lists too long to
/// encode (over 65,535 bytes or items).
pub(crate) fn encode_send(
    origin: NodeId,
    selector: &Selector,
    index: usize,
    msg: &Message,
) -> Option<Bytes> {
    let mut buf = header(origin, SEND, send_len(selector, msg));
    put_send(&mut buf, selector, index, msg)?;
    Some(buf.freeze())
}

/// A recorded send, cut where its position goes: the header, and the
/// send's bytes (see the kind 5 above).
pub(crate) fn encode_recorded_halves(
    origin: NodeId,
    selector: &Selector,
    msg: &Message,
) -> Option<(Bytes, Bytes)> {
    let head = header(origin, RECORDED, 0).freeze();
    let mut tail = BytesMut::with_capacity(send_len(selector, msg));
    put_send(&mut tail, selector, 0, msg)?;
    Some((head, tail.freeze()))
}

/// A recorded send at `position`, whole (as the store publishes it; for
/// the tests and the fuzz round trip).
#[cfg(any(test, feature = "__fuzz"))]
pub(crate) fn encode_recorded(
    origin: NodeId,
    position: Position,
    selector: &Selector,
    msg: &Message,
) -> Option<Bytes> {
    let (head, tail) = encode_recorded_halves(origin, selector, msg)?;
    let text = position.to_string();
    let mut buf = BytesMut::with_capacity(head.len() + 1 + text.len() + tail.len());
    buf.put_slice(&head);
    buf.put_u8(u8::try_from(text.len()).ok()?);
    buf.put_slice(text.as_bytes());
    buf.put_slice(&tail);
    Some(buf.freeze())
}

/// The length of a send's bytes after the header, roughly.
fn send_len(selector: &Selector, msg: &Message) -> usize {
    let names: usize = selector
        .rooms
        .iter()
        .chain(&selector.except_rooms)
        .map(|r| r.len() + 2)
        .sum();
    9 + names + 16 * selector.except.len() + msg.len()
}

/// A send's bytes after the header.
fn put_send(buf: &mut BytesMut, selector: &Selector, index: usize, msg: &Message) -> Option<()> {
    let (text, payload) = data(msg)?;
    buf.put_u8(u8::from(text));
    buf.put_u16(u16::try_from(index).ok()?);
    put_rooms(buf, &selector.rooms)?;
    buf.put_u16(u16::try_from(selector.except.len()).ok()?);
    for id in &selector.except {
        put_id(buf, *id);
    }
    put_rooms(buf, &selector.except_rooms)?;
    buf.put_slice(&payload);
    Some(())
}

/// A send to one connection; `None` for a control message.
pub(crate) fn encode_send_to(origin: NodeId, id: ConnectionId, msg: &Message) -> Option<Bytes> {
    let (text, payload) = data(msg)?;
    let mut buf = header(origin, SEND_TO, 17 + payload.len());
    put_id(&mut buf, id);
    buf.put_u8(u8::from(text));
    buf.put_slice(&payload);
    Some(buf.freeze())
}

/// A disconnect of one connection with `frame`.
pub(crate) fn encode_disconnect(origin: NodeId, id: ConnectionId, frame: &CloseFrame) -> Bytes {
    let mut buf = header(origin, DISCONNECT, 18 + frame.reason.len());
    put_id(&mut buf, id);
    buf.put_u16(frame.code);
    buf.put_slice(frame.reason.as_str().as_bytes());
    buf.freeze()
}

/// A presence event; `None` when the room is too long to encode.
pub(crate) fn encode_presence(origin: NodeId, event: &PresenceEvent) -> Option<Bytes> {
    let (room, info) = (&event.room, &event.member.info);
    let mut buf = header(origin, PRESENCE, 19 + room.len() + info.len());
    buf.put_u8(u8::from(event.change == PresenceChange::Joined));
    put_id(&mut buf, event.member.id);
    put_str(&mut buf, room)?;
    buf.put_slice(info.as_bytes());
    Some(buf.freeze())
}

/// Reads a packet front to back; every read checks the length.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn id(&mut self) -> Option<ConnectionId> {
        Some(ConnectionId::from_parts(NodeId(self.u64()?), self.u64()?))
    }

    fn rooms(&mut self) -> Option<Vec<Arc<str>>> {
        let count = self.u16()?;
        let mut rooms = Vec::with_capacity(usize::from(count).min(self.0.len() / 2));
        for _ in 0..count {
            let len = usize::from(self.u16()?);
            rooms.push(Arc::from(std::str::from_utf8(self.take(len)?).ok()?));
        }
        Some(rooms)
    }

    /// A send's selector, room index and message.
    fn send(mut self) -> Option<(Selector, usize, Message)> {
        let text = self.u8()?;
        let index = usize::from(self.u16()?);
        let rooms = self.rooms()?;
        if index > 0 && index >= rooms.len() {
            return None;
        }
        let count = self.u16()?;
        let mut except = Vec::with_capacity(usize::from(count).min(self.0.len() / 16));
        for _ in 0..count {
            except.push(self.id()?);
        }
        let except_rooms = self.rooms()?;
        let selector = Selector {
            rooms,
            except,
            except_rooms,
        };
        Some((selector, index, self.message(text)?))
    }

    fn message(self, text: u8) -> Option<Message> {
        let payload = Bytes::copy_from_slice(self.0);
        match text {
            0 => Some(Message::Binary(payload)),
            1 => Some(Message::Text(Utf8Bytes::try_from(payload).ok()?)),
            _ => None,
        }
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Packet> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return None;
    }
    let origin = NodeId(r.u64()?);
    let body = match r.u8()? {
        SEND => {
            let (selector, index, msg) = r.send()?;
            Body::Send {
                selector,
                index,
                msg,
            }
        }
        RECORDED => {
            let len = usize::from(r.u8()?);
            let position = std::str::from_utf8(r.take(len)?).ok()?.parse().ok()?;
            let (selector, index, msg) = r.send()?;
            if index != 0 || selector.rooms.len() != 1 {
                return None;
            }
            Body::Recorded {
                position,
                selector,
                msg,
            }
        }
        SEND_TO => {
            let id = r.id()?;
            let text = r.u8()?;
            Body::SendTo {
                id,
                msg: r.message(text)?,
            }
        }
        PRESENCE => {
            let change = match r.u8()? {
                0 => PresenceChange::Left,
                1 => PresenceChange::Joined,
                _ => return None,
            };
            let id = r.id()?;
            let len = usize::from(r.u16()?);
            let room = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
            let info = std::str::from_utf8(r.0).ok()?.to_owned();
            Body::Presence(PresenceEvent {
                change,
                room,
                member: Present { id, info },
            })
        }
        DISCONNECT => {
            let id = r.id()?;
            let code = r.u16()?;
            let reason = std::str::from_utf8(r.0).ok()?;
            Body::Disconnect {
                id,
                frame: CloseFrame::new(code, reason),
            }
        }
        _ => return None,
    };
    Some(Packet { origin, body })
}

/// Does what a packet from another hub says, on this hub's connections.
pub(crate) fn apply(packet: Packet, hub: &Hub) {
    let registry = &hub.inner.registry;
    match packet.body {
        Body::Send {
            mut selector,
            index,
            msg,
        } => {
            // This copy is for the room at `index`; the members of the
            // rooms before it got theirs on those rooms' channels.
            if !selector.rooms.is_empty() {
                let earlier: Vec<Arc<str>> = selector.rooms.drain(..index).collect();
                selector.rooms.truncate(1);
                selector.except_rooms.extend(earlier);
            }
            registry.deliver(msg.into(), &selector);
        }
        Body::SendTo { id, msg } => {
            if let Some(outbox) = registry.outbox(id) {
                let _ = outbox.push(msg);
            }
        }
        Body::Disconnect { id, frame } => {
            if let Some(outbox) = registry.outbox(id) {
                outbox.close(frame);
            }
        }
        Body::Presence(event) => hub.told(&event),
        Body::Recorded {
            position,
            selector,
            msg,
        } => hub.deliver_recorded_here(msg, position, &selector),
    }
}

/// Decodes, encodes again and decodes (for the fuzz target): what decodes
/// must survive a round trip unchanged.
#[cfg(feature = "__fuzz")]
pub(crate) fn round_trip(bytes: &[u8]) {
    let Some(packet) = decode(bytes) else {
        return;
    };
    let again = match &packet.body {
        Body::Send {
            selector,
            index,
            msg,
        } => encode_send(packet.origin, selector, *index, msg).expect("a decoded send encodes"),
        Body::SendTo { id, msg } => {
            encode_send_to(packet.origin, *id, msg).expect("a decoded send encodes")
        }
        Body::Disconnect { id, frame } => encode_disconnect(packet.origin, *id, frame),
        Body::Presence(event) => {
            encode_presence(packet.origin, event).expect("a decoded event encodes")
        }
        Body::Recorded {
            position,
            selector,
            msg,
        } => encode_recorded(packet.origin, *position, selector, msg)
            .expect("a decoded recorded send encodes"),
    };
    assert_eq!(decode(&again).as_ref(), Some(&packet));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node: u64, seq: u64) -> ConnectionId {
        ConnectionId::from_parts(NodeId(node), seq)
    }

    #[test]
    fn every_kind_round_trips() {
        let origin = NodeId(7);
        let selector = Selector {
            rooms: vec!["red".into(), "".into(), "blé".into()],
            except: vec![id(1, 2), id(u64::MAX, 3)],
            except_rooms: vec!["muted".into()],
        };
        for (index, msg) in [
            (0, Message::text("héllo")),
            (2, Message::binary(vec![0u8, 1])),
        ] {
            let bytes = encode_send(origin, &selector, index, &msg).unwrap();
            assert_eq!(
                decode(&bytes).unwrap(),
                Packet {
                    origin,
                    body: Body::Send {
                        selector: selector.clone(),
                        index,
                        msg
                    }
                }
            );
        }
        let all = encode_send(origin, &Selector::default(), 0, &Message::text("")).unwrap();
        assert!(matches!(
            decode(&all).unwrap().body,
            Body::Send { selector, .. } if selector == Selector::default()
        ));
        let to = encode_send_to(origin, id(9, 9), &Message::text("hi")).unwrap();
        assert_eq!(
            decode(&to).unwrap().body,
            Body::SendTo {
                id: id(9, 9),
                msg: Message::text("hi")
            }
        );
        let event = PresenceEvent {
            change: PresenceChange::Left,
            room: "lobby".into(),
            member: Present {
                id: id(3, 4),
                info: "ann".into(),
            },
        };
        let left = encode_presence(origin, &event).unwrap();
        assert_eq!(decode(&left).unwrap().body, Body::Presence(event));
        let one_room = Selector {
            rooms: vec!["lobby".into()],
            except: vec![id(1, 2)],
            except_rooms: vec![],
        };
        let position: Position = "00000000000000ff:12".parse().unwrap();
        let msg = Message::text("kept");
        let recorded = encode_recorded(origin, position, &one_room, &msg).unwrap();
        assert_eq!(
            decode(&recorded).unwrap().body,
            Body::Recorded {
                position,
                selector: one_room.clone(),
                msg
            }
        );
        // A recorded send is for exactly one room.
        let two = encode_recorded(origin, position, &selector, &Message::text("x")).unwrap();
        assert!(decode(&two).is_none());
        let frame = CloseFrame::new(4001, "kicked");
        let off = encode_disconnect(origin, id(9, 10), &frame);
        assert_eq!(
            decode(&off).unwrap().body,
            Body::Disconnect {
                id: id(9, 10),
                frame
            }
        );
    }

    #[test]
    fn control_messages_and_bad_bytes_do_not_cross() {
        let origin = NodeId(1);
        assert!(encode_send(
            origin,
            &Selector::default(),
            0,
            &Message::Ping(Bytes::new())
        )
        .is_none());
        assert!(decode(b"").is_none());
        assert!(
            decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, SEND]).is_none(),
            "version 1"
        );
        let selector = Selector {
            rooms: vec!["room".into()],
            ..Selector::default()
        };
        let good = encode_send(origin, &selector, 0, &Message::text("x")).unwrap();
        // Every truncation short of the payload is refused.
        for cut in 0..good.len() - 1 {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        // An index past the rooms is refused.
        let mut bad = good.to_vec();
        bad[11] = 0;
        bad[12] = 5;
        assert!(decode(&bad).is_none());
    }
}
