//! permessage-deflate (RFC 7692), under an unmodified tungstenite.
//!
//! When the handshake agrees on the extension, the transport gets a
//! [`Codec`] that rewrites frames on their way through: compressed
//! messages from the peer are inflated and handed to tungstenite as plain
//! frames (masked with an all-zero key, so tungstenite stays strict about
//! masking), and tungstenite's outgoing data frames are compressed. A
//! connection without the extension has no codec and pays nothing.
//!
//! - `offer.rs`: reading the client's offers and answering one.
//! - `frame.rs`: the bits of RFC 6455 framing both sides need.
//! - `zlib.rs`: the compressor and decompressor, and the per-thread pool
//!   of the shared mode.
//! - `inflate.rs`: the read side.
//! - `compress.rs`: the write side (dedicated mode).
//! - `prepared.rs`: shared mode's compress-once.
//! - `round_trip.rs`: both sides in a loop, for tests and the fuzz target.

mod compress;
mod frame;
mod inflate;
pub(crate) mod offer;
mod prepared;
#[cfg(any(test, feature = "__fuzz"))]
pub(crate) mod round_trip;
mod zlib;

use std::fmt;

pub(crate) use compress::Compressor;
pub(crate) use inflate::{Fault, Inflater};
pub(crate) use prepared::Prepare;

/// Compression settings: whether to offer permessage-deflate, and how.
///
/// Off by default (see `docs/configuration.md` for the measured costs).
/// Two modes:
///
/// - [`shared`](Self::shared): no context takeover in either direction;
///   compressor and decompressor state is pooled per worker thread, so a
///   connection costs nothing extra while idle, and a message broadcast to
///   many connections can be compressed once.
/// - [`dedicated`](Self::dedicated): each connection has its own state,
///   allocated on the first message that needs it and released when the
///   connection goes idle; with [`context_takeover`](Self::context_takeover)
///   the state is kept between messages instead (better ratios for chatty
///   peers, about 200 KB per connection for its whole life).
///
/// ```
/// use hyperws::{Config, Deflate};
///
/// let config = Config::default().deflate(Deflate::shared().threshold(512));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    pub(crate) shared: bool,
    pub(crate) level: u8,
    pub(crate) window_bits: u8,
    pub(crate) threshold: usize,
    pub(crate) context_takeover: bool,
}

impl fmt::Debug for Deflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflate")
            .field("mode", &if self.shared { "shared" } else { "dedicated" })
            .field("level", &self.level)
            .field("window_bits", &self.window_bits)
            .field("threshold", &self.threshold)
            .field("context_takeover", &self.context_takeover)
            .finish()
    }
}

impl Deflate {
    /// Shared mode: pooled state, no context takeover. Level 1, 12-bit
    /// window, messages under 1 KiB sent uncompressed.
    #[must_use]
    pub fn shared() -> Self {
        Self {
            shared: true,
            ..Self::dedicated()
        }
    }

    /// Dedicated mode: per-connection state. Level 1, 12-bit window,
    /// messages under 1 KiB sent uncompressed, no context takeover.
    #[must_use]
    pub fn dedicated() -> Self {
        Self {
            shared: false,
            level: 1,
            window_bits: 12,
            threshold: 1024,
            context_takeover: false,
        }
    }

    /// The zlib compression level, 0 (store) to 9 (smallest). Level 1 gives
    /// most of the gain for a third of level 6's CPU. Values above 9 are 9.
    #[must_use]
    pub fn level(mut self, level: u8) -> Self {
        self.level = level.min(9);
        self
    }

    /// The LZ77 window, as a power of two: 9 (512 B) to 15 (32 KiB). A
    /// larger window finds repeats further back, at 2^bits bytes of state
    /// per direction. Clamped to 9..=15.
    #[must_use]
    pub fn window_bits(mut self, bits: u8) -> Self {
        self.window_bits = bits.clamp(9, 15);
        self
    }

    /// Messages smaller than this go uncompressed (RFC 7692 allows it per
    /// message): compressing a few bytes costs more than it saves.
    #[must_use]
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Keeps the compression context between messages (dedicated mode
    /// only; shared mode ignores it). Repeated content across messages then
    /// compresses much better, but the state stays allocated for the
    /// connection's life. The client may still ask for no context takeover,
    /// which is honoured.
    #[must_use]
    pub fn context_takeover(mut self, keep: bool) -> Self {
        self.context_takeover = keep && !self.shared;
        self
    }
}

/// What the handshake agreed on for permessage-deflate, from
/// [`WebSocket::deflate`](crate::WebSocket::deflate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: u8,
    pub(crate) answer_server_window: bool,
    pub(crate) client_max_window_bits: u8,
    pub(crate) answer_client_window: bool,
}

