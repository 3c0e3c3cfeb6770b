//! Entry points for the cargo-fuzz targets in `fuzz/`. Not part of the
//! API: behind the hidden `__fuzz` feature, and free to change.

use std::collections::HashMap;
use std::sync::Arc;

/// Feeds `data` to the frame-boundary tracker in chunks whose sizes come
/// from its first two bytes, and checks it against a plain reference
/// parser: at rest exactly where a frame ends outside a fragmented message.
pub fn frame_tracker(data: &[u8]) {
    let Some((seed, wire)) = data.split_first_chunk::<2>() else {
        return;
    };
    let rest = reference_rest_points(wire);
    let mut tracker = crate::transport::FrameTracker::default();
    let mut state = u32::from(u16::from_le_bytes(*seed)) | 1;
    let mut at = 0;
    while at < wire.len() {
        // xorshift: chunk sizes from 1 to 64, and now and then larger.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = if state % 8 == 0 {
            1 + state as usize % 4096
        } else {
            1 + state as usize % 64
        };
        let end = (at + size).min(wire.len());
        tracker.observe(&wire[at..end]);
        at = end;
        assert_eq!(
            tracker.at_rest(),
            rest.binary_search(&at).is_ok(),
            "at byte {at}"
        );
    }
}

/// Where a byte stream of frames is at rest, by a straightforward reading
/// of RFC 6455 §5.2 (independent of the tracker's incremental one).
fn reference_rest_points(wire: &[u8]) -> Vec<usize> {
    let mut rest = vec![0];
    let (mut at, mut open) = (0usize, false);
    while at + 2 <= wire.len() {
        let (b0, b1) = (wire[at], wire[at + 1]);
        let (ext, mut len) = match b1 & 0x7f {
            126 => (2, 0u64),
            127 => (8, 0u64),
            n => (0, u64::from(n)),
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        let header = 2 + ext + mask;
        if at + header > wire.len() {
            break;
        }
        for byte in &wire[at + 2..at + 2 + ext] {
            len = (len << 8) | u64::from(*byte);
        }
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|len| (at + header).checked_add(len))
        else {
            break;
        };
        if end > wire.len() {
            break;
        }
        let fin = b0 & 0x80 != 0;
        match b0 & 0x0f {
            0x1 | 0x2 => open = !fin,
            0x0 if fin => open = false,
            _ => {}
        }
        at = end;
        if !open {
            rest.push(at);
        }
    }
    rest
}

/// Deserializes up to four path parameters, taken from `data` split at
/// `/`, into the shapes `Path<T>` supports; none may panic.
#[cfg(feature = "router")]
pub fn path_params(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let params: Vec<(Arc<str>, String)> = text
        .split('/')
        .take(4)
        .zip(["a", "b", "c", "d"])
        .map(|(value, name)| (Arc::from(name), value.to_owned()))
        .collect();
    let p = &params[..];
    use crate::extract::path_deserialize as de;
    let _ = de::<String>(p);
    let _ = de::<u8>(p);
    let _ = de::<i64>(p);
    let _ = de::<f64>(p);
    let _ = de::<bool>(p);
    let _ = de::<char>(p);
    let _ = de::<Option<u32>>(p);
    let _ = de::<(String, u64)>(p);
    let _ = de::<(u16, String, bool)>(p);
    let _ = de::<(i8, i16, i32, i128)>(p);
    let _ = de::<Vec<String>>(p);
    let _ = de::<HashMap<String, String>>(p);
    let _ = de::<HashMap<String, u32>>(p);
    let _ = de::<()>(p);
}

/// Decodes a backplane envelope; what decodes must encode and decode back
/// to the same thing.
#[cfg(feature = "redis")]
pub fn envelope(data: &[u8]) {
    crate::hub::fuzz_envelope(data);
}
