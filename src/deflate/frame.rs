//! What both sides of the layer need of RFC 6455 framing: reading a frame
//! header's lengths, writing a header, (un)masking, and a buffer of bytes
//! waiting to be handed on.

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

/// Appends a frame header: first byte `b0`, payload length `len`, and with
/// `zero_mask` the mask bit and an all-zero key (how tungstenite must see a
/// client's frame; the payload then needs no masking).
pub(crate) fn write_header(out: &mut Vec<u8>, b0: u8, len: usize, zero_mask: bool) {
    let mask = if zero_mask { 0x80 } else { 0 };
    out.push(b0);
    if len < 126 {
        out.push(mask | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if zero_mask {
        out.extend_from_slice(&[0; 4]);
    }
}

/// XORs `bytes` with the masking key, starting `offset` bytes into the
/// payload; applied twice, it gives the bytes back.
pub(crate) fn apply_mask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

/// Bytes waiting to be handed on, consumed from the front.
#[derive(Default)]
pub(crate) struct Pending {
    buf: Vec<u8>,
    pos: usize,
}

impl Pending {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The buffer to append to.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Marks `n` bytes as handed on.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Gives the memory back when nothing waits.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            *self = Self::default();
        }
    }
}
