//! An in-process client for testing a [`Router`]: plain requests and
//! WebSocket sessions over an in-memory stream, without binding a port.
//!
//! Each request gets its own in-memory connection served by hyper, so what
//! the router sees is what a real client would produce: parsed HTTP/1.1,
//! real upgrades, real WebSocket frames. Handlers asking for
//! [`ConnectInfo`] see [`TEST_PEER`]; `serve`'s options (graceful shutdown,
//! WebSocket limit, header timeout) are not in play.
//!
//! ```
//! use hyperws::test::TestClient;
//! use hyperws::{routing::get, Message, Router, WebSocket};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app: Router = Router::new()
//!     .route("/hello", get(|| async { "hi" }))
//!     .websocket("/ws", |mut socket: WebSocket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             let _ = socket.send(msg).await;
//!         }
//!     });
//! let client = TestClient::new(app);
//!
//! let res = client.get("/hello").await;
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.text(), "hi");
//!
//! let mut ws = client.websocket("/ws").await.expect("upgraded");
//! ws.send(Message::text("ping")).await.unwrap();
//! assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("ping"));
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::error::Error;
use crate::extract::ConnectInfo;
use crate::message::Message;
use crate::routing::Router;

/// Size of each in-memory connection's buffer in each direction.
const PIPE: usize = 256 * 1024;

/// The peer address handlers see through [`ConnectInfo`]: `127.0.0.1:1`.
pub const TEST_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);

/// Sends requests to a [`Router`] in the same process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TestClient {
    router: Router,
}

impl TestClient {
    /// A client for this router.
    #[must_use]
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// Sends `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path).body(Bytes::new()).await
    }

    /// Starts a request with any method; add headers and a body with the
    /// builder, then await it.
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            client: self,
            builder: Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, "test"),
        }
    }

    /// Opens a WebSocket on `path`, or gives the refusing response back.
    ///
    /// # Errors
    ///
    /// The response when the server does not answer `101`.
    pub async fn websocket(&self, path: &str) -> Result<TestWebSocket, TestResponse> {
        self.websocket_with(path, &[]).await
    }

    /// Opens a WebSocket with extra handshake headers (for example
    /// `sec-websocket-protocol` or `origin`).
    ///
    /// # Errors
    ///
    /// The response when the server does not answer `101`.
    pub async fn websocket_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<TestWebSocket, TestResponse> {
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, "test")
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let req = match builder.body(Full::new(Bytes::new())) {
            Ok(req) => req,
            Err(err) => return Err(TestResponse::client_error(&err)),
        };
        let mut res = match self.send(req).await {
            Ok(res) => res,
            Err(res) => return Err(res),
        };
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(TestResponse::read(res).await);
        }
        let protocol = res
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match hyper::upgrade::on(&mut res).await {
            Ok(upgraded) => {
                let stream =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None)
                        .await;
                Ok(TestWebSocket { stream, protocol })
            }
            Err(err) => Err(TestResponse::client_error(&err)),
        }
    }

    /// Serves one in-memory connection and sends `req` on it.
    async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, TestResponse> {
        let (client_io, server_io) = tokio::io::duplex(PIPE);
        let router = self.router.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    // As `serve` would: handlers asking for the peer get one.
                    req.extensions_mut().insert(ConnectInfo(TEST_PEER));
                    req.extensions_mut().insert(TEST_PEER);
                    let fut = router.dispatch(req.map(crate::response::Body::new));
                    async move { Ok::<_, Infallible>(fut.await) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service)
                .with_upgrades()
                .await;
        });
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
            .await
            .map_err(|e| TestResponse::client_error(&e))?;
        tokio::spawn(conn.with_upgrades());
        sender
            .send_request(req)
            .await
            .map_err(|e| TestResponse::client_error(&e))
    }
}

/// A request being built by [`TestClient::request`].
#[must_use = "a request is sent when its body is set"]
pub struct TestRequest<'a> {
    client: &'a TestClient,
    builder: http::request::Builder,
}

impl fmt::Debug for TestRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRequest").finish_non_exhaustive()
    }
}

impl TestRequest<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sets the body and sends the request.
    pub async fn body(self, body: impl Into<Bytes>) -> TestResponse {
        match self.builder.body(Full::new(body.into())) {
            Ok(req) => match self.client.send(req).await {
                Ok(res) => TestResponse::read(res).await,
                Err(res) => res,
            },
            Err(err) => TestResponse::client_error(&err),
        }
    }

    /// Sets a JSON body (and its content type) and sends the request.
    #[cfg(feature = "json")]
    pub async fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> TestResponse {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.header("content-type", "application/json")
                    .body(body)
                    .await
            }
            Err(err) => TestResponse::client_error(&err),
        }
    }
}

/// A response read in full.
#[derive(Debug, Clone)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl TestResponse {
    async fn read(res: http::Response<hyper::body::Incoming>) -> Self {
        let (parts, body) = res.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => return Self::client_error(&err),
        };
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The test client itself failed (not the router): a `599` with the
    /// error as body, so a test's assertion shows it.
    fn client_error(err: &dyn std::error::Error) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("x-test-client-error", HeaderValue::from_static("1"));
        Self {
            status: StatusCode::from_u16(599).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers,
            body: Bytes::from(err.to_string()),
        }
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as text, if present and visible ASCII.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body.
    #[must_use]
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Errors
    ///
    /// When the body is not JSON for `T`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// The client end of a WebSocket opened by [`TestClient::websocket`].
pub struct TestWebSocket {
    stream: WebSocketStream<TokioIo<Upgraded>>,
    protocol: Option<String>,
}

impl fmt::Debug for TestWebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestWebSocket")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl TestWebSocket {
    /// Sends a message (masked, as a client must).
    ///
    /// # Errors
    ///
    /// When the connection is closed or fails.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        self.stream
            .send(msg.into().into_tungstenite())
            .await
            .map_err(Error::from_tungstenite)
    }

    /// Receives the next message; `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        let item = self.stream.next().await?;
        Some(
            item.map(Message::from_tungstenite)
                .map_err(Error::from_tungstenite),
        )
    }

    /// Receives the next text message, skipping pings and pongs; `None` once
    /// the connection is closed or on a message that is not text.
    pub async fn recv_text(&mut self) -> Option<String> {
        loop {
            match self.recv().await? {
                Ok(Message::Text(text)) => return Some(text.to_string()),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                _ => return None,
            }
        }
    }

    /// Starts the close handshake with this code and reason.
    ///
    /// # Errors
    ///
    /// When the connection already failed.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        self.send(Message::close(code, reason)).await
    }

    /// The subprotocol the server chose, if any.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}
