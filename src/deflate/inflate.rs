//! The read side: the peer's frames, as they come off the socket, become
//! the frames tungstenite reads. Compressed messages (RSV1 on their first
//! frame) are inflated lazily, a bounded chunk at a time, and handed on as
//! plain frames masked with an all-zero key; everything else passes
//! through unchanged, so tungstenite still judges it. tungstenite's own
//! message limit then applies to the inflated size, so a decompression
//! bomb costs the server no more than that limit.

use std::fmt;

use super::frame::Pending;
use super::zlib::{self, TRAILER};
use super::DeflateParams;
use crate::message::close_code;
use crate::wire::{apply_mask, header_len, write_header};

/// Largest payload of one re-emitted frame.
const CHUNK: usize = 16 * 1024;

/// Why the layer failed the connection: a close code and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for Fault {}

impl Fault {
    fn protocol(reason: &'static str) -> Self {
        Self {
            code: close_code::PROTOCOL,
            reason,
        }
    }
}

/// Where the reader is in the peer's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// At a frame boundary.
    Header,
    /// Passing a frame's payload through as it is.
    Raw { remaining: u64 },
    /// Inflating a compressed frame's payload.
    Compressed {
        remaining: u64,
        mask: [u8; 4],
        offset: usize,
        fin: bool,
    },
    /// The last frame of a compressed message is in; the trailer goes in
    /// (these many bytes of it are left) and what is still inside zlib
    /// comes out.
    Finishing { trailer_left: usize },
}

/// Which message, if any, the peer is in the middle of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    /// Uncompressed and fragmented: its continuations pass through.
    Raw,
    /// Compressed: its first re-emitted frame is out when `started`.
    Compressed {
        opcode: u8,
        started: bool,
    },
}

/// The read side of one connection's permessage-deflate layer.
pub(crate) struct Inflater {
    shared: bool,
    window_bits: u8,
    reset_each: bool,
    max_frame: usize,
    chunk: usize,
    z: Option<Box<zlib::Inflater>>,
    /// Bytes read from the socket, not yet looked at.
    wire: Vec<u8>,
    state: Wire,
    open: Open,
    /// Frames for tungstenite.
    out: Pending,
    /// Where zlib writes before a frame header goes in front.
    scratch: Vec<u8>,
    fault: Option<Fault>,
}

impl Inflater {
    pub(crate) fn new(params: DeflateParams, shared: bool, max_frame: usize) -> Self {
        Self {
            shared,
            // zlib inflates raw streams with windows of 9 bits and more; a
            // larger window reads any smaller one.
            window_bits: params.client_max_window_bits.max(9),
            reset_each: params.client_no_context_takeover,
            max_frame,
            chunk: CHUNK.min(max_frame.max(1)),
            z: None,
            wire: Vec::new(),
            state: Wire::Header,
            open: Open::None,
            out: Pending::default(),
            scratch: Vec::new(),
            fault: None,
        }
    }

