//! A round trip through both sides of the layer, for the fuzz target and
//! the unit tests: messages compressed by the write side, masked as a
//! client would send them, inflated by the read side.

/// Messages from `data` (its first byte picks the settings, the rest is
/// cut at every 0xff into messages) survive the round trip unchanged.
pub(crate) fn check(data: &[u8]) {
    use super::{Compressor, Deflate, DeflateParams, Inflater};
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let params = DeflateParams {
        server_no_context_takeover: flags & 1 != 0,
        client_no_context_takeover: flags & 1 != 0,
        server_max_window_bits: 9 + flags % 7,
        answer_server_window: false,
        client_max_window_bits: 15,
        answer_client_window: false,
    };
    let settings = Deflate::dedicated().threshold(usize::from(flags >> 4) * 16);
    let mut compressor = Compressor::new(params, &settings);
    // The messages: `body` cut at every 0xff byte.
    let messages: Vec<&[u8]> = body.split(|b| *b == 0xff).collect();
    let mut wire = Vec::new();
    for msg in &messages {
        let mut frame = vec![0x82];
        push_len(&mut frame, msg.len(), false);
        frame.extend_from_slice(msg);
        let mut at = 0;
        while at < frame.len() {
            at += compressor.encode(&frame[at..]);
            wire.extend_from_slice(compressor.pending());
            let n = compressor.pending().len();
            compressor.written(n);
        }
        while !compressor.at_rest() {
            compressor.encode(&[]);
            wire.extend_from_slice(compressor.pending());
            let n = compressor.pending().len();
            compressor.written(n);
        }
    }
    // As a client sends them: the same frames, masked with a zero key.
    let masked = mask_frames(&wire);
    let client = DeflateParams {
        client_no_context_takeover: params.server_no_context_takeover,
        client_max_window_bits: params.server_max_window_bits,
        ..params
    };
    let mut inflater = Inflater::new(client, false, usize::MAX);
    inflater.feed(&masked);
    let mut plain = Vec::new();
    while inflater.process() || !inflater.output().is_empty() {
        assert!(inflater.fault().is_none(), "{:?}", inflater.fault());
        plain.extend_from_slice(inflater.output());
        let n = inflater.output().len();
        inflater.consume(n);
    }
    assert!(inflater.fault().is_none());
    assert_eq!(payloads(&plain), messages);
}

fn push_len(frame: &mut Vec<u8>, len: usize, masked: bool) {
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        frame.push(m | len as u8);
    } else if len <= 0xffff {
        frame.push(m | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(m | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Server frames (unmasked) rewritten as client frames with a zero mask.
fn mask_frames(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let (b0, b1) = (wire[at], wire[at + 1]);
        let (len, head) = match b1 & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]])),
                4,
            ),
            127 => {
                let bytes: [u8; 8] = wire[at + 2..at + 10].try_into().unwrap_or_default();
                (u64::from_be_bytes(bytes) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        out.push(b0);
        push_len(&mut out, len, true);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&wire[at + head..at + head + len]);
        at += head + len;
    }
    out
}

/// The payload of each message in a stream of (zero-masked, unfragmented
/// or fragmented) client frames.
fn payloads(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let (b0, b1) = (wire[at], wire[at + 1]);
        let (len, head) = match b1 & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]])),
                4,
            ),
            127 => {
                let bytes: [u8; 8] = wire[at + 2..at + 10].try_into().unwrap_or_default();
                (u64::from_be_bytes(bytes) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        let start = at + head + 4;
        current.extend_from_slice(&wire[start..start + len]);
        at = start + len;
        if b0 & 0x80 != 0 {
            messages.push(std::mem::take(&mut current));
        }
    }
    messages
}
