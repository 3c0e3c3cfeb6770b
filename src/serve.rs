//! [`serve`]: the accept loop, on hyper's HTTP/1.1 and HTTP/2 connections,
//! with graceful shutdown, a cap on open WebSockets and a header-read
//! timeout.
//!
//! The protocol is told from the connection's first read (HTTP/2 with prior
//! knowledge starts with its fixed preface), and those bytes are replayed to
//! hyper. hyper-util's auto builder does the same with a separate 24-byte
//! read first; reading once saves a system call per connection.

use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hyper::body::Incoming;
use hyper::server::conn::http1;
#[cfg(feature = "http2")]
use hyper::server::conn::http2;
#[cfg(feature = "http2")]
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::extract::ConnectInfo;
use crate::handler::BoxFuture;
use crate::routing::Router;
use crate::sessions::Sessions;
use crate::transport::Sniffed;

/// How HTTP/2 with prior knowledge starts (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `router` on `listener`: HTTP/1.1 with upgrades, and HTTP/2 with
/// prior knowledge (h2c) with extended CONNECT, so WebSockets work over
/// both. Await it to run; it ends on an accept error or after a graceful
/// shutdown.
///
/// ```no_run
/// use hyperws::{routing::get, Router};
///
/// # async fn run() -> std::io::Result<()> {
/// let app: Router = Router::new().route("/", get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// hyperws::serve(listener, app)
///     .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
///     .await
/// # }
/// ```
pub fn serve(listener: TcpListener, router: Router) -> Serve {
    Serve {
        listener,
        router,
        signal: None,
        grace: Duration::from_secs(10),
        max_websockets: None,
        header_read_timeout: Some(Duration::from_secs(30)),
        nodelay: true,
        #[cfg(feature = "tls")]
        tls: None,
    }
}

/// A server being configured; await it to run. See [`serve`].
#[must_use = "a server does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    signal: Option<BoxFuture<()>>,
    grace: Duration,
    max_websockets: Option<usize>,
    header_read_timeout: Option<Duration>,
    nodelay: bool,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("grace", &self.grace)
            .field("max_websockets", &self.max_websockets)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("nodelay", &self.nodelay)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Shuts down when `signal` completes: stops accepting, lets HTTP
    /// requests in flight finish, sends every open WebSocket a close frame
    /// with 1001 (after what was already queued for it), and returns once
    /// all are closed or the [grace period](Self::grace_period) is over.
    ///
    /// A session notices the shutdown while it waits in `recv` or `send`.
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// How long a graceful shutdown waits for connections. Default: 10 s.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The most WebSocket sessions open at once; past it, new handshakes
    /// are answered `503 Service Unavailable`. Default: no limit.
    pub fn max_websockets(mut self, max: usize) -> Self {
        self.max_websockets = Some(max);
        self
    }

    /// How long a client may take to send a request's headers before the
    /// connection is dropped (against slow-header attacks). Default: 30 s.
    /// `None` waits forever.
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.header_read_timeout = timeout.into();
        self
    }

    /// Sets `TCP_NODELAY` on accepted connections. Default: on, as
    /// WebSocket messages are small and latency-bound.
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Serves `https://` and `wss://` with this rustls configuration. ALPN
    /// offers `h2` and `http/1.1` unless the configuration lists protocols
    /// of its own; the TLS handshake must finish within the
    /// [header-read timeout](Self::header_read_timeout).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        let mut config = Arc::unwrap_or_clone(config);
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        self
    }

    async fn run(self) -> io::Result<()> {
        let Serve {
            listener,
            router,
            signal,
            grace,
            max_websockets,
            header_read_timeout,
            nodelay,
            #[cfg(feature = "tls")]
            tls,
        } = self;
        let router = Arc::new(router);
        let sessions = Sessions {
            limit: max_websockets.map(|n| Arc::new(Semaphore::new(n))),
            ..Sessions::default()
        };
        let connections = TaskTracker::new();
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));

        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // Out of file descriptors or a connection reset before
                    // accept: log and keep serving.
                    Err(err) if is_transient(&err) => {
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(err) => return Err(err),
                },
                () = &mut signal => break,
            };
            if nodelay {
                let _ = tcp.set_nodelay(true);
            }
            let service = connection_service(router.clone(), sessions.clone(), peer);
            let shutdown = sessions.shutdown.clone();
            #[cfg(feature = "tls")]
            if let Some(tls) = tls.clone() {
                connections.spawn(async move {
                    if let Err(err) =
                        serve_tls_connection(tcp, tls, service, header_read_timeout, shutdown).await
                    {
                        tracing::debug!(%err, %peer, "TLS connection ended with an error");
                    }
                });
                continue;
            }
            connections.spawn(async move {
                if let Err(err) =
                    serve_connection(tcp, service, header_read_timeout, shutdown).await
                {
                    tracing::debug!(%err, %peer, "connection ended with an error");
                }
            });
        }

        drop(listener);
        sessions.shutdown.cancel();
        sessions.tracker.close();
        connections.close();
        let drained = async {
            connections.wait().await;
            sessions.tracker.wait().await;
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(?grace, "grace period over with connections still open");
        }
        Ok(())
    }
}

