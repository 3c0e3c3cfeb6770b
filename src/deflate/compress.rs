//! The write side: tungstenite's outgoing frames, as it writes them,
//! become the frames on the wire. A data message of at least the threshold
//! is compressed (RSV1 on its first frame, the sync-flush trailer left
//! off); a large one goes out as fragments of bounded size, so the layer
//! holds a bounded amount of output whatever the message size. Everything
//! else (control frames, small messages, frames already compressed) passes
//! through unchanged.

use super::frame::Pending;
use super::zlib::{self, TRAILER};
use super::{Deflate, DeflateParams};
use crate::wire::write_header;

/// Largest payload of one compressed frame on the wire.
const CHUNK: usize = 16 * 1024;
/// Most input compressed in one step, so that output stays bounded.
const STEP: usize = 64 * 1024;
/// Past this much output waiting for the socket, no more input is taken.
const LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary: `have` bytes of the next header are in.
    Header,
    /// Passing a frame's payload through.
    Raw { remaining: u64 },
    /// Compressing a message's payload.
    Compress {
        remaining: u64,
        opcode: u8,
        started: bool,
    },
}

/// The write side of one connection's permessage-deflate layer.
pub(crate) struct Compressor {
    shared: bool,
    level: u8,
    window_bits: u8,
    reset_each: bool,
    threshold: usize,
    z: Option<Box<zlib::Deflater>>,
    state: State,
    header: [u8; 14],
    have: usize,
    /// Compressed bytes of the current message, not framed yet.
    zbuf: Vec<u8>,
    /// Wire bytes waiting for the socket.
    out: Pending,
}

impl Compressor {
    pub(crate) fn new(params: DeflateParams, settings: &Deflate) -> Self {
        Self {
            shared: settings.shared,
            level: settings.level,
            window_bits: params.server_max_window_bits,
            reset_each: params.server_no_context_takeover,
            threshold: settings.threshold,
            z: None,
            state: State::Header,
            header: [0; 14],
            have: 0,
            zbuf: Vec::new(),
            out: Pending::default(),
        }
    }

    /// Wire bytes waiting for the socket.
    pub(crate) fn pending(&self) -> &[u8] {
        self.out.as_slice()
    }

    /// Marks `n` bytes of [`pending`](Self::pending) as written.
    pub(crate) fn written(&mut self, n: usize) {
        self.out.consume(n);
    }

    pub(crate) fn at_rest(&self) -> bool {
        self.state == State::Header && self.have == 0 && self.pending().is_empty()
    }

    /// Whether a compressor is held (after `release`, only with context
    /// takeover).
    pub(crate) fn has_state(&self) -> bool {
        self.z.is_some()
    }

    /// Gives back what no message needs.
    pub(crate) fn release(&mut self) {
        if self.state == State::Header && self.reset_each {
            self.z = None;
        }
        self.zbuf = Vec::new();
        self.out.release();
    }

    /// Takes tungstenite's bytes; returns how many it took (fewer than all
    /// when enough output waits for the socket already).
    pub(crate) fn encode(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while self.out.len() < LIMIT {
            let rest = &input[used..];
            match self.state {
                State::Header => {
                    if rest.is_empty() {
                        break;
                    }
                    used += self.header(rest);
                }
                State::Raw { remaining } => {
                    if remaining == 0 {
                        self.state = State::Header;
                        continue;
                    }
                    if rest.is_empty() {
                        break;
                    }
                    let n = rest
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    self.out.buf().extend_from_slice(&rest[..n]);
                    used += n;
                    self.state = State::Raw {
                        remaining: remaining - n as u64,
                    };
                }
                State::Compress { remaining, .. } => {
                    if rest.is_empty() && remaining > 0 {
                        break;
                    }
                    let n = rest
                        .len()
                        .min(STEP)
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    self.compress(&rest[..n], remaining == n as u64);
                    used += n;
                }
            }
        }
        used
    }

    /// Reads header bytes; once the header is whole, decides what to do
    /// with the frame. Returns how many bytes it took.
    fn header(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        // Two bytes tell the header's length.
        while self.have < 2 && used < input.len() {
            self.header[self.have] = input[used];
            self.have += 1;
            used += 1;
        }
        if self.have < 2 {
            return used;
        }
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        let total = 2 + ext + mask;
        let take = (total - self.have).min(input.len() - used);
        self.header[self.have..self.have + take].copy_from_slice(&input[used..used + take]);
        self.have += take;
        used += take;
        if self.have < total {
            return used;
        }
        let len = match ext {
            2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            8 => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0xff; 8])),
            _ => u64::from(self.header[1] & 0x7f),
        };
        let b0 = self.header[0];
        let (fin, rsv, opcode) = (b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0f);
        let compress = (opcode == 1 || opcode == 2)
            && fin
            && rsv == 0
            && mask == 0
            && len >= self.threshold as u64;
        if compress {
            self.zbuf.clear();
            self.state = State::Compress {
                remaining: len,
                opcode,
                started: false,
            };
        } else {
            self.out.buf().extend_from_slice(&self.header[..total]);
            self.state = State::Raw { remaining: len };
        }
        self.have = 0;
        used
    }

    fn deflater(&mut self) -> &mut zlib::Deflater {
        let (shared, level, bits) = (self.shared, self.level, self.window_bits);
        self.z.get_or_insert_with(|| {
            if shared {
                zlib::take_deflater(level, bits)
            } else {
                zlib::Deflater::new(level, bits)
            }
        })
    }

    /// Compresses the next part of the payload; frames what is ready.
    fn compress(&mut self, input: &[u8], last: bool) {
        let State::Compress {
            remaining,
            opcode,
            mut started,
        } = self.state
        else {
            return;
        };
        let mut zbuf = std::mem::take(&mut self.zbuf);
        self.deflater().compress(input, &mut zbuf, last);
        // Full fragments go out as they fill; the last four bytes stay
        // behind until the end, where they may be the trailer.
        let mut at = 0;
        while zbuf.len() - at > CHUNK + TRAILER.len() {
            self.frame(opcode, started, false, &zbuf[at..at + CHUNK]);
            started = true;
            at += CHUNK;
        }
        zbuf.drain(..at);
        let remaining = remaining - input.len() as u64;
        if last {
            if zbuf.ends_with(&TRAILER) {
                zbuf.truncate(zbuf.len() - TRAILER.len());
            }
            if zbuf.is_empty() && !started {
                // zlib emits nothing for a flush right after a flush (an
                // empty message with context takeover); the receiver still
                // needs a block to append the trailer to: RFC 7692
                // §7.2.3.6's single 0x00.
                zbuf.push(0x00);
            }
            self.frame(opcode, started, true, &zbuf);
            zbuf.clear();
            self.zbuf = zbuf;
            self.end_message();
            return;
        }
        self.zbuf = zbuf;
        self.state = State::Compress {
            remaining,
            opcode,
            started,
        };
    }

    /// One frame of compressed data: the first of a message carries RSV1
    /// and the opcode, the others are continuations.
    fn frame(&mut self, opcode: u8, started: bool, fin: bool, data: &[u8]) {
        let b0 = if fin { 0x80 } else { 0 } | if started { 0 } else { 0x40 | opcode };
        write_header(self.out.buf(), b0, data.len(), false);
        self.out.buf().extend_from_slice(data);
    }

    fn end_message(&mut self) {
        self.state = State::Header;
        if self.reset_each {
            match self.z.take() {
                Some(z) if self.shared => zlib::give_deflater(z),
                Some(mut z) => {
                    z.reset();
                    self.z = Some(z);
                }
                None => {}
            }
        }
    }
}
