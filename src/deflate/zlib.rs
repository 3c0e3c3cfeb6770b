//! Raw deflate streams (zlib-rs, through flate2), and the per-thread pool
//! that lets shared-mode connections borrow them one message at a time.
//!
//! flate2 is the well-kept safe interface; its zlib-rs backend gives raw
//! streams with a chosen window size (miniz_oxide, flate2's default, only
//! does 15 bits). zlib's memLevel stays at flate2's 8: the compressor's
//! hash table is then most of its memory, which is why a connection holds
//! one only while a message needs it, unless context takeover keeps it.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The four bytes a sync flush ends with, which RFC 7692 leaves off the
/// wire (§7.2.1) and the receiver puts back (§7.2.2).
pub(crate) const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Spare states kept per thread and per setting.
const POOL: usize = 4;

/// A raw deflate compressor.
pub(crate) struct Deflater {
    z: Compress,
    level: u8,
    window_bits: u8,
}

impl Deflater {
    pub(crate) fn new(level: u8, window_bits: u8) -> Box<Self> {
        Box::new(Self {
            z: Compress::new_with_window_bits(Compression::new(level.into()), false, window_bits),
            level,
            window_bits,
        })
    }

    /// Compresses all of `input` onto the end of `out`; with `flush`, ends
    /// with a sync flush (and so with [`TRAILER`]).
    pub(crate) fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>, flush: bool) {
        let mode = if flush {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        loop {
            out.reserve((input.len() / 2).max(64));
            let before = self.z.total_in();
            // Deflating memory to memory cannot fail for valid streams; a
            // failure here would be a bug in the stream's use, and the
            // message would then go out truncated rather than panic.
            if self.z.compress_vec(input, out, mode).is_err() {
                return;
            }
            let used = usize::try_from(self.z.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            // Done once the input is gone and zlib had room to spare (so
            // nothing of the flush is still inside it).
            if input.is_empty() && out.len() < out.capacity() {
                return;
            }
        }
    }

    pub(crate) fn reset(&mut self) {
        self.z.reset();
    }
}

/// A raw deflate decompressor.
pub(crate) struct Inflater {
    z: Decompress,
    window_bits: u8,
}

/// What one call to [`Inflater::inflate`] did.
pub(crate) struct Inflated {
    pub(crate) consumed: usize,
    pub(crate) produced: usize,
    /// The peer ended the deflate stream (a BFINAL block).
    pub(crate) end: bool,
}

impl Inflater {
    pub(crate) fn new(window_bits: u8) -> Box<Self> {
        Box::new(Self {
            z: Decompress::new_with_window_bits(false, window_bits),
            window_bits,
        })
    }

    /// Inflates from `input` into `out`, as much as fits.
    ///
    /// # Errors
    ///
    /// When `input` is not valid deflate data.
    pub(crate) fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<Inflated, ()> {
        let (in_before, out_before) = (self.z.total_in(), self.z.total_out());
        let status = self
            .z
            .decompress(input, out, FlushDecompress::Sync)
            .map_err(|_| ())?;
        Ok(Inflated {
            consumed: usize::try_from(self.z.total_in() - in_before).unwrap_or(input.len()),
            produced: usize::try_from(self.z.total_out() - out_before).unwrap_or(out.len()),
            end: status == Status::StreamEnd,
        })
    }

    /// Starts a new stream (a new context). flate2's reset puts the window
    /// back to 15 bits, which reads streams made with any smaller window;
    /// it is cheaper than a new state per message (no allocation once the
    /// window exists).
    pub(crate) fn reset(&mut self) {
        self.z.reset(false);
    }
}

/// A per-thread pool of one kind of state, each tagged with its settings.
// Boxed: a state moves between the pool and a connection as a pointer.
#[allow(clippy::vec_box)]
type Pool<T> = std::thread::LocalKey<RefCell<Vec<(u16, Box<T>)>>>;

#[allow(clippy::vec_box)]
mod pools {
    use super::*;

    thread_local! {
        pub(super) static DEFLATERS: RefCell<Vec<(u16, Box<Deflater>)>> = const { RefCell::new(Vec::new()) };
        pub(super) static INFLATERS: RefCell<Vec<(u16, Box<Inflater>)>> = const { RefCell::new(Vec::new()) };
    }
}
use pools::{DEFLATERS, INFLATERS};

/// A state with these settings from the pool, if it has one.
fn take<T>(pool: &'static Pool<T>, key: u16) -> Option<Box<T>> {
    pool.with(|pool| {
        let mut pool = pool.borrow_mut();
        let at = pool.iter().position(|(k, _)| *k == key)?;
        Some(pool.swap_remove(at).1)
    })
}

/// Puts a (reset) state back, unless the pool has enough of its kind.
fn give<T>(pool: &'static Pool<T>, key: u16, state: Box<T>) {
    pool.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.iter().filter(|(k, _)| *k == key).count() < POOL {
            pool.push((key, state));
        }
    });
}

