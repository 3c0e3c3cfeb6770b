//! The byte stream under a WebSocket: the upgraded connection, unwrapped to
//! the plain `TcpStream` when possible, with burst reads and a lingering
//! close.
//!
//! Three things live here because tungstenite cannot do them:
//!
//! - **Unwrapping.** hyper hands over an `Upgraded`, a boxed `dyn Io` behind
//!   a rewind buffer; every read and write through it is a virtual call. When
//!   the connection is a `TcpStream` served by hyper or hyper-util, it is
//!   taken back out, and any bytes hyper had already read are handed to
//!   tungstenite as already-read data.
//! - **Burst reads.** tungstenite allocates its read buffer up front and
//!   never reads more than that buffer's size at once. A small buffer keeps
//!   idle connections cheap but makes a large message cost one syscall per
//!   kilobyte. So when a read fills the caller's buffer, the following reads
//!   go through a larger burst buffer, allocated without zeroing and freed
//!   as soon as the socket has nothing more to read.
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

use bytes::{Buf, Bytes, BytesMut};
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
    burst: BytesMut,
    burst_size: usize,
    bursting: bool,
    linger: bool,
}

impl Transport {
    /// Unwraps the upgraded connection when it is a `TcpStream`; returns the
    /// transport and the bytes already read past the HTTP request.
    pub(crate) fn new(upgraded: Upgraded, burst_size: usize) -> (Self, Bytes) {
        let (io, read_buf) = unwrap(upgraded);
        let transport = Self {
            io,
            burst: BytesMut::new(),
            burst_size,
            bursting: false,
            linger: false,
        };
        (transport, read_buf)
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

    fn poll_burst(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.burst.capacity() < self.burst_size {
            self.burst.reserve(self.burst_size);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.burst) {
            Poll::Pending => {
                // Nothing more to read: the burst is over, give the memory back.
                self.burst = BytesMut::new();
                self.bursting = false;
                Poll::Pending
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(_)) => {
                self.copy_out(buf);
                Poll::Ready(Ok(()))
            }
        }
    }

    fn copy_out(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.burst.len().min(buf.remaining());
        buf.put_slice(&self.burst[..n]);
        self.burst.advance(n);
    }
}

fn unwrap(upgraded: Upgraded) -> (Io, Bytes) {
    #[cfg(feature = "http2")]
    let upgraded =
        match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
            Ok(parts) => return (Io::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => upgraded,
        };
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => (Io::Tcp(parts.io.into_inner()), parts.read_buf),
        Err(upgraded) => (Io::Upgraded(TokioIo::new(upgraded)), Bytes::new()),
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.burst.is_empty() {
            this.copy_out(buf);
            return Poll::Ready(Ok(()));
        }
        if this.bursting && this.burst_size > buf.remaining() {
            return this.poll_burst(cx, buf);
        }
        let wanted = buf.remaining();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        // A read that fills the buffer suggests more is waiting.
        this.bursting = wanted > 0 && buf.filled().len() - before == wanted;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
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