impl DeflateParams {
    /// The server starts every message with a fresh compression context.
    #[must_use]
    pub fn server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// The client starts every message with a fresh compression context.
    #[must_use]
    pub fn client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// The window the server compresses with, as a power of two.
    #[must_use]
    pub fn server_max_window_bits(&self) -> u8 {
        self.server_max_window_bits
    }

    /// The largest window the client compresses with, as a power of two.
    #[must_use]
    pub fn client_max_window_bits(&self) -> u8 {
        self.client_max_window_bits
    }
}

/// A connection's permessage-deflate layer: what was agreed, and the codec,
/// which exists only while it holds something. An idle connection keeps
/// just the agreement (a few bytes inline); the codec (its buffers, and in
/// dedicated mode its zlib state) is made again by the next frame.
pub(crate) struct Layer {
    params: DeflateParams,
    settings: Deflate,
    max_frame: usize,
    /// Outgoing frames go through the write side (dedicated mode; shared
    /// mode's socket compresses them itself, see [`Prepare`]).
    compresses: bool,
    codec: Option<Box<Codec>>,
}

impl Layer {
    pub(crate) fn new(params: DeflateParams, settings: Deflate, max_frame: usize) -> Self {
        Self {
            params,
            settings,
            max_frame,
            compresses: Prepare::new(params, &settings).is_none(),
            codec: None,
        }
    }

    /// The codec, made if the connection was idle.
    pub(crate) fn codec(&mut self) -> &mut Codec {
        let (params, settings, max_frame) = (self.params, self.settings, self.max_frame);
        let compresses = self.compresses;
        self.codec
            .get_or_insert_with(|| Box::new(Codec::new(params, &settings, max_frame, compresses)))
    }

    /// The codec, if there is one now.
    pub(crate) fn current(&mut self) -> Option<&mut Codec> {
        self.codec.as_deref_mut()
    }

    /// Whether outgoing frames go through the write side (dedicated mode).
    pub(crate) fn compresses(&self) -> bool {
        self.compresses
    }

    pub(crate) fn at_rest(&self) -> bool {
        self.codec.as_ref().is_none_or(|c| c.at_rest())
    }

    /// The connection is going idle: the codec gives back what no message
    /// needs, and goes itself unless it keeps a compression context.
    pub(crate) fn release(&mut self) {
        if let Some(codec) = &mut self.codec {
            codec.release();
            if codec.at_rest() && !codec.keeps_context() {
                self.codec = None;
            }
        }
    }
}

/// A connection's permessage-deflate codec. The read side is always
/// there; the write side only in dedicated mode (in shared mode the socket
/// compresses each message itself, once for every connection, see
/// [`Prepare`]).
pub(crate) struct Codec {
    pub(crate) inflater: Inflater,
    pub(crate) compressor: Option<Compressor>,
}

impl Codec {
    fn new(params: DeflateParams, settings: &Deflate, max_frame: usize, compresses: bool) -> Self {
        Self {
            inflater: Inflater::new(params, settings.shared, max_frame),
            compressor: compresses.then(|| Compressor::new(params, settings)),
        }
    }

    /// Nothing partial in either direction: no frame half read or half
    /// written, no message in the middle.
    pub(crate) fn at_rest(&self) -> bool {
        self.inflater.at_rest() && self.compressor.as_ref().is_none_or(Compressor::at_rest)
    }

    /// The connection is going idle: give back state that no message needs.
    pub(crate) fn release(&mut self) {
        self.inflater.release();
        if let Some(compressor) = &mut self.compressor {
            compressor.release();
        }
    }

    /// Whether zlib state is kept between messages (context takeover).
    fn keeps_context(&self) -> bool {
        self.inflater.has_state() || self.compressor.as_ref().is_some_and(Compressor::has_state)
    }
}

#[cfg(test)]
mod tests {
    use super::round_trip::check;

    #[test]
    fn both_sides_round_trip() {
        // Flags: bit 0 no context takeover, bits 4.. the threshold / 16.
        let text = b"permessage-deflate round trip, ".repeat(3000);
        for flags in [0x00, 0x01, 0x10, 0x11, 0x06] {
            let mut data = vec![flags];
            for msg in [&b""[..], b"a", &text[..1000], &text[..], b"", b"x"] {
                data.extend_from_slice(msg);
                data.push(0xff);
            }
            check(&data);
        }
    }

    /// Found by the fuzz target: empty messages right after one another,
    /// with context takeover (zlib emits nothing for a second flush).
    #[test]
    fn empty_messages_with_context_takeover() {
        check(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x0a]);
    }
}
