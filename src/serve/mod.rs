//! [`serve`]: the accept loop, on hyper's HTTP/1.1 and HTTP/2 connections,
//! with graceful shutdown and the limits that keep a server up against
//! hostile peers: open connections, open WebSockets, request-head size, and
//! a timeout for every state a peer can leave a connection in.
//!
//! The protocol is told from the connection's first read (HTTP/2 with prior
//! knowledge starts with its fixed preface), and those bytes are replayed to
//! hyper. hyper-util's auto builder does the same with a separate 24-byte
//! read first; reading once saves a system call per connection.

mod conn;
mod proxies;
mod signal;
mod sniff;

use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::handler::BoxFuture;
use crate::lifecycle::Lifecycle;
use crate::routing::Router;
use conn::{ConnLimits, Connection, Server};
pub use proxies::TrustedProxies;
pub use signal::shutdown_signal;

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
///     .with_graceful_shutdown(hyperws::shutdown_signal())
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
        max_connections: Some(DEFAULT_MAX_CONNECTIONS),
        limits: ConnLimits::default(),
        proxies: None,
        #[cfg(feature = "tls")]
        tls: None,
    }
}

/// The default cap on open connections.
const DEFAULT_MAX_CONNECTIONS: usize = 32_768;

/// A server being configured; await it to run. See [`serve`].
#[must_use = "a server does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    signal: Option<BoxFuture<()>>,
    grace: Duration,
    max_websockets: Option<usize>,
    max_connections: Option<usize>,
    limits: ConnLimits,
    proxies: Option<TrustedProxies>,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("grace", &self.grace)
            .field("max_websockets", &self.max_websockets)
            .field("max_connections", &self.max_connections)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Shuts down when `signal` completes: stops accepting, lets HTTP
    /// requests in flight finish, sends every open WebSocket a close frame
    /// with 1001 (after what was already queued for it), and returns once
    /// all are closed or the [grace period](Self::grace_period) is over.
    /// [`shutdown_signal`] is the usual choice.
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

    /// The most WebSocket connections open at once; past it, new handshakes
    /// are answered `503 Service Unavailable`. Default: no limit (other
    /// than [`max_connections`](Self::max_connections)).
    pub fn max_websockets(mut self, max: usize) -> Self {
        self.max_websockets = Some(max);
        self
    }

    /// The most TCP connections open at once, WebSockets included. At the
    /// cap the server stops accepting until one closes; new clients wait in
    /// the listener's backlog. Default: 32,768. `None` removes the cap
    /// (then the process's file-descriptor limit is the only one; running
    /// out of descriptors makes the accept loop back off, up to a second at
    /// a time, instead of spinning).
    pub fn max_connections(mut self, max: impl Into<Option<usize>>) -> Self {
        self.max_connections = max.into();
        self
    }

    /// How long a client may take to send a request's headers (and, on a
    /// new connection, its first bytes, or the TLS handshake) before the
    /// connection is dropped; on HTTP/1.1 this also ends a keep-alive
    /// connection left idle between requests. Default: 30 s. `None` waits
    /// forever.
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.limits.header_read_timeout = timeout.into();
        self
    }

    /// The largest request head (request line and headers on HTTP/1.1, the
    /// header list on HTTP/2). A larger one is answered `431 Request Header
    /// Fields Too Large` on HTTP/1.1; HTTP/2 refuses the stream. Default:
    /// 64 KiB; values under 8 KiB are raised to 8 KiB.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.limits.max_header_size = bytes.max(8 * 1024);
        self
    }

    /// How long an HTTP/2 connection may stay without any open stream (no
    /// request being answered, no WebSocket) before it is closed: this also
    /// ends connections that sent the preface and nothing else. Default:
    /// 30 s. `None` keeps idle connections open.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.limits.idle_timeout = timeout.into();
        self
    }

    /// How often an HTTP/2 connection is pinged; a peer that does not
    /// answer within the same time is dropped. Default: 20 s. `None` turns
    /// HTTP/2 pings off.
    pub fn http2_keep_alive(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.limits.keep_alive = interval.into();
        self
    }

    /// How long an event stream ([`Sse`](crate::sse::Sse)) may have
    /// something to send that its connection cannot take (the client
    /// stopped reading) before the connection is dropped. Default: 30 s.
    /// `None` keeps such connections until the client goes away.
    pub fn event_stream_stall_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.limits.event_stream_stall = timeout.into();
        self
    }

    /// Takes the client's address from the `X-Forwarded-For` (or
    /// `Forwarded`) header of requests that come from these proxies:
    /// [`ClientAddr`](crate::extract::ClientAddr),
    /// [`WebSocket::peer_addr`](crate::WebSocket::peer_addr) and the
    /// WebSocket's span then name the client, not the proxy.
    /// [`ConnectInfo`](crate::ConnectInfo) stays the TCP peer. Default: no
    /// proxy is trusted, and the headers are ignored.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = Some(proxies);
        self
    }

    /// Sets `TCP_NODELAY` on accepted connections. Default: on, as
    /// WebSocket messages are small and latency-bound.
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.limits.nodelay = nodelay;
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
            max_connections,
            limits,
            proxies,
            #[cfg(feature = "tls")]
            tls,
        } = self;
        let server = Arc::new(Server {
            router,
            lifecycle: Lifecycle {
                limit: max_websockets.map(|n| Arc::new(Semaphore::new(n))),
                unwrap_io: Some(sniff::unwrap_upgraded),
                ..Lifecycle::default()
            },
            http1: limits.http1(),
            #[cfg(feature = "http2")]
            http2: limits.http2(),
            limits,
            proxies,
            #[cfg(feature = "tls")]
            tls,
        });
        let open = max_connections.map(|n| Arc::new(Semaphore::new(n)));
        let connections = TaskTracker::new();
        let stop = signal::Stop::watch(signal);
        let mut backoff = Backoff::default();

        loop {
            let accept = async {
                // At the cap, wait for a connection to close before taking
                // the next one off the backlog.
                let permit = match &open {
                    Some(open) => Some(open.clone().acquire_owned().await),
                    None => None,
                };
                (listener.accept().await, permit)
            };
            let (tcp, peer, permit) = tokio::select! {
                (accepted, permit) = accept => match accepted {
                    Ok((tcp, peer)) => {
                        backoff.reset();
                        (tcp, peer, permit)
                    }
                    // The peer gave up before the accept: nothing to wait for.
                    Err(err) if is_aborted(&err) => continue,
                    Err(err) if is_exhausted(&err) => {
                        backoff.wait(&err).await;
                        continue;
                    }
                    Err(err) => return Err(err),
                },
                () = std::future::poll_fn(|cx| stop.poll_stopped(cx)) => break,
            };
            let conn = Connection {
                server: server.clone(),
                peer,
            };
            // Boxed: the connection's state (hyper's included, 1.7 KB) is
            // then moved once, not at each step of spawning a task and
            // again as the task completes.
            connections.spawn(Box::pin(async move {
                // Held until the connection ends: its place under the cap.
                let _permit = permit;
                let _open = crate::telemetry::OpenConnection::new();
                conn.serve(tcp).await;
            }));
        }

        drop(listener);
        let lifecycle = &server.lifecycle;
        lifecycle.shutdown.fire();
        lifecycle.tracker.close();
        connections.close();
        let drained = async {
            connections.wait().await;
            lifecycle.tracker.wait().await;
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(?grace, "grace period over with connections still open");
        }
        Ok(())
    }
}

/// Failed accepts (out of file descriptors, above all) wait longer each
/// time, from 10 ms up to a second, and are logged once per episode.
#[derive(Debug, Default)]
struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    async fn wait(&mut self, err: &io::Error) {
        let delay = match self.delay {
            None => {
                tracing::warn!(%err, "accept failed; backing off");
                Duration::from_millis(10)
            }
            Some(delay) => (delay * 2).min(Duration::from_secs(1)),
        };
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }

    fn reset(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!("accepting again");
        }
    }
}

fn is_aborted(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Out of file descriptors or memory: accepting again at once would spin.
fn is_exhausted(err: &io::Error) -> bool {
    // ENOMEM, ENFILE, EMFILE, ENOBUFS.
    err.raw_os_error()
        .is_some_and(|code| matches!(code, 12 | 23 | 24 | 105))
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
