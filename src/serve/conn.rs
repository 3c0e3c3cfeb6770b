//! One accepted connection: its first bytes tell HTTP/1.1 from HTTP/2, then
//! hyper serves it under the server's limits until it ends, goes idle, or
//! the server shuts down.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::server::conn::http1;
#[cfg(feature = "http2")]
use hyper::server::conn::http2;
#[cfg(feature = "http2")]
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::proxies::TrustedProxies;
use super::sniff::{protocol_of, read_arrived, sniff, Sniffed};
use crate::extract::{ClientAddr, ConnectInfo};
use crate::handler::BoxFuture;
use crate::lifecycle::{Lifecycle, Signal, StreamGuard, Streams};
use crate::response::BoxError as ConnError;
use crate::routing::Router;

/// The per-connection limits of [`Serve`](super::Serve).
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnLimits {
    pub(super) header_read_timeout: Option<Duration>,
    pub(super) max_header_size: usize,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) keep_alive: Option<Duration>,
    pub(super) nodelay: bool,
    pub(super) event_stream_stall: Option<Duration>,
}

impl ConnLimits {
    /// hyper's HTTP/1.1 settings for these limits. Made once per server:
    /// a connection borrows them (each builder allocates its timer).
    pub(super) fn http1(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_size);
        builder
    }

    /// hyper's HTTP/2 settings for these limits, made once per server.
    #[cfg(feature = "http2")]
    pub(super) fn http2(&self) -> http2::Builder<TokioExecutor> {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .enable_connect_protocol()
            .max_header_list_size(u32::try_from(self.max_header_size).unwrap_or(u32::MAX));
        if let Some(interval) = self.keep_alive {
            builder
                .keep_alive_interval(interval)
                .keep_alive_timeout(interval);
        }
        builder
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(30)),
            max_header_size: 64 * 1024,
            idle_timeout: Some(Duration::from_secs(30)),
            keep_alive: Some(Duration::from_secs(20)),
            nodelay: true,
            event_stream_stall: Some(Duration::from_secs(30)),
        }
    }
}

/// What every connection of one server is served with: shared, so that a
/// connection costs one reference count, not a clone of each part.
pub(super) struct Server {
    pub(super) router: Router,
    pub(super) lifecycle: Lifecycle,
    pub(super) limits: ConnLimits,
    /// hyper's settings, from `limits`.
    pub(super) http1: http1::Builder,
    #[cfg(feature = "http2")]
    pub(super) http2: http2::Builder<TokioExecutor>,
    /// Whose word on the client's address is taken.
    pub(super) proxies: Option<TrustedProxies>,
    #[cfg(feature = "tls")]
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
}

/// An accepted connection and what it is served with.
pub(super) struct Connection {
    pub(super) server: Arc<Server>,
    pub(super) peer: SocketAddr,
}

impl Connection {
    /// Serves the connection until it ends; errors are logged.
    pub(super) async fn serve(self, tcp: TcpStream) {
        if self.server.limits.nodelay {
            let _ = tcp.set_nodelay(true);
        }
        let peer = self.peer;
        #[cfg(feature = "tls")]
        if let Some(tls) = self.server.tls.clone() {
            // Boxed, as HTTP/2 is below: the plain HTTP/1.1 connection's
            // state stays small.
            if let Err(err) = Box::pin(self.serve_tls(tcp, tls)).await {
                tracing::debug!(%err, %peer, "TLS connection ended with an error");
            }
            return;
        }
        if let Err(err) = self.serve_plain(tcp).await {
            tracing::debug!(%err, %peer, "connection ended with an error");
        }
    }

    /// Reads the first bytes, picks HTTP/1.1 or HTTP/2, and serves.
    async fn serve_plain(&self, mut tcp: TcpStream) -> Result<(), ConnError> {
        let mut first = BytesMut::with_capacity(2048);
        // Clients usually send their request right after connecting: when
        // it is already here, no timer is needed to wait for it.
        match read_arrived(&mut tcp, &mut first).await {
            Some(Ok(0)) => return Ok(()),
            Some(Ok(_)) | None => {}
            Some(Err(err)) => return Err(err.into()),
        }
        let sniffed = match (protocol_of(&first), self.server.limits.header_read_timeout) {
            (Some(is_h2), _) => Some(is_h2),
            (None, Some(limit)) => {
                match tokio::time::timeout(limit, sniff(&mut tcp, &mut first)).await {
                    Ok(sniffed) => sniffed?,
                    Err(_) => return Ok(()),
                }
            }
            (None, None) => sniff(&mut tcp, &mut first).await?,
        };
        let Some(is_h2) = sniffed else {
            return Ok(());
        };
        let io = Sniffed::new(tcp, first.freeze());
        self.serve_http(io, is_h2).await
    }

    /// Completes the TLS handshake, then serves the protocol ALPN chose.
    #[cfg(feature = "tls")]
    async fn serve_tls(
        &self,
        tcp: TcpStream,
        tls: tokio_rustls::TlsAcceptor,
    ) -> Result<(), ConnError> {
        let accept = tls.accept(tcp);
        let stream = match self.server.limits.header_read_timeout {
            Some(limit) => match tokio::time::timeout(limit, accept).await {
                Ok(stream) => stream?,
                Err(_) => return Ok(()),
            },
            None => accept.await?,
        };
        let is_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        self.serve_http(stream, is_h2).await
    }

