//! Frame boundaries in the bytes handed to tungstenite, so that the socket
//! layer knows when tungstenite holds no partial frame and no partial
//! message (and its buffers can be dropped).

/// Follows frame headers (RFC 6455 §5.2) in a byte stream.
#[derive(Debug, Default)]
pub(crate) struct FrameTracker {
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// A text or binary frame without FIN started a message not yet ended.
    fragmented: bool,
    /// The frame being handed out ends a message (or is a control frame):
    /// tungstenite yields one item for it.
    completes: bool,
    /// Items tungstenite will have yielded once it has read every byte
    /// handed out so far (a wrapping count).
    messages: u64,
}

impl FrameTracker {
    pub(crate) fn at_rest(&self) -> bool {
        self.have == 0 && self.remaining == 0 && !self.fragmented
    }

    /// Observes `data` up to the start of a frame that should be read past
    /// tungstenite (see `direct`), and returns where it starts: a final,
    /// masked text or binary frame, without RSV bits, at a point where no
    /// message is open, of `min..=max` payload bytes, whose header is whole
    /// in `data` and whose payload runs past its end. Everything before it
    /// is observed; the frame itself is not (it is not handed out).
    pub(crate) fn observe_until_large(
        &mut self,
        data: &[u8],
        min: usize,
        max: usize,
    ) -> Option<usize> {
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            if self.at_rest() && large_frame(rest, min, max).is_some_and(|n| n > rest.len()) {
                return Some(at);
            }
            // A payload is skipped whole; a header is taken a byte at a
            // time, so that every boundary is looked at.
            let step = match usize::try_from(self.remaining) {
                Ok(0) => 1,
                Ok(r) => r.min(rest.len()),
                Err(_) => rest.len(),
            };
            self.observe(&rest[..step]);
            at += step;
        }
        None
    }

    /// How many items (messages and control frames) the bytes handed out
    /// so far make, counted from the connection's start, wrapping.
    pub(crate) fn messages(&self) -> u64 {
        self.messages
    }

    pub(crate) fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip =
                    usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
                self.remaining -= skip as u64;
                data = &data[skip..];
                if self.remaining == 0 && self.completes {
                    self.messages = self.messages.wrapping_add(1);
                }
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have < 2 {
                continue;
            }
            let ext = match self.header[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
            if self.have < 2 + ext + mask {
                continue;
            }
            self.remaining = match ext {
                2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                8 => u64::from_be_bytes([
                    self.header[2],
                    self.header[3],
                    self.header[4],
                    self.header[5],
                    self.header[6],
                    self.header[7],
                    self.header[8],
                    self.header[9],
                ]),
                _ => u64::from(self.header[1] & 0x7f),
            };
            let fin = self.header[0] & 0x80 != 0;
            match self.header[0] & 0x0f {
                // Text or binary: a message starts; it stays open without FIN.
                0x1 | 0x2 => self.fragmented = !fin,
                // Continuation: FIN ends the message.
                0x0 if fin => self.fragmented = false,
                // Control frames (and invalid opcodes, which end the
                // connection anyway) leave the message state alone.
                _ => {}
            }
            let opcode = self.header[0] & 0x0f;
            self.completes = fin || opcode >= 0x8;
            if self.remaining == 0 && self.completes {
                self.messages = self.messages.wrapping_add(1);
            }
            self.have = 0;
        }
    }
}

/// Whether `wire` starts with the header of a frame for the direct read
/// (see [`FrameTracker::observe_until_large`]), and if so, its length
/// (header and payload).
pub(crate) fn large_frame(wire: &[u8], min: usize, max: usize) -> Option<usize> {
    // FIN, no RSV, text or binary; masked, with an extended length.
    if wire.len() < 2 || !matches!(wire[0], 0x81 | 0x82) || wire[1] < 0x80 | 126 {
        return None;
    }
    let (len, header) = crate::wire::header_len(wire)?;
    if !(min as u64..=max as u64).contains(&len) {
        return None;
    }
    header.checked_add(usize::try_from(len).ok()?)
}

#[cfg(test)]
mod tests {
    use super::FrameTracker;

    #[test]
    fn tracks_boundaries_byte_by_byte_and_in_chunks() {
        // Masked text "hello", a 300-byte binary (16-bit length), a
        // fragmented text with a ping in the middle.
        let mut big = vec![0x82, 0x80 | 126, 0x01, 0x2c, 0, 0, 0, 0];
        big.extend(std::iter::repeat_n(7u8, 300));
        let frames = [
            vec![0x81, 0x85, 1, 2, 3, 4, b'h', b'e', b'l', b'l', b'o'],
            big,
            vec![0x01, 0x81, 0, 0, 0, 0, b'a'],
            vec![0x89, 0x80, 0, 0, 0, 0],
            vec![0x80, 0x81, 0, 0, 0, 0, b'b'],
        ];
        let rest_after = [true, true, false, false, true];

        let mut chunked = FrameTracker::default();
        let mut bytewise = FrameTracker::default();
        for (frame, rest) in frames.iter().zip(rest_after) {
            for (i, b) in frame.iter().enumerate() {
                bytewise.observe(std::slice::from_ref(b));
                if i + 1 < frame.len() {
                    assert!(!bytewise.at_rest(), "mid-frame is never at rest");
                }
            }
            assert_eq!(bytewise.at_rest(), rest);
            chunked.observe(frame);
            assert_eq!(chunked.at_rest(), rest);
        }
    }

