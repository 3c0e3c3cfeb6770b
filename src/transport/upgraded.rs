//! What the transport reads and writes: the plain `TcpStream` taken back
//! out of hyper's `Upgraded` when possible (shared with the deferred-write
//! flusher), or the `Upgraded` itself (TLS, HTTP/2).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::tcp::SharedTcp;

pub(super) enum Io {
    Tcp(Arc<SharedTcp>),
    Upgraded(TokioIo<Upgraded>),
    /// Moved out by the lingering close.
    Gone,
}

/// Takes the `TcpStream` (and the bytes already read from it) out of an
/// upgraded connection whose I/O type the transport cannot know: the server
/// that chose the type hands this over with each request.
pub(crate) type Unwrap = fn(Upgraded) -> Result<(TcpStream, bytes::Bytes), Upgraded>;

pub(super) fn unwrap(upgraded: Upgraded, by_server: Option<Unwrap>) -> (Io, bytes::Bytes) {
    // Served by `serve`, whose connections are its own type.
    let upgraded = match by_server {
        Some(unwrap) => match unwrap(upgraded) {
            Ok((tcp, rest)) => return (Io::Tcp(SharedTcp::new(tcp)), rest),
            Err(upgraded) => upgraded,
        },
        None => upgraded,
    };
    #[cfg(feature = "http2")]
    let upgraded =
        match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
            Ok(parts) => {
                return (
                    Io::Tcp(SharedTcp::new(parts.io.into_inner())),
                    parts.read_buf,
                )
            }
            Err(upgraded) => upgraded,
        };
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => (
            Io::Tcp(SharedTcp::new(parts.io.into_inner())),
            parts.read_buf,
        ),
        Err(upgraded) => (Io::Upgraded(TokioIo::new(upgraded)), bytes::Bytes::new()),
    }
}

pub(super) fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "transport already released")
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(io) => io.poll_read(cx, buf),
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
            Io::Tcp(io) => io.poll_write(cx, buf, false),
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
            Io::Tcp(io) => io.poll_write_vectored(cx, bufs),
            Io::Upgraded(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(_) => true,
            Io::Upgraded(io) => io.is_write_vectored(),
            Io::Gone => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(io) => io.poll_flush(cx),
            Io::Upgraded(io) => Pin::new(io).poll_flush(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(io) => io.poll_shutdown(cx),
            Io::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
}
