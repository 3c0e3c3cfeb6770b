//! Compress once, send many: in shared mode a message is compressed with a
//! fresh context, so its compressed bytes are the same for every
//! connection with the same settings. The socket compresses data messages
//! itself (before tungstenite, which sends the result as a ready frame
//! with RSV1 set) through a small per-thread cache keyed by the message's
//! own buffer: a `Hub::broadcast` to a thousand connections shares one
//! `Bytes`, and so costs one compression per worker thread, not a thousand.

use std::cell::RefCell;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

use super::zlib::{self, TRAILER};
use super::{Deflate, DeflateParams};
use crate::message::Message;

/// Recently compressed messages kept per thread.
const ENTRIES: usize = 8;

struct Entry {
    /// Held so the buffer cannot be freed and reused while it is a key.
    source: Bytes,
    level: u8,
    window_bits: u8,
    compressed: Bytes,
}

thread_local! {
    static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// How a shared-mode connection compresses what it sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepare {
    level: u8,
    window_bits: u8,
    threshold: usize,
}

impl Prepare {
    /// `Some` when messages can be compressed independently of the
    /// connection (shared mode, so no context takeover).
    pub(crate) fn new(params: DeflateParams, settings: &Deflate) -> Option<Self> {
        (settings.shared && params.server_no_context_takeover).then_some(Self {
            level: settings.level,
            window_bits: params.server_max_window_bits,
            threshold: settings.threshold,
        })
    }

    /// The compressed frame for a data message at or over the threshold.
    pub(crate) fn frame(&self, msg: &Message) -> Option<Frame> {
        let (opcode, payload) = match msg {
            Message::Text(text) => (Data::Text, text.as_bytes()),
            Message::Binary(data) => (Data::Binary, data.clone()),
            _ => return None,
        };
        if payload.len() < self.threshold {
            return None;
        }
        let compressed = self.compressed(&payload);
        let mut frame = Frame::message(compressed, OpCode::Data(opcode), true);
        frame.header_mut().rsv1 = true;
        Some(frame)
    }

    fn compressed(&self, payload: &Bytes) -> Bytes {
        let hit = CACHE.with(|cache| {
            cache
                .borrow()
                .iter()
                .find(|e| {
                    e.source.as_ptr() == payload.as_ptr()
                        && e.source.len() == payload.len()
                        && e.level == self.level
                        && e.window_bits == self.window_bits
                })
                .map(|e| e.compressed.clone())
        });
        if let Some(hit) = hit {
            return hit;
        }
        let mut deflater = zlib::take_deflater(self.level, self.window_bits);
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        deflater.compress(payload, &mut out, true);
        zlib::give_deflater(deflater);
        if out.ends_with(&TRAILER) {
            out.truncate(out.len() - TRAILER.len());
        }
        let compressed = Bytes::from(out);
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() == ENTRIES {
                cache.remove(0);
            }
            cache.push(Entry {
                source: payload.clone(),
                level: self.level,
                window_bits: self.window_bits,
                compressed: compressed.clone(),
            });
        });
        compressed
    }
}

/// How many messages this thread compressed, for tests.
#[cfg(test)]
pub(crate) fn cached() -> usize {
    CACHE.with(|cache| cache.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare() -> Prepare {
        let params = super::super::offer::accept(
            &super::super::offer::Offer {
                name: "permessage-deflate".into(),
                params: Vec::new(),
            },
            &Deflate::shared(),
        )
        .unwrap();
        Prepare::new(params, &Deflate::shared()).unwrap()
    }

    #[test]
    fn one_buffer_is_compressed_once() {
        let prepare = prepare();
        let msg = Message::text("broadcast to everyone ".repeat(100));
        let first = prepare.frame(&msg).unwrap();
        let before = cached();
        for _ in 0..1000 {
            let again = prepare.frame(&msg.clone()).unwrap();
            assert_eq!(again.payload(), first.payload());
        }
        assert_eq!(cached(), before, "no new compression for the same buffer");
        assert!(first.header().rsv1);
        assert!(first.payload().len() < 200);
        // Small messages and control frames are left to tungstenite.
        assert!(prepare.frame(&Message::text("hi")).is_none());
        assert!(prepare.frame(&Message::Ping(Bytes::new())).is_none());
    }
}
