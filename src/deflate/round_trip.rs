//! A round trip through both sides of the layer, for the fuzz target and
//! the unit tests: messages compressed by the write side, masked as a
//! client would send them, inflated by the read side.

use crate::wire::{header_len, write_header};

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
        let mut frame = Vec::new();
        write_header(&mut frame, 0x82, msg.len(), false);
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

/// Each frame of `wire`: its first byte and payload.
fn frames(wire: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let (len, head) = header_len(&wire[at..])?;
        let start = at + head;
        let end = start + usize::try_from(len).ok()?;
        let frame = (wire[at], wire.get(start..end)?);
        at = end;
        Some(frame)
    })
}

/// Server frames (unmasked) rewritten as client frames with a zero mask.
fn mask_frames(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (b0, payload) in frames(wire) {
        write_header(&mut out, b0, payload.len(), true);
        out.extend_from_slice(payload);
    }
    out
}

/// The payload of each message in a stream of (zero-masked, unfragmented
/// or fragmented) client frames.
fn payloads(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current = Vec::new();
    for (b0, payload) in frames(wire) {
        current.extend_from_slice(payload);
        if b0 & 0x80 != 0 {
            messages.push(std::mem::take(&mut current));
        }
    }
    messages
}
