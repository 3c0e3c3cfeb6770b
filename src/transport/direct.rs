//! Large data frames that go between the socket and the peer without
//! passing through tungstenite's buffers.
//!
//! tungstenite copies every outgoing message into its write buffer (and,
//! when the socket takes only part of it, moves the rest to the front);
//! for a large message that is two copies of the payload the wire does not
//! need, since a server's frames are not masked. An [`Outgoing`] frame is
//! the header and the message's own bytes, written with one `writev` and
//! followed by an offset, not a copy.

use std::io::IoSlice;

use bytes::Bytes;

use crate::wire;

/// A data frame on its way to the peer: written after every byte handed
/// to the transport before it, and before every byte handed after it.
pub(crate) struct Outgoing {
    header: [u8; wire::MAX_HEADER],
    header_len: usize,
    payload: Bytes,
    /// Bytes of header and payload written so far.
    written: usize,
}

impl Outgoing {
    /// A final (unfragmented) frame with first byte `b0` (FIN, RSV bits and
    /// opcode) and this payload.
    pub(crate) fn new(b0: u8, payload: Bytes) -> Self {
        let (header, header_len) = wire::header(b0, payload.len(), false);
        Self {
            header,
            header_len,
            payload,
            written: 0,
        }
    }

    /// Bytes still to write.
    pub(crate) fn remaining(&self) -> usize {
        self.header_len + self.payload.len() - self.written
    }

    /// What is left to write, as slices for one vectored write.
    pub(crate) fn slices(&self) -> [IoSlice<'_>; 2] {
        let head = self.written.min(self.header_len);
        let body = self.written.saturating_sub(self.header_len);
        [
            IoSlice::new(&self.header[head..self.header_len]),
            IoSlice::new(&self.payload[body..]),
        ]
    }

    /// Counts `n` more bytes as written; true once the whole frame is.
    pub(crate) fn advance(&mut self, n: usize) -> bool {
        self.written += n;
        self.remaining() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_follow_partial_writes_through_header_and_payload() {
        let payload = Bytes::from(vec![7u8; 200]);
        let mut out = Outgoing::new(0x82, payload);
        // 0x82, 126, two length bytes.
        assert_eq!(out.remaining(), 204);
        assert_eq!(&*out.slices()[0], &[0x82, 126, 0, 200]);
        assert!(!out.advance(3));
        assert_eq!(&*out.slices()[0], &[200]);
        assert_eq!(out.slices()[1].len(), 200);
        assert!(!out.advance(101));
        assert!(out.slices()[0].is_empty());
        assert_eq!(out.slices()[1].len(), 100);
        assert!(out.advance(100));
        assert_eq!(out.remaining(), 0);
    }
}