    /// Bytes read from the socket, to rewrite.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.wire.extend_from_slice(bytes);
    }

    /// Rewritten bytes ready for tungstenite.
    pub(crate) fn output(&self) -> &[u8] {
        self.out.as_slice()
    }

    /// Marks `n` bytes of [`output`](Self::output) as handed on.
    pub(crate) fn consume(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// The fault to report once the output before it is handed on.
    pub(crate) fn fault(&self) -> Option<Fault> {
        self.fault.filter(|_| self.output().is_empty())
    }

    pub(crate) fn at_rest(&self) -> bool {
        self.state == Wire::Header
            && self.open == Open::None
            && self.wire.is_empty()
            && self.output().is_empty()
    }

    /// Gives back the decompressor when no message needs it and no context
    /// is kept across messages.
    pub(crate) fn release(&mut self) {
        if self.open == Open::None && self.reset_each {
            self.drop_state();
        }
        if self.wire.is_empty() {
            self.wire = Vec::new();
        }
        self.out.release();
        self.scratch = Vec::new();
    }

    /// Whether a decompressor is held (after `release`, only with context
    /// takeover).
    pub(crate) fn has_state(&self) -> bool {
        self.z.is_some()
    }

    fn drop_state(&mut self) {
        if let Some(z) = self.z.take() {
            if self.shared {
                zlib::give_inflater(z);
            }
        }
    }

    fn take_state(&mut self) -> &mut zlib::Inflater {
        let (shared, bits) = (self.shared, self.window_bits);
        self.z.get_or_insert_with(|| {
            if shared {
                zlib::take_inflater(bits)
            } else {
                zlib::Inflater::new(bits)
            }
        })
    }

    /// Rewrites what it can of the wire bytes, stopping when a chunk of
    /// output is waiting (so memory stays bounded), when more bytes are
    /// needed, or at a fault. Returns whether anything changed.
    pub(crate) fn process(&mut self) -> bool {
        let mut progressed = false;
        while self.fault.is_none() && self.output().len() < self.chunk {
            let step = match self.state {
                Wire::Header => self.header(),
                Wire::Raw { remaining } => self.raw(remaining),
                Wire::Compressed { .. } => self.compressed(),
                Wire::Finishing { trailer_left } => self.finishing(trailer_left),
            };
            if !step {
                break;
            }
            progressed = true;
        }
        self.compact();
        progressed
    }

    fn compact(&mut self) {
        // `wire` is consumed from the front by `drain`; keep it small.
        if self.wire.capacity() > 64 * 1024 && self.wire.len() < 1024 {
            self.wire.shrink_to(4096);
        }
    }

    fn fail(&mut self, fault: Fault) -> bool {
        self.fault = Some(fault);
        true
    }

    /// Parses a frame header once all of it is in.
    fn header(&mut self) -> bool {
        let Some((len, header_len)) = header_len(&self.wire) else {
            return false;
        };
        let (b0, b1) = (self.wire[0], self.wire[1]);
        let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f);
        let masked = b1 & 0x80 != 0;
        let control = opcode & 0x08 != 0;
        let compressed_message = matches!(self.open, Open::Compressed { .. });
        if !control && opcode != 0 && self.open != Open::None {
            return self.fail(Fault::protocol(
                "new data frame inside a fragmented message",
            ));
        }
        if opcode == 0 && rsv1 {
            return self.fail(Fault::protocol("RSV1 set on a continuation frame"));
        }
        let inflate = !control
            && masked
            && b0 & 0x30 == 0
            && ((opcode == 1 || opcode == 2) && rsv1 || opcode == 0 && compressed_message);
        if !inflate {
            // tungstenite judges everything else (control frames, RSV2/3,
            // reserved opcodes, unmasked frames, uncompressed messages).
            if !control {
                self.open = match (opcode, fin) {
                    (1 | 2, false) => Open::Raw,
                    (0, true) => Open::None,
                    _ => self.open,
                };
            }
            self.out.buf().extend(self.wire.drain(..header_len));
            self.state = Wire::Raw { remaining: len };
            return true;
        }
        if len > self.max_frame as u64 {
            return self.fail(Fault {
                code: close_code::SIZE,
                reason: "frame too big",
            });
        }
        let mask = [
            self.wire[header_len - 4],
            self.wire[header_len - 3],
            self.wire[header_len - 2],
            self.wire[header_len - 1],
        ];
        self.wire.drain(..header_len);
        if opcode != 0 {
            self.open = Open::Compressed {
                opcode,
                started: false,
            };
        }
        self.state = Wire::Compressed {
            remaining: len,
            mask,
            offset: 0,
            fin,
        };
        true
    }

    /// How much of a payload with `remaining` bytes left is already in.
    fn available(&self, remaining: u64) -> usize {
        self.wire
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX))
    }

    fn raw(&mut self, remaining: u64) -> bool {
        if remaining == 0 {
            self.state = Wire::Header;
            return true;
        }
        let n = self.available(remaining);
        if n == 0 {
            return false;
        }
        self.out.buf().extend(self.wire.drain(..n));
        self.state = Wire::Raw {
            remaining: remaining - n as u64,
        };
        true
    }

    fn compressed(&mut self) -> bool {
        let Wire::Compressed {
            remaining,
            mask,
            offset,
            fin,
        } = self.state
        else {
            return false;
        };
        if remaining == 0 {
            self.state = if fin {
                Wire::Finishing { trailer_left: 4 }
            } else {
                Wire::Header
            };
            return true;
        }
        let n = self.available(remaining);
        if n == 0 {
            return false;
        }
        apply_mask(&mut self.wire[..n], mask, offset);
        let input = std::mem::take(&mut self.wire);
        let step = self.inflate(&input[..n]);
        self.wire = input;
        let Some(step) = step else {
            return true;
        };
        if step.produced > 0 {
            self.emit(step.produced, false);
        }
        // What zlib did not take is unmasked already: mask it back, so the
        // next round unmasks it again from the right offset.
        let consumed = step.consumed;
        apply_mask(&mut self.wire[consumed..n], mask, offset + consumed);
        self.wire.drain(..consumed);
        self.state = Wire::Compressed {
            remaining: remaining - consumed as u64,
            mask,
            offset: (offset + consumed) % 4,
            fin,
        };
        true
    }

    /// Feeds the trailer, then drains zlib; the last frame carries FIN.
    fn finishing(&mut self, trailer_left: usize) -> bool {
        let Some(step) = self.inflate(&TRAILER[4 - trailer_left..]) else {
            return true;
        };
        let trailer_left = if step.end {
            0
        } else {
            trailer_left - step.consumed.min(trailer_left)
        };
        // zlib had room to spare with all input in: nothing is left inside.
        let last = trailer_left == 0 && step.produced < self.chunk;
        if step.produced > 0 || last {
            self.emit(step.produced, last);
        }
        if last {
            self.end_message();
        } else {
            self.state = Wire::Finishing { trailer_left };
        }
        true
    }

    /// Inflates `input` into the scratch buffer; `None` after a fault.
    fn inflate(&mut self, input: &[u8]) -> Option<zlib::Inflated> {
        let chunk = self.chunk;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(chunk, 0);
        let result = self.take_state().inflate(input, &mut scratch);
        self.scratch = scratch;
        match result {
            Ok(step)
                if step.consumed == 0 && step.produced == 0 && !input.is_empty() && !step.end =>
            {
                self.fail(Fault::protocol("invalid compressed data"));
                None
            }
            Ok(step) => {
                if step.end {
                    // A BFINAL block ended the peer's stream: whatever
                    // comes next starts a new one.
                    if let Some(z) = &mut self.z {
                        z.reset();
                    }
                }
                Some(step)
            }
            Err(()) => {
                self.fail(Fault::protocol("invalid compressed data"));
                None
            }
        }
    }

    /// Hands tungstenite one frame of inflated data from the scratch buffer.
    fn emit(&mut self, len: usize, fin: bool) {
        let Open::Compressed { opcode, started } = self.open else {
            return;
        };
        let b0 = if fin { 0x80 } else { 0 } | if started { 0 } else { opcode };
        write_header(self.out.buf(), b0, len, true);
        self.out.buf().extend_from_slice(&self.scratch[..len]);
        self.open = Open::Compressed {
            opcode,
            started: true,
        };
    }

    fn end_message(&mut self) {
        self.open = Open::None;
        self.state = Wire::Header;
        if self.reset_each {
            if self.shared {
                self.drop_state();
            } else if let Some(z) = &mut self.z {
                z.reset();
            }
        }
    }
}
