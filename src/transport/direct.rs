//! Large data frames that go between the socket and the peer without
//! passing through tungstenite's buffers.
//!
//! tungstenite copies every outgoing message into its write buffer (and,
//! when the socket takes only part of it, moves the rest to the front);
//! for a large message that is two copies of the payload the wire does not
//! need, since a server's frames are not masked. An [`Outgoing`] frame is
//! the header and the message's own bytes, written with one `writev` and
//! followed by an offset, not a copy.
//!
//! Reading, tungstenite zero-fills its read buffer before every read (up to
//! the read buffer size) and, when a frame's header arrives with part of
//! its payload, reserves the payload length on top and copies what it has
//! into the larger buffer. An [`Incoming`] frame is read instead into a
//! buffer of exactly its size, left uninitialised until the socket fills it
//! (tokio's `try_read_buf`), and unmasked in place: the payload becomes the
//! message without another copy. While large frames follow one another,
//! the [`Reader`] reads ahead into a buffer of its own (no zero-filling),
//! so that even the read that brings a frame's header costs no copy; bytes
//! read ahead that are not a large frame go to tungstenite as they would
//! have.

use std::io::{self, IoSlice};
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::ReadBuf;
use tokio_tungstenite::tungstenite as ts;

use super::frames::{large_frame, FrameTracker};
use super::tcp::SharedTcp;
use crate::wire;

/// The smallest message worth a path of its own past tungstenite's
/// buffers (below it, a copy costs less than a system call more).
pub(crate) const MIN: usize = 16 * 1024;

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

/// A large frame from the peer, read past tungstenite: its header and as
/// much of its payload as has arrived.
pub(crate) struct Incoming {
    buf: BytesMut,
    /// Header and payload.
    total: usize,
    header: usize,
    mask: [u8; 4],
}

impl Incoming {
    /// Starts with `first`: the frame's whole header and the start of its
    /// payload, and nothing past the frame (the transport checked).
    pub(crate) fn new(first: &[u8]) -> Option<Self> {
        let (len, header) = wire::header_len(first)?;
        let total = header.checked_add(usize::try_from(len).ok()?)?;
        let mut buf = BytesMut::with_capacity(total);
        buf.extend_from_slice(first);
        Self::from_buf(buf)
    }

    /// Starts with `buf`, which holds the frame's whole header and no byte
    /// past the frame; it grows to the frame's size if need be.
    pub(crate) fn from_buf(mut buf: BytesMut) -> Option<Self> {
        let (len, header) = wire::header_len(&buf)?;
        let total = header.checked_add(usize::try_from(len).ok()?)?;
        // Called for masked frames only: the key ends the header.
        let mask = buf.get(header.checked_sub(4)?..header)?.try_into().ok()?;
        let need = total.checked_sub(buf.len())?;
        buf.reserve(need);
        Some(Self {
            buf,
            total,
            header,
            mask,
        })
    }

    /// Moves the frame's bytes from the front of `staged` (bytes read ahead).
    pub(crate) fn feed(&mut self, staged: &mut BytesMut) {
        let take = (self.total - self.buf.len()).min(staged.len());
        self.buf.extend_from_slice(&staged.split_to(take));
    }

    /// Where the socket's next bytes go: no further than the frame's end.
    pub(crate) fn spare(&mut self) -> impl BufMut + '_ {
        let need = self.total - self.buf.len();
        (&mut self.buf).limit(need)
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.buf.len() == self.total
    }

    /// The message: unmasked, and for text checked to be UTF-8 (1007
    /// otherwise, as tungstenite would say).
    pub(crate) fn finish(mut self) -> Result<ts::Message, ts::Error> {
        let text = self.buf[0] & 0x0f == 0x1;
        let mut payload = self.buf.split_off(self.header);
        wire::apply_mask(&mut payload, self.mask, 0);
        let payload = payload.freeze();
        if text {
            let text =
                ts::Utf8Bytes::try_from(payload).map_err(|err| ts::Error::Utf8(err.to_string()))?;
            return Ok(ts::Message::Text(text));
        }
        Ok(ts::Message::Binary(payload))
    }
}

