//! hyperws: an extractor-based WebSocket layer on top of hyper 1.x.
//!
//! A handler builds a [`WebSocketUpgrade`] from the request; it validates the
//! opening handshake (HTTP/1.1 per RFC 6455, HTTP/2 per RFC 8441), picks a
//! subprotocol and answers `101 Switching Protocols`; [`on_upgrade`] then
//! hands a [`WebSocket`] — a `Stream` of incoming and a `Sink` of outgoing
//! [`Message`]s — to your callback. A [`Config`] written in code carries
//! buffer sizes, limits, subprotocols and the origin policy.
//!
//! The wire protocol (framing, masking, UTF-8 checks, the close handshake) is
//! tokio-tungstenite's; this crate configures it for servers with many
//! connections and wraps it in a small API.
//!
//! # Example
//!
//! Handlers take extractors; `serve` runs HTTP/1.1 and HTTP/2 with graceful
//! shutdown, limits and timeouts (the `router` feature, on by default). An
//! echo server on `/chat`, and a real client talking to it:
//!
//! ```
//! # #[cfg(feature = "router")] mod app {
//! use hyperws::{routing::get, Message, Router, WebSocket, WebSocketUpgrade};
//!
//! async fn chat(ws: WebSocketUpgrade) -> hyperws::Response {
//!     ws.protocols(["chat.v2", "chat.v1"]) // the server's preference order
//!         .on_upgrade(session)
//! }
//!
//! async fn session(mut socket: WebSocket) {
//!     while let Some(Ok(msg)) = socket.recv().await {
//!         if let Message::Text(text) = msg {
//!             if socket.send(Message::text(format!("echo: {text}"))).await.is_err() {
//!                 break;
//!             }
//!         }
//!     }
//! }
//!
//! pub fn app() -> Router {
//!     Router::new().route("/chat", get(chat))
//! }
//! # }
//! # #[cfg(feature = "router")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use app::app;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_tungstenite::tungstenite;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     hyperws::serve(listener, app())
//!         .with_graceful_shutdown(hyperws::shutdown_signal())
//!         .await
//! });
//!
//! let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat")).await?;
//! client.send(tungstenite::Message::text("hello")).await?;
//! let reply = client.next().await.ok_or("no reply")??;
//! assert_eq!(reply.into_text()?, "echo: hello");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "router"))] fn main() {}
//! ```
//!
//! # Without the router
//!
//! [`WebSocketUpgrade::from_request`] works from a plain hyper service
//! (with `default-features = false`, nothing else is compiled):
//!
//! ```
//! use std::convert::Infallible;
//!
//! use futures_util::{SinkExt, StreamExt};
//! use hyper::{body::Incoming, server::conn::http1, service::service_fn};
//! use hyper_util::rt::TokioIo;
//! use hyperws::{IntoResponse, Message, Response, WebSocketUpgrade};
//! use tokio_tungstenite::tungstenite;
//!
//! async fn handle(mut req: http::Request<Incoming>) -> Result<Response, Infallible> {
//!     let ws = match WebSocketUpgrade::from_request(&mut req) {
//!         Ok(ws) => ws,
//!         Err(rejection) => return Ok(rejection.into_response()),
//!     };
//!     Ok(ws.on_upgrade(|mut socket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             if msg.is_data() && socket.send(msg).await.is_err() {
//!                 break;
//!             }
//!         }
//!     }))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     http1::Builder::new()
//!         .serve_connection(TokioIo::new(tcp), service_fn(handle))
//!         .with_upgrades()
//!         .await
//!         .map_err(std::io::Error::other)
//! });
//!
//! let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
//! client.send(tungstenite::Message::text("hello")).await?;
//! let reply = client.next().await.ok_or("no reply")??;
//! assert_eq!(reply.into_text()?, "hello");
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! `router`, `json`, `http2` and `deflate` are on by default; `tls`,
//! `redis`, `metrics` and `axum` are opt-in. Items that need a feature say
//! so in these docs.
//!
//! Rooms, broadcast, hooks and keepalive: see [`hub`]. Guides: `docs/` in
//! the repository.
//!
//! [`on_upgrade`]: WebSocketUpgrade::on_upgrade
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
mod axum;
mod config;
#[cfg(feature = "deflate")]
mod deflate;
mod error;
#[cfg(feature = "router")]
pub mod extract;
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "router")]
mod handler;
pub mod hub;
#[cfg(feature = "json")]
mod json;
mod keepalive;
mod lifecycle;
mod message;
pub mod rejection;
mod response;
#[cfg(feature = "router")]
pub mod routing;
#[cfg(feature = "router")]
mod serve;
mod sessions;
mod socket;
pub mod sse;
mod telemetry;
#[cfg(feature = "router")]
pub mod test;
mod transport;
mod upgrade;
mod wire;

pub use crate::config::{Config, OriginPolicy, ProtocolPolicy};
#[cfg(feature = "deflate")]
pub use crate::deflate::{Deflate, DeflateParams};
pub use crate::error::Error;
#[cfg(all(feature = "router", feature = "json"))]
pub use crate::extract::Json;
pub use crate::message::{close_code, CloseFrame, Message, Utf8Bytes};
pub use crate::rejection::WebSocketUpgradeRejection;
pub use crate::response::{Body, BoxError, IntoResponse, Response};
pub use crate::sessions::Sessions;
pub use crate::socket::{ReuniteError, WebSocket, WebSocketReceiver, WebSocketSender};
pub use crate::upgrade::{DefaultOnFailedUpgrade, OnFailedUpgrade, WebSocketUpgrade};
#[cfg(feature = "router")]
pub use crate::{
    extract::{ConnectInfo, Extension, Path, Query, State},
    handler::Handler,
    routing::Router,
    serve::{serve, shutdown_signal, Serve, TrustedProxies},
};
// The guides' code blocks compile and run as doctests.
#[cfg(all(doctest, feature = "router", feature = "json"))]
#[doc = include_str!("../README.md")]
mod readme {}
#[cfg(all(doctest, feature = "router", feature = "json"))]
#[doc = include_str!("../docs/configuration.md")]
mod guide_configuration {}
#[cfg(all(doctest, feature = "router", feature = "json"))]
#[doc = include_str!("../docs/handshake.md")]
mod guide_handshake {}
#[cfg(all(doctest, feature = "router", feature = "json", feature = "redis"))]
#[doc = include_str!("../docs/realtime.md")]
mod guide_realtime {}
#[cfg(all(doctest, feature = "router", feature = "json"))]
#[doc = include_str!("../docs/routing.md")]
mod guide_routing {}
#[cfg(all(doctest, feature = "router", feature = "json"))]
#[doc = include_str!("../docs/performance.md")]
mod guide_performance {}
#[cfg(all(doctest, feature = "router"))]
#[doc = include_str!("../docs/authentication.md")]
mod guide_authentication {}
#[cfg(all(doctest, feature = "router"))]
#[doc = include_str!("../docs/deployment.md")]
mod guide_deployment {}
#[cfg(all(doctest, feature = "router", feature = "axum"))]
#[doc = include_str!("../docs/axum.md")]
mod guide_axum {}
#[cfg(all(doctest, feature = "router", feature = "metrics"))]
#[doc = include_str!("../docs/observability.md")]
mod guide_observability {}

/// The rustls crate, as used by [`Serve::tls`].
#[cfg(feature = "tls")]
pub use tokio_rustls::rustls;
