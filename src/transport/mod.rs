//! The byte stream under a WebSocket: the upgraded connection, unwrapped to
//! the plain `TcpStream` when possible, with a frame-boundary tracker, the
//! direct paths for large messages and a lingering close.
//!
//! What lives here, because tungstenite cannot do it:
//!
//! - **Unwrapping** (`upgraded`). hyper hands over an `Upgraded`, a boxed
//!   `dyn Io` behind a rewind buffer; every read and write through it is a
//!   virtual call. When the connection is a `TcpStream` served by hyper or
//!   hyper-util (or by `serve`, which says how to unwrap its own type), it is
//!   taken back out, and any bytes hyper had already read are handed to
//!   tungstenite as already-read data.
//! - **Frame boundaries** (`frames`). tungstenite allocates its read buffer
//!   up front and keeps it for the connection's life. To let an idle
//!   connection give that memory back, the socket layer must know when
//!   tungstenite holds no partial frame and no partial message (and, by
//!   counting, when it holds nothing at all); the transport follows the
//!   frame headers in the bytes it hands out (a few comparisons per frame,
//!   the payload is skipped) and says so.
//! - **Large messages** (`direct`): written from the message's own bytes,
//!   and read into a buffer of their size, past tungstenite's buffers.
//! - **Deferred writes** (`tcp`): small replies held back while more
//!   requests wait to be read, written by the session's next flush or, at
//!   the latest, by a flusher task when the session's task yields.
//! - **Compression** (`compression`): reads and writes through the
//!   permessage-deflate layer.
//! - **Lingering close.** After the server sends a close frame because the
//!   peer misbehaved (e.g. a message over the size limit), dropping the
//!   socket with unread data would make the kernel send a reset, and the
//!   peer might lose the close frame. The transport instead half-closes and
//!   drains the socket for a bounded time in a background task.

#[cfg(feature = "deflate")]
mod compression;
mod direct;
mod frames;
mod tcp;
mod upgraded;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::upgrade::Upgraded;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// How long a lingering close may drain the socket.
const LINGER: Duration = Duration::from_secs(2);

pub(crate) use direct::{Outgoing, MIN as DIRECT_MIN};
#[cfg(feature = "__fuzz")]
pub(crate) use frames::FrameTracker;
#[cfg(not(feature = "__fuzz"))]
use frames::FrameTracker;
pub(crate) use upgraded::Unwrap;
use upgraded::{gone, unwrap, Io};

pub(crate) struct Transport {
    io: Io,
    frames: FrameTracker,
    linger: bool,
    /// Bytes the last write left unwritten because the socket was full.
    /// tungstenite hands its whole output buffer to each write, so this is
    /// how much output waits for the peer.
    unwritten: usize,
    /// Writes are held back for a moment (see `tcp`).
    defer: bool,
    /// A large frame written from the message's own bytes (see `direct`).
    outgoing: Option<Box<Outgoing>>,
    /// Large frames read past tungstenite (see `direct`).
    /// Only while tungstenite reads: a dormant connection keeps nothing.
    reader: Option<Box<direct::Reader>>,
    /// permessage-deflate, when the handshake agreed on it.
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::Layer>,
    /// The peer closed its side (seen by the deflate layer).
    #[cfg(feature = "deflate")]
    eof: bool,
}

impl Transport {
    /// Unwraps the upgraded connection when it is a `TcpStream` (with the
    /// server's own `unwrap`, if it gave one); returns the transport and the
    /// bytes already read past the HTTP request, if any.
    pub(crate) fn new(upgraded: Upgraded, unwrap_io: Option<Unwrap>) -> (Self, Option<Vec<u8>>) {
        let (io, read_buf) = unwrap(upgraded, unwrap_io);
        let mut transport = Self {
            io,
            frames: FrameTracker::default(),
            linger: false,
            unwritten: 0,
            defer: false,
            outgoing: None,
            reader: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            #[cfg(feature = "deflate")]
            eof: false,
        };
        // Copied out so hyper's whole read buffer is not kept alive by it.
        let prefix = (!read_buf.is_empty()).then(|| read_buf.to_vec());
        if let Some(prefix) = &prefix {
            transport.frames.observe(prefix);
        }
        (transport, prefix)
    }

    /// Puts the permessage-deflate layer in, with the bytes already read
    /// past the request (they are the peer's frames too, and must go
    /// through it); returns what tungstenite gets of them now (nothing:
    /// the layer hands them out as tungstenite reads).
    #[cfg(feature = "deflate")]
    pub(crate) fn with_deflate(
        &mut self,
        mut layer: crate::deflate::Layer,
        prefix: Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if let Some(prefix) = prefix {
            // `new` counted these as handed out; they are not, now.
            self.frames = FrameTracker::default();
            layer.codec().inflater.feed(&prefix);
        }
        self.deflate = Some(layer);
        None
    }

