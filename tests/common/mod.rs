//! Shared test helpers: a real server on a loopback port, a raw HTTP client.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "router")]
pub mod cluster;
pub mod nginx;
pub mod peers;
pub mod prometheus;
pub mod redis;
#[cfg(feature = "http2")]
pub mod sse;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::{body::Incoming, service::service_fn, Request};
use hyper_util::rt::TokioIo;
#[cfg(feature = "http2")]
use hyper_util::{rt::TokioExecutor, server::conn::auto};
use hyperws::{Config, IntoResponse, Response, WebSocket, WebSocketUpgrade};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every wait in the tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `handler` for every request on a fresh loopback port with
/// hyper-util's HTTP/1.1 + HTTP/2 server, extended CONNECT enabled (with
/// the `http2` feature; else hyper's HTTP/1.1 server).
pub async fn serve<H>(handler: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> Response + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        #[cfg(feature = "http2")]
        let server = {
            let mut server = auto::Builder::new(TokioExecutor::new());
            server.http2().enable_connect_protocol();
            server
        };
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            #[cfg(feature = "http2")]
            let server = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let res = handler(req);
                    async move { Ok::<_, Infallible>(res) }
                });
                #[cfg(feature = "http2")]
                let conn = server.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                #[cfg(not(feature = "http2"))]
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades();
                let _ = conn.await;
            });
        }
    });
    addr
}

/// Serves WebSocket sessions run by `session`, with `config`.
pub async fn serve_ws<S, Fut>(config: Config, session: S) -> SocketAddr
where
    S: Fn(WebSocket) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve(move |mut req| {
        req.extensions_mut().insert(config.clone());
        match WebSocketUpgrade::from_request(&mut req) {
            Ok(ws) => ws.on_upgrade(session.clone()),
            Err(rejection) => rejection.into_response(),
        }
    })
    .await
}

/// An echo server speaking `chat.v2` and `chat.v1` that reports each
/// session's chosen subprotocol.
pub async fn chat_echo_reporting_protocol() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<String>>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let config = Config::default().protocols(["chat.v2", "chat.v1"]);
    let addr = serve_ws(config, move |socket: WebSocket| {
        let _ = tx.send(socket.protocol().map(str::to_owned));
        echo(socket)
    })
    .await;
    (addr, rx)
}

/// The echo loop of `examples/echo.rs`.
pub async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if msg.is_data() && socket.send(msg).await.is_err() {
            break;
        }
    }
}