fn deflater_key(level: u8, window_bits: u8) -> u16 {
    u16::from(level) << 8 | u16::from(window_bits)
}

/// A compressor from this thread's pool (or a new one), reset.
pub(crate) fn take_deflater(level: u8, window_bits: u8) -> Box<Deflater> {
    take(&DEFLATERS, deflater_key(level, window_bits))
        .unwrap_or_else(|| Deflater::new(level, window_bits))
}

/// Gives a compressor back to this thread's pool, reset for its next user.
pub(crate) fn give_deflater(mut deflater: Box<Deflater>) {
    deflater.reset();
    let key = deflater_key(deflater.level, deflater.window_bits);
    give(&DEFLATERS, key, deflater);
}

/// A decompressor from this thread's pool (or a new one), reset.
pub(crate) fn take_inflater(window_bits: u8) -> Box<Inflater> {
    take(&INFLATERS, u16::from(window_bits)).unwrap_or_else(|| Inflater::new(window_bits))
}

/// Gives a decompressor back to this thread's pool, reset.
pub(crate) fn give_inflater(mut inflater: Box<Inflater>) {
    inflater.reset();
    let key = u16::from(inflater.window_bits);
    give(&INFLATERS, key, inflater);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_flushed_message_round_trips_without_its_trailer() {
        let text = b"hello hello hello hello hello, permessage-deflate".repeat(20);
        let mut deflater = Deflater::new(1, 12);
        let mut wire = Vec::new();
        deflater.compress(&text, &mut wire, true);
        assert!(wire.ends_with(&TRAILER));
        wire.truncate(wire.len() - 4);
        assert!(wire.len() < text.len() / 4);

        let mut inflater = Inflater::new(12);
        let mut input = wire.clone();
        input.extend_from_slice(&TRAILER);
        let mut out = vec![0u8; text.len() + 64];
        let done = inflater.inflate(&input, &mut out).unwrap();
        assert_eq!(done.consumed, input.len());
        assert_eq!(&out[..done.produced], &text[..]);
    }

    #[test]
    fn an_empty_message_is_one_zero_byte() {
        let mut deflater = Deflater::new(1, 12);
        let mut wire = Vec::new();
        deflater.compress(b"", &mut wire, true);
        assert_eq!(wire, [0x00, 0x00, 0x00, 0xff, 0xff]);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut inflater = Inflater::new(15);
        let mut out = [0u8; 64];
        assert!(inflater
            .inflate(&[0xff, 0xff, 0xff, 0xff], &mut out)
            .is_err());
    }

    #[test]
    fn the_pool_hands_back_what_it_was_given() {
        let inflater = take_inflater(11);
        let addr = &*inflater as *const Inflater;
        give_inflater(inflater);
        let again = take_inflater(11);
        assert_eq!(&*again as *const Inflater, addr);
        // Another window size is another state.
        let other = take_inflater(10);
        assert_ne!(&*other as *const Inflater, addr);
    }
}