    /// Serves HTTP/1.1 or HTTP/2 on `io` until it ends or the server shuts
    /// down (then gracefully). HTTP/2's connection state is boxed: the
    /// common HTTP/1.1 connection's task stays small.
    async fn serve_http<I>(&self, io: I, is_h2: bool) -> Result<(), ConnError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let shutdown = &self.server.lifecycle.shutdown;
        if is_h2 {
            #[cfg(feature = "http2")]
            return Box::pin(self.serve_h2(io)).await;
            #[cfg(not(feature = "http2"))]
            {
                tracing::debug!("HTTP/2 connection refused: the `http2` feature is off");
                return Ok(());
            }
        }
        let abort = Signal::default();
        let service = self.service(None, &abort);
        let conn = self
            .server
            .http1
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => return Ok(res?),
            () = shutdown.fired() => conn.as_mut().graceful_shutdown(),
            () = abort.fired() => return Ok(()),
        }
        tokio::select! {
            res = conn => Ok(res?),
            () = abort.fired() => Ok(()),
        }
    }

    /// Serves HTTP/2 on `io` until it ends, goes idle or the server shuts
    /// down (then gracefully).
    #[cfg(feature = "http2")]
    async fn serve_h2<I>(&self, io: TokioIo<I>) -> Result<(), ConnError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.server.limits;
        let shutdown = &self.server.lifecycle.shutdown;
        let streams = Arc::new(Streams::default());
        let abort = Signal::default();
        let service = self.service(Some(streams.clone()), &abort);
        let conn = self.server.http2.serve_connection(io, service);
        tokio::pin!(conn);
        let idle = async {
            match limits.idle_timeout {
                Some(timeout) => streams.idle_for(timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            res = conn.as_mut() => return Ok(res?),
            () = shutdown.fired() => conn.as_mut().graceful_shutdown(),
            () = idle => {
                // No stream to finish: a graceful close would only wait
                // on a peer that may never answer again.
                tracing::debug!(peer = %self.peer, "closing an idle HTTP/2 connection");
                return Ok(());
            }
            () = abort.fired() => return Ok(()),
        }
        tokio::select! {
            res = conn => Ok(res?),
            () = abort.fired() => Ok(()),
        }
    }

    /// The per-connection service: what the server knows goes into each
    /// request, then the router answers. On HTTP/2 every request holds a
    /// stream open until its response body is done (a WebSocket, until its
    /// session ends), so that the connection counts as busy.
    fn service(
        &self,
        streams: Option<Arc<Streams>>,
        abort: &Signal,
    ) -> impl hyper::service::Service<
        http::Request<Incoming>,
        Response = crate::response::Response,
        Error = std::convert::Infallible,
        Future = Answer,
    > + Clone
           + Send
           + 'static {
        let server = self.server.clone();
        let abort = abort.clone();
        let peer = self.peer;
        // Only a trusted proxy's requests are read for the client.
        let trusted = server.proxies.as_ref().is_some_and(|p| p.trusts(peer.ip()));
        hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let client = match &server.proxies {
                Some(proxies) if trusted => Some(proxies.client_addr(peer, req.headers())),
                _ => None,
            };
            let lifecycle = Lifecycle {
                streams: streams.clone(),
                peer: Some(client.unwrap_or(peer)),
                ..server.lifecycle.clone()
            };
            let extensions = req.extensions_mut();
            // Two entries, with hyper's own upgrade handle three: the
            // extensions' table holds them without growing.
            extensions.insert(ConnectInfo(peer));
            if let Some(client) = client {
                extensions.insert(ClientAddr(client));
            }
            extensions.insert(lifecycle);
            Answer {
                stream: streams.as_ref().map(Streams::open),
                routed: server.router.dispatch(req.map(crate::response::Body::new)),
                server: server.clone(),
                abort: abort.clone(),
            }
        })
    }
}

/// The router's answer to one request, with what `serve` adds to it. A
/// future of its own rather than an `async` block: that would be boxed
/// again around the router's boxed future.
pub(super) struct Answer {
    routed: BoxFuture<crate::response::Response>,
    server: Arc<Server>,
    abort: Signal,
    stream: Option<StreamGuard>,
}

impl Future for Answer {
    type Output = Result<crate::response::Response, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut res = std::task::ready!(self.routed.as_mut().poll(cx));
        // An event stream never ends by itself: it ends when the server
        // shuts down, so the graceful close can finish; and one whose
        // client stops reading drops the connection.
        if crate::sse::is_event_stream(&res) {
            let stall = self
                .server
                .limits
                .event_stream_stall
                .map(|l| (l, &self.abort));
            let shutdown = &self.server.lifecycle.shutdown;
            res = res.map(|body| crate::sse::served::served(body, shutdown, stall));
        }
        Poll::Ready(Ok(match self.stream.take() {
            Some(stream) => res.map(|body| crate::response::Body::new(Held { body, stream })),
            None => res,
        }))
    }
}

/// A response body that keeps its HTTP/2 stream counted as open.
struct Held {
    body: crate::response::Body,
    #[allow(dead_code)]
    stream: StreamGuard,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = crate::response::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