/// The read side of the direct path, on a TCP socket of our own.
#[derive(Default)]
pub(crate) struct Reader {
    /// While tungstenite reads (and is not closing): the largest payload
    /// to take (the message size limit) and how much to read ahead at once
    /// (tungstenite's read buffer size).
    limits: Option<(usize, usize)>,
    incoming: Option<Incoming>,
    /// tungstenite has asked for bytes since the large frame began, so it
    /// holds no frame that came before it: the frame is read without
    /// asking tungstenite first (which zero-fills its read buffer on every
    /// attempt).
    incoming_next: bool,
    /// Bytes read ahead that were not a large frame: tungstenite's, first.
    staged: Option<BytesMut>,
    /// Bytes read ahead past a large frame that may begin the next one (a
    /// header cut short, or a large frame's start): the next read ahead
    /// continues them.
    carry: Option<BytesMut>,
    /// The last frame was large: read ahead before asking tungstenite.
    ahead: bool,
}

impl Reader {
    pub(crate) fn set_limits(&mut self, limits: Option<(usize, usize)>) {
        self.limits = limits;
        if limits.is_none() {
            self.ahead = false;
            // tungstenite reads them now.
            if self.staged.is_none() {
                self.staged = self.carry.take();
            }
        }
    }

    /// Nothing read and not yet handed on.
    pub(crate) fn at_rest(&self) -> bool {
        self.incoming.is_none() && self.staged.is_none() && self.carry.is_none()
    }

    pub(crate) fn incoming_is_next(&self) -> bool {
        self.incoming_next
    }

    /// The next read should be ours, not tungstenite's: large frames have
    /// been coming, and tungstenite holds nothing (it has just been
    /// drained up to the large frame the reader took).
    pub(crate) fn reads_ahead(&self) -> bool {
        self.ahead && self.limits.is_some() && self.incoming.is_none() && self.staged.is_none()
    }

    /// The large frame, once whole, as tungstenite would have made it.
    pub(crate) fn take_incoming(&mut self) -> Option<Result<ts::Message, ts::Error>> {
        if !self.incoming.as_ref()?.is_complete() {
            return None;
        }
        self.incoming_next = false;
        self.ahead = true;
        self.incoming.take().map(Incoming::finish)
    }

