//! The RFC 6455 frame format, as far as this crate reads and writes frames
//! itself (the deflate layer, and the transport's direct paths for large
//! messages): header lengths, header writing and (un)masking.

/// The longest frame header: two bytes, a 64-bit length and a mask key.
pub(crate) const MAX_HEADER: usize = 14;

/// The payload length and header length (mask included) of the frame at
/// the start of `wire`, once its whole header is there.
pub(crate) fn header_len(wire: &[u8]) -> Option<(u64, usize)> {
    let b1 = *wire.get(1)?;
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    let (len, at) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*wire.get(2)?, *wire.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = wire.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        n => (u64::from(n), 2),
    };
    if wire.len() < at + mask {
        return None;
    }
    Some((len, at + mask))
}

/// A frame header: first byte `b0`, payload length `len`, and with
/// `zero_mask` the mask bit and an all-zero key (how tungstenite must see a
/// client's frame; the payload then needs no masking). Returns the bytes
/// and how many of them are the header.
pub(crate) fn header(b0: u8, len: usize, zero_mask: bool) -> ([u8; MAX_HEADER], usize) {
    let mut out = [0; MAX_HEADER];
    let mask = if zero_mask { 0x80 } else { 0 };
    out[0] = b0;
    let mut at = 2;
    if len < 126 {
        out[1] = mask | len as u8;
    } else if let Ok(len) = u16::try_from(len) {
        out[1] = mask | 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        at = 4;
    } else {
        out[1] = mask | 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        at = 10;
    }
    // The key is all zeros: the bytes are there already.
    if zero_mask {
        at += 4;
    }
    (out, at)
}

/// Appends a frame header (see [`header`]).
#[cfg(feature = "deflate")]
pub(crate) fn write_header(out: &mut Vec<u8>, b0: u8, len: usize, zero_mask: bool) {
    let (bytes, n) = header(b0, len, zero_mask);
    out.extend_from_slice(&bytes[..n]);
}

/// XORs `bytes` with the masking key, starting `offset` bytes into the
/// payload; applied twice, it gives the bytes back. Eight bytes at a time
/// (the compiler widens it further), without `unsafe`.
pub(crate) fn apply_mask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = [0u8; 8];
    for (i, k) in key.iter_mut().enumerate() {
        *k = mask[(offset + i) % 4];
    }
    let wide = u64::from_ne_bytes(key);
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().unwrap_or([0; 8])) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_at_each_length_boundary() {
        for len in [0, 1, 125, 126, 65_535, 65_536, 1 << 32] {
            for zero_mask in [false, true] {
                let (bytes, n) = header(0x82, len, zero_mask);
                let parsed = header_len(&bytes[..n]).expect("a whole header");
                assert_eq!(parsed, (len as u64, n), "len {len} mask {zero_mask}");
                assert_eq!(header_len(&bytes[..n - 1]), None);
            }
        }
    }

    #[test]
    fn masking_matches_the_definition_at_every_offset_and_length() {
        let mask = [0x6d, 0xb6, 0xb2, 0x80];
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for offset in 0..4 {
            for len in [0, 1, 7, 8, 9, 63, 64, 65, 300] {
                let mut fast = data[..len].to_vec();
                apply_mask(&mut fast, mask, offset);
                let slow: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }
}
