//! The transport through the permessage-deflate layer: reads hand out the
//! frames the layer rewrote, writes go through its compressor.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Io, Transport};

impl Transport {
    /// Reads through the deflate layer: rewritten frames first, then a
    /// fault the layer found, then more bytes from the socket.
    pub(super) fn poll_read_deflate(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(layer) = self.deflate.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let codec = layer.codec();
        loop {
            let out = codec.inflater.output();
            if !out.is_empty() {
                let n = out.len().min(buf.remaining());
                buf.put_slice(&out[..n]);
                self.frames.observe(&out[..n]);
                codec.inflater.consume(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(fault) = codec.inflater.fault() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, fault)));
            }
            if codec.inflater.process() {
                continue;
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                self.eof = true;
            }
            codec.inflater.feed(read.filled());
        }
    }

    /// Whether writes go through the deflate layer's write side.
    pub(super) fn compresses(&self) -> bool {
        self.deflate
            .as_ref()
            .is_some_and(crate::deflate::Layer::compresses)
    }

    /// Writes out what the deflate layer holds; ready once it holds nothing.
    pub(super) fn poll_drain_deflate(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let defer = self.defer;
        let Some(compressor) = self
            .deflate
            .as_mut()
            .and_then(|l| l.current())
            .and_then(|c| c.compressor.as_mut())
        else {
            return Poll::Ready(Ok(()));
        };
        while !compressor.pending().is_empty() {
            let pending = compressor.pending();
            let n = ready!(match &self.io {
                Io::Tcp(tcp) => tcp.poll_write(cx, pending, defer),
                _ => Pin::new(&mut self.io).poll_write(cx, pending),
            })?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            compressor.written(n);
        }
        self.unwritten = 0;
        Poll::Ready(Ok(()))
    }

    /// Writes through the deflate layer: it takes what it can, and what it
    /// made of it goes to the socket as far as the socket takes it.
    pub(super) fn poll_write_deflate(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let drained = self.poll_drain_deflate(cx)?;
        let Some(compressor) = self
            .deflate
            .as_mut()
            .and_then(|l| l.codec().compressor.as_mut())
        else {
            return Poll::Ready(Ok(0));
        };
        let used = compressor.encode(buf);
        let drained = if used > 0 {
            self.poll_drain_deflate(cx)?
        } else {
            drained
        };
        let pending = self
            .deflate
            .as_mut()
            .and_then(|l| l.current())
            .and_then(|c| c.compressor.as_ref())
            .map_or(0, |c| c.pending().len());
        self.unwritten = buf.len() - used + pending;
        if used == 0 && !buf.is_empty() {
            // Full of output the socket would not take: wait for it.
            return match drained {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Ok(0)),
            };
        }
        Poll::Ready(Ok(used))
    }
}