    /// Reads more of the large frame; ready once it is whole.
    pub(crate) fn poll_incoming(
        &mut self,
        tcp: &SharedTcp,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(incoming) = &mut self.incoming else {
            return Poll::Ready(Ok(()));
        };
        while !incoming.is_complete() {
            let n = ready!(tcp.poll_read_buf(cx, &mut incoming.spare()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads ahead (see [`reads_ahead`](Self::reads_ahead)): what comes is
    /// either a large frame, read on as one, or bytes for tungstenite.
    pub(crate) fn poll_read_ahead(
        &mut self,
        tcp: &SharedTcp,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Some((max, size)) = self.limits else {
            return Poll::Ready(Ok(()));
        };
        // Room for a frame of the read size and its header in one piece,
        // after what the last read ahead left; made once the socket is
        // readable.
        let before = self.carry.as_ref().map_or(0, BytesMut::len);
        let read = match tcp.poll_read_lazy(cx, &mut self.carry, |carry| {
            let mut buf = carry.unwrap_or_default();
            buf.reserve(size + wire::MAX_HEADER);
            buf
        }) {
            Poll::Ready(read) => read?,
            Poll::Pending => {
                // An empty buffer is no carry (and would keep the
                // connection from going dormant).
                if self.carry.as_ref().is_some_and(BytesMut::is_empty) {
                    self.carry = None;
                }
                return Poll::Pending;
            }
        };
        let mut buf = self.carry.take().unwrap_or_default();
        if read == 0 {
            // The end: tungstenite reads it (and what came before).
            self.ahead = false;
            self.staged = (before > 0).then_some(buf);
            return Poll::Ready(Ok(()));
        }
        match large_frame(&buf, MIN, max) {
            Some(total) => {
                let rest = (buf.len() > total).then(|| buf.split_off(total));
                self.incoming = Incoming::from_buf(buf);
                self.incoming_next = true;
                match rest {
                    // The next frame's start: read on from it next time.
                    Some(rest) if begins_large(&rest, max) => self.carry = Some(rest),
                    rest => self.staged = rest,
                }
            }
            _ if begins_large(&buf, max) => self.carry = Some(buf),
            _ => {
                self.ahead = false;
                self.staged = Some(buf);
            }
        }
        Poll::Ready(Ok(()))
    }

    /// tungstenite's read: bytes read ahead first, then the socket; a large
    /// frame in what is read is cut off and read on here, while tungstenite
    /// gets the frames before it.
    pub(crate) fn poll_read(
        &mut self,
        tcp: &SharedTcp,
        frames: &mut FrameTracker,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Whatever is staged comes after the large frame.
        if self.incoming.is_some() {
            return self.poll_read_during_incoming(tcp, cx);
        }
        if self.staged.is_none() {
            self.staged = self.carry.take();
        }
        let before = buf.filled().len();
        match &mut self.staged {
            Some(staged) => {
                let n = staged.len().min(buf.remaining());
                buf.put_slice(&staged[..n]);
                staged.advance(n);
                if staged.is_empty() {
                    self.staged = None;
                }
            }
            None => ready!(tcp.poll_read(cx, buf))?,
        }
        let read = &buf.filled()[before..];
        let Some((max, _)) = self.limits else {
            frames.observe(read);
            return Poll::Ready(Ok(()));
        };
        let Some(at) = frames.observe_until_large(read, MIN, max) else {
            return Poll::Ready(Ok(()));
        };
        let Some(mut incoming) = Incoming::new(&read[at..]) else {
            frames.observe(&read[at..]);
            return Poll::Ready(Ok(()));
        };
        // The frame may go on in what was read ahead.
        if let Some(staged) = &mut self.staged {
            incoming.feed(staged);
            if staged.is_empty() {
                self.staged = None;
            }
        }
        self.incoming = Some(incoming);
        buf.set_filled(before + at);
        if at > 0 {
            return Poll::Ready(Ok(()));
        }
        // Nothing for tungstenite now (no bytes would read as the end of
        // the stream): it waits, and the reader takes the frame when whole.
        self.poll_read_during_incoming(tcp, cx)
    }

    fn poll_read_during_incoming(
        &mut self,
        tcp: &SharedTcp,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.incoming_next = true;
        // Whole or not, tungstenite waits: the socket's reader asks for the
        // frame each time tungstenite has nothing (and while the frame is
        // not whole, the socket's waker is registered for more).
        ready!(self.poll_incoming(tcp, cx))?;
        Poll::Pending
    }
}

/// Whether `wire` may be the start of a large frame: a header cut short
/// (too short to tell), or a large frame's header with its payload still to
/// come.
fn begins_large(wire: &[u8], max: usize) -> bool {
    match wire::header_len(wire) {
        None => wire.len() < wire::MAX_HEADER,
        Some(_) => large_frame(wire, MIN, max).is_some_and(|total| total > wire.len()),
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

    #[test]
    fn incoming_frames_unmask_and_check_utf8() {
        let mask = [1, 2, 3, 4];
        let mut payload = "é".repeat(20_000).into_bytes();
        let (header, n) = wire::header(0x81, payload.len(), true);
        let mut wire_bytes = header[..n].to_vec();
        let key_at = wire_bytes.len() - 4;
        wire_bytes[key_at..].copy_from_slice(&mask);
        let plain = payload.clone();
        wire::apply_mask(&mut payload, mask, 0);
        wire_bytes.extend_from_slice(&payload);

        let mut incoming = Incoming::new(&wire_bytes[..100]).unwrap();
        assert!(!incoming.is_complete());
        {
            let mut spare = incoming.spare();
            assert_eq!(spare.remaining_mut(), wire_bytes.len() - 100);
            spare.put_slice(&wire_bytes[100..]);
        }
        assert!(incoming.is_complete());
        match incoming.finish().unwrap() {
            ts::Message::Text(text) => assert_eq!(text.as_bytes(), &plain[..]),
            other => panic!("expected text, got {other:?}"),
        }

        // Cut inside a two-byte character: not UTF-8.
        let mut bad = plain[..plain.len() - 1].to_vec();
        bad.push(b'x');
        let (header, n) = wire::header(0x81, bad.len(), true);
        let mut wire_bytes = header[..n].to_vec();
        // All-zero key: the payload goes as it is.
        wire_bytes.extend_from_slice(&bad);
        let mut incoming = Incoming::new(&wire_bytes[..n]).unwrap();
        incoming.spare().put_slice(&wire_bytes[n..]);
        assert!(matches!(incoming.finish(), Err(ts::Error::Utf8(_))));
    }
}
