//! The byte stream under a WebSocket: the upgraded connection, unwrapped to
//! the plain `TcpStream` when possible, with a frame-boundary tracker and a
//! lingering close.
//!
//! Three things live here because tungstenite cannot do them:
//!
//! - **Unwrapping.** hyper hands over an `Upgraded`, a boxed `dyn Io` behind
//!   a rewind buffer; every read and write through it is a virtual call. When
//!   the connection is a `TcpStream` served by hyper or hyper-util, it is
//!   taken back out, and any bytes hyper had already read are handed to
//!   tungstenite as already-read data.
//! - **Frame boundaries.** tungstenite allocates its read buffer up front
//!   and keeps it for the connection's life. To let an idle connection give
//!   that memory back, the socket layer must know when tungstenite holds no
//!   partial frame and no partial message; the transport follows the frame
//!   headers in the bytes it hands out (a few comparisons per frame, the
//!   payload is skipped) and says so.
//! - **Lingering close.** After the server sends a close frame because the
//!   peer misbehaved (e.g. a message over the size limit), dropping the
//!   socket with unread data would make the kernel send a reset, and the
//!   peer might lose the close frame. The transport instead half-closes and
//!   drains the socket for a bounded time in a background task.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long a lingering close may drain the socket.
const LINGER: Duration = Duration::from_secs(2);

enum Io {
    Tcp(TcpStream),
    Upgraded(TokioIo<Upgraded>),
    /// Moved out by the lingering close.
    Gone,
}

pub(crate) struct Transport {
    io: Io,
    frames: FrameTracker,
    linger: bool,
    /// Bytes the last write left unwritten because the socket was full.
    /// tungstenite hands its whole output buffer to each write, so this is
    /// how much output waits for the peer.
    unwritten: usize,
}

impl Transport {
    /// Unwraps the upgraded connection when it is a `TcpStream`; returns the
    /// transport and the bytes already read past the HTTP request, if any.
    pub(crate) fn new(upgraded: Upgraded) -> (Self, Option<Vec<u8>>) {
        let (io, read_buf) = unwrap(upgraded);
        let mut transport = Self {
            io,
            frames: FrameTracker::default(),
            linger: false,
            unwritten: 0,
        };
        // Copied out so hyper's whole read buffer is not kept alive by it.
        let prefix = (!read_buf.is_empty()).then(|| read_buf.to_vec());
        if let Some(prefix) = &prefix {
            transport.frames.observe(prefix);
        }
        (transport, prefix)
    }

    /// Every byte handed out so far ends a whole frame, and no fragmented
    /// message is open: a reader of these bytes holds nothing partial.
    pub(crate) fn at_rest(&self) -> bool {
        self.frames.at_rest()
    }

    /// Output waiting for the peer to read, as of the last write.
    pub(crate) fn unwritten(&self) -> usize {
        self.unwritten
    }

    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        match &self.io {
            Io::Tcp(tcp) => tcp.peer_addr().ok(),
            _ => None,
        }
    }

    /// Drain and half-close the socket in the background when dropped.
    pub(crate) fn linger_on_drop(&mut self) {
        self.linger = true;
    }
}

fn unwrap(upgraded: Upgraded) -> (Io, bytes::Bytes) {
    // Served by `serve`, which looked at the first bytes itself.
    let upgraded = match upgraded.downcast::<TokioIo<Sniffed>>() {
        Ok(parts) => {
            let sniffed = parts.io.into_inner();
            // hyper read the sniffed bytes first: its leftovers come first.
            let rest = if sniffed.prefix.is_empty() {
                parts.read_buf
            } else {
                let mut all = bytes::BytesMut::from(parts.read_buf);
                all.extend_from_slice(&sniffed.prefix);
                all.freeze()
            };
            return (Io::Tcp(sniffed.tcp), rest);
        }
        Err(upgraded) => upgraded,
    };
    #[cfg(feature = "http2")]
    let upgraded =
        match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
            Ok(parts) => return (Io::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => upgraded,
        };
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => (Io::Tcp(parts.io.into_inner()), parts.read_buf),
        Err(upgraded) => (Io::Upgraded(TokioIo::new(upgraded)), bytes::Bytes::new()),
    }
}

/// A connection whose first bytes were read to tell HTTP/1.1 from HTTP/2;
/// they are replayed before the socket is read again.
#[cfg_attr(not(feature = "router"), allow(dead_code))]
pub(crate) struct Sniffed {
    prefix: bytes::Bytes,
    tcp: TcpStream,
}

#[cfg_attr(not(feature = "router"), allow(dead_code))]
impl Sniffed {
    pub(crate) fn new(tcp: TcpStream, prefix: bytes::Bytes) -> Self {
        Self { prefix, tcp }
    }
}

impl AsyncRead for Sniffed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Sniffed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.frames.observe(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

/// Follows frame headers (RFC 6455 §5.2) in a byte stream.
#[derive(Debug, Default)]
struct FrameTracker {
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// A text or binary frame without FIN started a message not yet ended.
    fragmented: bool,
}

impl FrameTracker {
    fn at_rest(&self) -> bool {
        self.have == 0 && self.remaining == 0 && !self.fragmented
    }

    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip =
                    usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
                self.remaining -= skip as u64;
                data = &data[skip..];
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
            self.have = 0;
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.unwritten = match &poll {
            Poll::Ready(Ok(n)) => buf.len().saturating_sub(*n),
            Poll::Pending => buf.len(),
            Poll::Ready(Err(_)) => 0,
        };
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        if !self.linger {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut io = std::mem::replace(&mut self.io, Io::Gone);
        runtime.spawn(async move {
            let drain = async {
                io.shutdown().await?;
                let mut sink = [0u8; 4096];
                while io.read(&mut sink).await? > 0 {}
                io::Result::Ok(())
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "transport already released")
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            Io::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
            Io::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            Io::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
            Io::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Upgraded(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(io) => io.is_write_vectored(),
            Io::Upgraded(io) => io.is_write_vectored(),
            Io::Gone => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(io) => Pin::new(io).poll_flush(cx),
            Io::Upgraded(io) => Pin::new(io).poll_flush(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            Io::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
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