    #[test]
    fn large_frames_are_found_at_boundaries_only() {
        let small = [0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
        let mut large = vec![0x82, 0x80 | 126, 0x50, 0x00, 1, 2, 3, 4];
        large.extend_from_slice(&[9; 100]);
        let mut data = small.to_vec();
        data.extend_from_slice(&large);

        let mut t = FrameTracker::default();
        assert_eq!(
            t.observe_until_large(&data, 16_384, 1 << 20),
            Some(small.len())
        );
        assert!(
            t.at_rest(),
            "the small frame was observed, the large one not"
        );
        // Too large for the limit, or too small: observed as usual.
        let mut t = FrameTracker::default();
        assert_eq!(t.observe_until_large(&data, 16_384, 20_000), None);
        assert!(!t.at_rest());
        // Whole in the bytes read: tungstenite has all of it already.
        let mut whole = vec![0x82, 0x80 | 126, 0x40, 0x00, 0, 0, 0, 0];
        whole.extend_from_slice(&vec![0; 0x4000]);
        let mut t = FrameTracker::default();
        assert_eq!(t.observe_until_large(&whole, 16_384, 1 << 20), None);
        assert!(t.at_rest());
        // Inside a fragmented message, a "large frame" is a protocol error
        // for tungstenite to find, not a message.
        let mut t = FrameTracker::default();
        t.observe(&[0x01, 0x81, 0, 0, 0, 0, b'a']);
        assert_eq!(t.observe_until_large(&large, 16_384, 1 << 20), None);
        // A header cut before its end is left to tungstenite.
        let mut t = FrameTracker::default();
        assert_eq!(t.observe_until_large(&large[..3], 16_384, 1 << 20), None);
        assert!(!t.at_rest());
    }

    #[test]
    fn counts_the_items_tungstenite_will_yield() {
        // Text, a fragmented binary with a ping inside, an empty close:
        // (frame, items after it, whether it ends an item).
        let frames: [(&[u8], u64, bool); 5] = [
            (&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i'], 1, true),
            (&[0x02, 0x81, 0, 0, 0, 0, 1], 1, false),
            (&[0x89, 0x80, 0, 0, 0, 0], 2, true),
            (&[0x80, 0x81, 0, 0, 0, 0, 2], 3, true),
            (&[0x88, 0x80, 0, 0, 0, 0], 4, true),
        ];
        let mut t = FrameTracker::default();
        for (frame, after, ends) in frames {
            let (head, last) = frame.split_at(frame.len() - 1);
            t.observe(head);
            // Not before the frame's last byte.
            assert_eq!(t.messages(), after - u64::from(ends));
            t.observe(last);
            assert_eq!(t.messages(), after);
        }
    }

    #[test]
    fn sixty_four_bit_lengths() {
        let mut t = FrameTracker::default();
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&70_000u64.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]);
        t.observe(&header);
        t.observe(&vec![0u8; 69_999]);
        assert!(!t.at_rest());
        t.observe(&[0]);
        assert!(t.at_rest());
    }

    /// Random frames (every length class, masked or not, fragmented
    /// messages with control frames inside) cut into random chunks: the
    /// tracker is at rest exactly at the ends of frames outside a
    /// fragmented message, whatever the chunking.
    #[test]
    fn random_frames_in_random_chunks() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for _ in 0..200 {
            let mut wire = Vec::new();
            // Byte offsets where the stream is at rest.
            let mut rest_at = vec![0usize];
            let mut open = false;
            for _ in 0..(1 + next(12)) {
                let control = open && next(3) == 0;
                let (opcode, fin) = if control {
                    (0x9, true)
                } else if open {
                    (0x0, next(2) == 0)
                } else {
                    (1 + next(2) as u8, next(2) == 0)
                };
                let len = match next(4) {
                    0 => next(126) as usize,
                    1 => 126 + next(1000) as usize,
                    2 => 65_536 + next(1000) as usize,
                    _ => 0,
                };
                let len = if control { len.min(125) } else { len };
                let masked = next(2) == 0;
                wire.push(if fin { 0x80 } else { 0 } | opcode);
                let mask_bit = if masked { 0x80 } else { 0 };
                if len < 126 {
                    wire.push(mask_bit | len as u8);
                } else if len <= 0xffff {
                    wire.push(mask_bit | 126);
                    wire.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    wire.push(mask_bit | 127);
                    wire.extend_from_slice(&(len as u64).to_be_bytes());
                }
                if masked {
                    wire.extend_from_slice(&[1, 2, 3, 4]);
                }
                wire.resize(wire.len() + len, 0x5a);
                if !control {
                    open = !fin;
                }
                if !open {
                    rest_at.push(wire.len());
                }
            }
            let mut tracker = FrameTracker::default();
            let mut at = 0;
            while at < wire.len() {
                let take = (1 + next(3000) as usize).min(wire.len() - at);
                tracker.observe(&wire[at..at + take]);
                at += take;
                assert_eq!(tracker.at_rest(), rest_at.contains(&at), "at byte {at}");
            }
        }
    }
}
