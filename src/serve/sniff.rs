//! Telling HTTP/1.1 from HTTP/2 on a plain TCP connection by its first
//! bytes, and the [`Sniffed`] connection that replays them to hyper (and
//! that a WebSocket's transport unwraps back to the `TcpStream`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

/// How HTTP/2 with prior knowledge starts (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether these first bytes are HTTP/2's preface (`Some(true)`), surely
/// not (`Some(false)`), or too few to tell.
pub(super) fn protocol_of(first: &[u8]) -> Option<bool> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(false)
    } else if n == H2_PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

/// Reads what has already arrived, without waiting: `None` when nothing
/// has. Unlike `TcpStream::try_read_buf`, a read shorter than the buffer
/// tells tokio that the socket is drained, so that hyper's next read waits
/// for readiness instead of making a system call that finds nothing (one
/// `recvfrom` per connection).
pub(super) async fn read_arrived(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
) -> Option<io::Result<usize>> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match poll_read_buf(Pin::new(&mut *tcp), cx, buf) {
            Poll::Ready(read) => Some(read),
            Poll::Pending => None,
        })
    })
    .await
}

/// Reads until the protocol is known; `None` if the peer closes first.
pub(super) async fn sniff(
    tcp: &mut TcpStream,
    first: &mut BytesMut,
) -> std::io::Result<Option<bool>> {
    loop {
        if tcp.read_buf(first).await? == 0 {
            return Ok(None);
        }
        if let Some(is_h2) = protocol_of(first) {
            return Ok(Some(is_h2));
        }
    }
}

/// A connection whose first bytes were read to tell HTTP/1.1 from HTTP/2;
/// they are replayed before the socket is read again.
pub(super) struct Sniffed {
    prefix: Bytes,
    tcp: TcpStream,
}

impl Sniffed {
    pub(super) fn new(tcp: TcpStream, prefix: Bytes) -> Self {
        Self { prefix, tcp }
    }
}

/// The transport's way back to the `TcpStream` of an upgraded `Sniffed`
/// connection (see `transport::Unwrap`), with the bytes read past the
/// request: hyper's leftovers first, then what it never read of the prefix.
pub(super) fn unwrap_upgraded(upgraded: Upgraded) -> Result<(TcpStream, Bytes), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<Sniffed>>()?;
    let sniffed = parts.io.into_inner();
    let rest = if sniffed.prefix.is_empty() {
        parts.read_buf
    } else {
        let mut all = BytesMut::from(parts.read_buf);
        all.extend_from_slice(&sniffed.prefix);
        all.freeze()
    };
    Ok((sniffed.tcp, rest))
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