type ConnError = Box<dyn std::error::Error + Send + Sync>;

/// What serves the requests of one connection.
trait ConnService:
    hyper::service::Service<
        http::Request<Incoming>,
        Response = crate::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<T> ConnService for T where
    T: hyper::service::Service<
            http::Request<Incoming>,
            Response = crate::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Whether these first bytes are HTTP/2's preface (`Some(true)`), surely
/// not (`Some(false)`), or too few to tell.
fn protocol_of(first: &[u8]) -> Option<bool> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(false)
    } else if n == H2_PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

/// Reads until the protocol is known; `None` if the peer closes first.
async fn sniff(tcp: &mut TcpStream, first: &mut BytesMut) -> std::io::Result<Option<bool>> {
    loop {
        if tcp.read_buf(first).await? == 0 {
            return Ok(None);
        }
        if let Some(is_h2) = protocol_of(first) {
            return Ok(Some(is_h2));
        }
    }
}

/// Reads the first bytes, picks HTTP/1.1 or HTTP/2, and serves the
/// connection.
async fn serve_connection<Svc>(
    mut tcp: TcpStream,
    service: Svc,
    header_read_timeout: Option<Duration>,
    shutdown: CancellationToken,
) -> Result<(), ConnError>
where
    Svc: ConnService,
{
    let mut first = BytesMut::with_capacity(2048);
    // Clients usually send their request right after connecting: when it
    // is already here, no timer is needed to wait for it.
    match tcp.try_read_buf(&mut first) {
        Ok(0) => return Ok(()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(err) => return Err(err.into()),
    }
    let sniffed = match (protocol_of(&first), header_read_timeout) {
        (Some(is_h2), _) => Some(is_h2),
        (None, Some(limit)) => match tokio::time::timeout(limit, sniff(&mut tcp, &mut first)).await
        {
            Ok(sniffed) => sniffed?,
            Err(_) => return Ok(()),
        },
        (None, None) => sniff(&mut tcp, &mut first).await?,
    };
    let Some(is_h2) = sniffed else {
        return Ok(());
    };
    let io = Sniffed::new(tcp, first.freeze());
    serve_http(io, is_h2, service, header_read_timeout, shutdown).await
}

/// Completes the TLS handshake, then serves the protocol ALPN chose.
#[cfg(feature = "tls")]
async fn serve_tls_connection<Svc>(
    tcp: TcpStream,
    tls: tokio_rustls::TlsAcceptor,
    service: Svc,
    header_read_timeout: Option<Duration>,
    shutdown: CancellationToken,
) -> Result<(), ConnError>
where
    Svc: ConnService,
{
    let accept = tls.accept(tcp);
    let stream = match header_read_timeout {
        Some(limit) => match tokio::time::timeout(limit, accept).await {
            Ok(stream) => stream?,
            Err(_) => return Ok(()),
        },
        None => accept.await?,
    };
    let is_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_http(stream, is_h2, service, header_read_timeout, shutdown).await
}

/// Serves HTTP/1.1 or HTTP/2 on `io` until it ends or the server shuts
/// down (then gracefully).
async fn serve_http<I, Svc>(
    io: I,
    is_h2: bool,
    service: Svc,
    header_read_timeout: Option<Duration>,
    shutdown: CancellationToken,
) -> Result<(), ConnError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    Svc: ConnService,
{
    let io = TokioIo::new(io);
    #[cfg(not(feature = "http2"))]
    if is_h2 {
        tracing::debug!("HTTP/2 connection refused: the `http2` feature is off");
        return Ok(());
    }
    #[cfg(feature = "http2")]
    if is_h2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .enable_connect_protocol()
            .serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => return Ok(res?),
            () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
        }
        return Ok(conn.await?);
    }
    {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => return Ok(res?),
            () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
        }
        Ok(conn.await?)
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || err
        .raw_os_error()
        .is_some_and(|code| code == 23 || code == 24) // ENFILE, EMFILE
}

/// The per-connection service: what the server knows goes into each
/// request, then the router answers.
fn connection_service(
    router: Arc<Router>,
    sessions: Sessions,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = crate::Response,
    Error = std::convert::Infallible,
    Future = BoxFuture<Result<crate::Response, std::convert::Infallible>>,
> + Clone
       + Send
       + 'static {
    hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let extensions = req.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        extensions.insert(peer);
        extensions.insert(sessions.clone());
        let fut = router.dispatch(req.map(crate::Body::new));
        Box::pin(async move { Ok(fut.await) }) as BoxFuture<_>
    })
}