    /// Every byte handed out so far ends a whole frame, and no fragmented
    /// message is open: a reader of these bytes holds nothing partial.
    pub(crate) fn at_rest(&self) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(layer) = &self.deflate {
            if !layer.at_rest() {
                return false;
            }
        }
        self.frames.at_rest() && self.reader.as_ref().is_none_or(|r| r.at_rest())
    }

    /// Lets large frames be read past tungstenite, up to `max` payload
    /// bytes, reading ahead `read_size` bytes at once (`None`: not at all).
    /// Only on a TCP socket of our own, and not through the deflate layer,
    /// which rewrites every frame.
    pub(crate) fn set_direct_reads(&mut self, limits: Option<(usize, usize)>) {
        #[cfg(feature = "deflate")]
        if self.deflate.is_some() {
            return;
        }
        if matches!(self.io, Io::Tcp(_)) {
            match (&mut self.reader, limits) {
                (Some(reader), _) => reader.set_limits(limits),
                (None, Some(_)) => {
                    let mut reader = Box::<direct::Reader>::default();
                    reader.set_limits(limits);
                    self.reader = Some(reader);
                }
                (None, None) => {}
            }
            // Dropped once it has nothing (a frame begun is read on).
            if limits.is_none() && self.reader.as_ref().is_some_and(|r| r.at_rest()) {
                self.reader = None;
            }
        }
    }

    /// The large frame being read is the next thing to read: tungstenite
    /// holds nothing before it.
    pub(crate) fn incoming_is_next(&self) -> bool {
        self.reader.as_ref().is_some_and(|r| r.incoming_is_next())
    }

    /// The reader should read ahead before asking tungstenite (see
    /// `direct::Reader::reads_ahead`).
    pub(crate) fn reads_ahead(&self) -> bool {
        self.reader.as_ref().is_some_and(|r| r.reads_ahead())
    }

    /// A large frame read whole past tungstenite, as the message
    /// tungstenite would have made of it. The reader asks each time
    /// tungstenite has nothing more (tungstenite holds every frame that
    /// came before it).
    pub(crate) fn take_incoming(
        &mut self,
    ) -> Option<
        Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
    > {
        self.reader.as_mut()?.take_incoming()
    }

    /// Reads more of the large frame; ready once it is whole (the reader
    /// then takes it with `take_incoming`).
    pub(crate) fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match (&self.io, &mut self.reader) {
            (Io::Tcp(tcp), Some(reader)) => reader.poll_incoming(tcp, cx),
            _ => Poll::Ready(Err(gone())),
        }
    }

    /// Reads ahead: a large frame, or bytes tungstenite reads next.
    pub(crate) fn poll_read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match (&self.io, &mut self.reader) {
            (Io::Tcp(tcp), Some(reader)) => reader.poll_read_ahead(tcp, cx),
            _ => Poll::Ready(Err(gone())),
        }
    }

    /// The read that wakes a dormant connection: what has arrived, up to
    /// `capacity` bytes, and whether more may be waiting (the read filled
    /// it). On a TCP socket of our own it reads into memory that is not
    /// zero-filled first, allocated once the socket is readable, and hands
    /// on a buffer the size of what came (a large one only when it filled).
    pub(crate) fn poll_read_dormant(
        &mut self,
        cx: &mut Context<'_>,
        capacity: usize,
    ) -> Poll<io::Result<(Vec<u8>, bool)>> {
        #[cfg(feature = "deflate")]
        let plain = self.deflate.is_none();
        #[cfg(not(feature = "deflate"))]
        let plain = true;
        if let (Io::Tcp(tcp), true, None) = (&self.io, plain, &self.reader) {
            let mut slot = None;
            let n = ready!(tcp.poll_read_lazy(cx, &mut slot, |_| {
                bytes::BytesMut::with_capacity(capacity)
            }))?;
            let buf = slot.unwrap_or_default();
            self.frames.observe(&buf);
            let more = n == capacity;
            let part = if more { Vec::from(buf) } else { buf.to_vec() };
            return Poll::Ready(Ok((part, more)));
        }
        // Elsewhere (TLS, HTTP/2, the deflate layer): a small read.
        let mut chunk = [0u8; 1024];
        let mut read = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut *self).poll_read(cx, &mut read))?;
        let more = read.remaining() == 0;
        Poll::Ready(Ok((read.filled().to_vec(), more)))
    }

    /// How many items (messages and control frames) tungstenite has been
    /// handed the bytes of, from the connection's start (wrapping): once it
    /// has yielded as many, and [`at_rest`](Self::at_rest) holds, it holds
    /// nothing at all.
    pub(crate) fn items_handed_out(&self) -> u64 {
        self.frames.messages()
    }

    /// Output waiting for the peer to read, as of the last write.
    pub(crate) fn unwritten(&self) -> usize {
        self.unwritten + self.outgoing.as_ref().map_or(0, |o| o.remaining())
    }

    /// Whether a frame can be handed over with [`send_direct`](Self::send_direct):
    /// none is on its way already, and the bytes need no rewriting (in
    /// dedicated deflate mode every frame goes through the compressor).
    pub(crate) fn can_send_direct(&self) -> bool {
        #[cfg(feature = "deflate")]
        if self.compresses() {
            return false;
        }
        self.outgoing.is_none() && !matches!(self.io, Io::Gone)
    }

    /// Queues a frame after every byte written so far; it is written by the
    /// next write or flush, before anything else. The caller makes sure
    /// that nothing it handed over earlier is still held above the
    /// transport (tungstenite has flushed).
    pub(crate) fn send_direct(&mut self, frame: Outgoing) {
        debug_assert!(self.outgoing.is_none());
        self.outgoing = Some(Box::new(frame));
    }

    /// Writes out the direct frame, if one is on its way.
    fn poll_drain_direct(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(frame) = &mut self.outgoing {
            let slices = frame.slices();
            let n = ready!(match &mut self.io {
                Io::Tcp(tcp) => tcp.poll_write_vectored(cx, &slices),
                io => Pin::new(io).poll_write_vectored(cx, &slices),
            })?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if frame.advance(n) {
                self.outgoing = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        match &self.io {
            Io::Tcp(tcp) => tcp.tcp().peer_addr().ok(),
            _ => None,
        }
    }

    /// Whether writes can be deferred: only on a TCP socket of our own,
    /// which a flusher task can write to while the session does other work.
    pub(crate) fn can_defer(&self) -> bool {
        matches!(self.io, Io::Tcp(_))
    }

    /// While set, writes (and flushes) are held back, to be written by the
    /// next flush without it, or by the flusher task when the session's task
    /// yields. Ignored where writes cannot be deferred.
    pub(crate) fn set_defer(&mut self, defer: bool) {
        self.defer = defer;
    }

    /// Gives back buffers kept for a busy connection; it is going idle.
    pub(crate) fn release(&mut self) {
        if let Io::Tcp(tcp) = &self.io {
            tcp.release();
        }
        #[cfg(feature = "deflate")]
        if let Some(layer) = &mut self.deflate {
            layer.release();
        }
    }

    /// Drain and half-close the socket in the background when dropped.
    pub(crate) fn linger_on_drop(&mut self) {
        self.linger = true;
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        #[cfg(feature = "deflate")]
        if this.deflate.is_some() {
            return this.poll_read_deflate(cx, buf);
        }
        if let (Io::Tcp(tcp), Some(reader)) = (&this.io, &mut this.reader) {
            return reader.poll_read(tcp, &mut this.frames, cx, buf);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.frames.observe(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        #[cfg(feature = "deflate")]
        if self.compresses() {
            return self.poll_write_deflate(cx, buf);
        }
        // A direct frame handed over earlier goes first.
        if self.outgoing.is_some() {
            match self.poll_drain_direct(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.unwritten = buf.len();
                    return Poll::Pending;
                }
            }
        }
        let poll = match &self.io {
            Io::Tcp(tcp) => tcp.poll_write(cx, buf, self.defer),
            _ => Pin::new(&mut self.io).poll_write(cx, buf),
        };
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
        #[cfg(feature = "deflate")]
        if self.deflate.is_some() {
            let buf = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return self.poll_write_deflate(cx, buf);
        }
        ready!(self.poll_drain_direct(cx))?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        #[cfg(feature = "deflate")]
        if self.compresses() {
            return false;
        }
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        #[cfg(feature = "deflate")]
        ready!(self.poll_drain_deflate(cx))?;
        ready!(self.poll_drain_direct(cx))?;
        if self.defer && self.can_defer() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain_direct(cx))?;
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
                std::future::poll_fn(|cx| drain(Pin::new(&mut io), cx)).await
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

/// Reads and discards until the end of the stream. The buffer lives only
/// for one poll, so the lingering task does not carry it between polls;
/// a peer that keeps sending gets a few reads per poll, then the task
/// yields (and its timeout can fire).
fn drain(mut io: Pin<&mut Io>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        let mut buf = ReadBuf::new(&mut sink);
        ready!(io.as_mut().poll_read(cx, &mut buf))?;
        if buf.filled().is_empty() {
            return Poll::Ready(Ok(()));
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}
