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

/// Decodes a backplane packet; what decodes must encode and decode back
/// to the same thing.
pub fn envelope(data: &[u8]) {
    crate::hub::fuzz_packet(data);
}

/// Parses `data` as `Sec-WebSocket-Extensions` lines (split at `\n`) and
/// negotiates with both modes: never panics, and an accepted offer's answer
/// parses back as one offer that is accepted with the same parameters.
#[cfg(feature = "deflate")]
pub fn deflate_offer(data: &[u8]) {
    use crate::deflate::offer;
    use crate::deflate::Deflate;
    let mut headers = http::HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = http::HeaderValue::from_bytes(line) {
            headers.append(http::header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
    }
    for settings in [
        Deflate::shared(),
        Deflate::dedicated().context_takeover(true).window_bits(15),
    ] {
        let Some((params, answer)) = offer::negotiate(&headers, &settings) else {
            continue;
        };
        let mut again = http::HeaderMap::new();
        again.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, answer);
        let offers = offer::offers(&again);
        assert_eq!(offers.len(), 1, "{offers:?}");
        let reread = offer::accept(&offers[0], &settings).expect("our answer is acceptable");
        assert_eq!(
            reread.server_no_context_takeover,
            params.server_no_context_takeover
        );
        assert_eq!(
            reread.client_no_context_takeover,
            params.client_no_context_takeover
        );
        assert_eq!(reread.server_max_window_bits, params.server_max_window_bits);
    }
}

/// The inflating read side, fed `data` as a peer's byte stream in chunks
/// whose sizes come from its first two bytes: never panics, never holds
/// more than a chunk of output, and stops at the first fault.
#[cfg(feature = "deflate")]
pub fn inflate_stream(data: &[u8]) {
    let Some((seed, wire)) = data.split_first_chunk::<2>() else {
        return;
    };
    let params = crate::deflate::DeflateParams {
        server_no_context_takeover: seed[0] & 1 != 0,
        client_no_context_takeover: seed[0] & 2 != 0,
        server_max_window_bits: 15,
        answer_server_window: false,
        client_max_window_bits: 15,
        answer_client_window: false,
    };
    let mut inflater = crate::deflate::Inflater::new(params, seed[0] & 4 != 0, 1 << 20);
    let mut state = u32::from(u16::from_le_bytes(*seed)) | 1;
    let mut at = 0;
    let mut handed = 0usize;
    while at < wire.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let end = (at + 1 + state as usize % 512).min(wire.len());
        inflater.feed(&wire[at..end]);
        at = end;
        loop {
            let progressed = inflater.process();
            let out = inflater.output().len();
            assert!(out <= 2 * (16 * 1024 + 14) + 512, "{out} bytes held");
            handed += out;
            inflater.consume(out);
            if inflater.fault().is_some() {
                return;
            }
            if !progressed {
                break;
            }
        }
        // Output is bounded by what the frames could inflate to.
        assert!(handed < 64 << 20);
    }
}

/// Compresses messages (sizes and bytes from `data`) with the write side,
/// then inflates the frames it wrote with the read side (masking them as a
/// client would): what comes out is what went in, message by message.
#[cfg(feature = "deflate")]
pub fn deflate_round_trip(data: &[u8]) {
    crate::deflate::round_trip::check(data);
}