/// A parsed HTTP response head (and body, when it has a length).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The connection, for talking WebSocket after a 101.
    pub stream: TcpStream,
    /// Bytes read past the head.
    pub rest: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` byte for byte and reads the response.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawResponse {
    tokio::time::timeout(TIMEOUT, raw_inner(addr, request))
        .await
        .expect("raw request timed out")
}

/// [`raw`] from this local address (any of 127.0.0.0/8 works on
/// loopback): a client a server can tell from another.
pub async fn raw_from(local: std::net::IpAddr, addr: SocketAddr, request: &[u8]) -> RawResponse {
    let stream = connect_from(local, addr).await;
    tokio::time::timeout(TIMEOUT, raw_on(stream, request))
        .await
        .expect("raw request timed out")
}

/// A TCP connection to `addr` from `local` (any port).
pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn raw_inner(addr: SocketAddr, request: &[u8]) -> RawResponse {
    raw_on(TcpStream::connect(addr).await.unwrap(), request).await
}

async fn raw_on(mut stream: TcpStream, request: &[u8]) -> RawResponse {
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut rest = buf[head_end..].to_vec();
    // A response to HEAD announces a length but has no body.
    let has_body = !request.starts_with(b"HEAD ");
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .filter(|_| has_body)
        .map_or(0, |(_, v)| v.parse().unwrap());
    while rest.len() < len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        rest.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&rest[..len.min(rest.len())]).into_owned();
    if status != 101 {
        rest.drain(..len.min(rest.len()));
    }
    RawResponse {
        status,
        headers,
        body,
        stream,
        rest,
    }
}

/// A valid HTTP/1.1 handshake with `extra` header lines (each ending in CRLF).
pub fn handshake(extra: &str) -> Vec<u8> {
    handshake_at("/chat", extra)
}

/// [`handshake`] to this path.
pub fn handshake_at(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A masked client frame (RFC 6455 §5.2) with this first byte and payload.
pub fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = masked_header(first, payload.len(), mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The same frame masked with the all-zero key (legal, §5.3), so that the
/// payload is copied as it is: for the large messages.
pub fn client_frame_zero_mask(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = masked_header(first, payload.len(), [0; 4]);
    frame.extend_from_slice(payload);
    frame
}

/// A client frame's header: first byte, length (7, 16 or 64 bits), mask.
fn masked_header(first: u8, len: usize, mask: [u8; 4]) -> Vec<u8> {
    let mut header = vec![first];
    match len {
        n if n < 126 => header.push(0x80 | n as u8),
        n if n <= 0xffff => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            header.push(0x80 | 127);
            header.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    header.extend_from_slice(&mask);
    header
}

/// `hyperws::serve` on a fresh loopback port with a graceful-shutdown
/// signal: send on the returned channel to stop; the handle ends when the
/// server has.
#[cfg(feature = "router")]
pub async fn serve_until_stopped(
    router: hyperws::Router,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        hyperws::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    (addr, stop_tx, server)
}

/// One server frame read off a raw socket: its first byte and payload.
#[derive(Debug)]
pub struct RawFrame {
    pub first: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    pub fn opcode(&self) -> u8 {
        self.first & 0x0f
    }

    /// The code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode() == 0x8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads unmasked server frames from a raw connection after its 101.
#[derive(Debug)]
pub struct FrameReader<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn new(res: RawResponse) -> Self {
        Self {
            stream: res.stream,
            buf: res.rest,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> FrameReader<S> {
    /// A reader of `stream`, with nothing read ahead.
    pub fn new_from(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next frame, or `None` at EOF (or a reset).
    pub async fn next(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame within [`TIMEOUT`]; panics on EOF or time-out.
    pub async fn expect(&mut self) -> RawFrame {
        tokio::time::timeout(TIMEOUT, self.next())
            .await
            .expect("no frame in time")
            .expect("connection ended")
    }
}

fn parse_server_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (len, at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (
            usize::try_from(u64::from_be_bytes(buf[2..10].try_into().ok()?)).ok()?,
            10,
        ),
        126 | 127 => return None,
        n => (usize::from(n), 2),
    };
    (buf.len() >= at + len).then(|| {
        let frame = RawFrame {
            first: buf[0],
            payload: buf[at..at + len].to_vec(),
        };
        (frame, at + len)
    })
}

/// An example's binary running on a port of its own choosing, killed when
/// dropped.
#[derive(Debug)]
pub struct Example {
    pub addr: SocketAddr,
    pub child: std::process::Child,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of an example's binary, which `cargo test` builds beside the
/// tests.
pub fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run the whole suite (`cargo test --all-features`), which builds the examples",
        path.display()
    );
    path
}

/// Starts `command` (an example given `127.0.0.1:0` to listen on) and
/// reads the address it reports (`ws://ADDR` or `http://ADDR` in a line of
/// its output), so that no two tests race for a port.
pub fn start_example(mut command: std::process::Command) -> Example {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        // Reads the pipe to its end, so the child never blocks on it.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                let Some(at) = line.find("://") else { continue };
                let addr: String = line[at + 3..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                if let Ok(addr) = addr.parse::<SocketAddr>() {
                    let _ = tx.send(addr);
                }
            }
        });
    }
    let addr = rx
        .recv_timeout(TIMEOUT)
        .expect("the example never said where it listens");
    Example { addr, child }
}

/// A raw WebSocket connection with a small kernel receive buffer (so that
/// what the server sends backs up quickly), after its 101; nothing read
/// past the response head.
pub async fn small_buffer_websocket(addr: SocketAddr, recv_buffer: u32) -> TcpStream {
    small_buffer_websocket_at(addr, "/chat", recv_buffer).await
}

/// [`small_buffer_websocket`] to this path.
pub async fn small_buffer_websocket_at(
    addr: SocketAddr,
    path: &str,
    recv_buffer: u32,
) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(recv_buffer).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(&handshake_at(path, "")).await.unwrap();
    // Byte by byte, so that no frame after the head is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    stream
}

/// The close frame that ends a client's connection (code, reason); other
/// messages before it are skipped. The caller reads on (to `None`) for
/// tungstenite to answer the close.
pub async fn closed_with<S>(client: &mut tokio_tungstenite::WebSocketStream<S>) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(TIMEOUT, client.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code.into(), frame.reason.to_string())
            }
            Ok(Some(Ok(Message::Close(None)))) => panic!("a close frame without a code"),
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Reads a client's connection to its end, within [`TIMEOUT`].
pub async fn read_to_end<S>(client: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    while tokio::time::timeout(TIMEOUT, client.next())
        .await
        .expect("the connection did not end")
        .is_some()
    {}
}

/// An HTTP/1.1 handshake to `/echo` with version 8: refused with 426.
pub const VERSION_8_HANDSHAKE: &[u8] = b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\n\
    upgrade: websocket\r\nsec-websocket-version: 8\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// hyper's HTTP/2 client on a fresh connection (h2c, prior knowledge).
#[cfg(feature = "http2")]
pub async fn h2_client(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}
