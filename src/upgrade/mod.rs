//! The opening handshake: [`WebSocketUpgrade`] validates a request (HTTP/1.1
//! per RFC 6455 §4.2.1, HTTP/2 extended CONNECT per RFC 8441), chooses a
//! subprotocol, answers `101 Switching Protocols` (`200 OK` on HTTP/2) and
//! hands the upgraded connection to your callback as a [`WebSocket`].
//!
//! With a plain hyper `service_fn`:
//!
//! ```no_run
//! use hyperws::{IntoResponse, Message, Response, WebSocketUpgrade};
//!
//! async fn handle(mut req: http::Request<hyper::body::Incoming>) -> Result<Response, std::convert::Infallible> {
//!     let ws = match WebSocketUpgrade::from_request(&mut req) {
//!         Ok(ws) => ws,
//!         Err(rejection) => return Ok(rejection.into_response()),
//!     };
//!     Ok(ws.protocols(["chat.v2", "chat.v1"]).on_upgrade(|mut socket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             if msg.is_data() && socket.send(msg).await.is_err() {
//!                 break;
//!             }
//!         }
//!     }))
//! }
//! ```

mod accept;
mod handshake;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use http::request::Parts;
use http::{header, Extensions, HeaderMap, HeaderValue, Method, Request, StatusCode, Version};
use hyper::upgrade::OnUpgrade;

use crate::config::{Config, ProtocolPolicy};
use crate::error::Error;
use crate::lifecycle::Lifecycle;
use crate::rejection::{ConnectionNotUpgradable, WebSocketUpgradeRejection};
use crate::response::{Body, IntoResponse, Response};
use crate::sessions::Sessions;
use crate::socket::WebSocket;

/// A validated WebSocket opening handshake, waiting for a callback.
///
/// Build it from a request with [`from_request`](Self::from_request) or
/// [`from_parts`](Self::from_parts) (a router does this for you), adjust it
/// with the builder methods, and finish with
/// [`on_upgrade`](Self::on_upgrade), whose response must be returned to the
/// client.
///
/// The [`Config`] is taken from the request's extensions when a `Config` is
/// there (this is how a router passes its default), else
/// [`Config::default`].
#[must_use = "a WebSocketUpgrade does nothing until `on_upgrade` is called and its response returned"]
pub struct WebSocketUpgrade<F = DefaultOnFailedUpgrade> {
    config: Config,
    /// `None` on HTTP/2, where there is no key to answer.
    key: Option<HeaderValue>,
    offered: Vec<Box<str>>,
    selected: Option<usize>,
    origin: Option<HeaderValue>,
    duplicate_origin: bool,
    /// Where the request was sent (`Host`, or HTTP/2 `:authority`), for the
    /// same-origin policy.
    host: Option<Box<str>>,
    peer_addr: Option<SocketAddr>,
    lifecycle: Option<Lifecycle>,
    /// The client's permessage-deflate offers, answered with the final
    /// configuration when the response is built.
    #[cfg(feature = "deflate")]
    deflate_offers: Vec<crate::deflate::offer::Offer>,
    on_upgrade: OnUpgrade,
    on_failed_upgrade: F,
    /// The WebSocket's `tracing` span (disabled, and free, when no
    /// subscriber wants it).
    span: tracing::Span,
}

impl WebSocketUpgrade {
    /// Validates the handshake in a request and takes its upgrade handle.
    ///
    /// # Errors
    ///
    /// A [`WebSocketUpgradeRejection`] saying which rule the request broke;
    /// it converts into the response to send.
    pub fn from_request<B>(req: &mut Request<B>) -> Result<Self, WebSocketUpgradeRejection> {
        let (method, version) = (req.method().clone(), req.version());
        // Split the borrows: headers are read, extensions give up the handle.
        let mut extensions = std::mem::take(req.extensions_mut());
        let authority = req.uri().authority().map(|a| a.as_str().to_owned());
        let result = Self::extract(
            &method,
            version,
            (authority.as_deref(), req.uri().path()),
            req.headers(),
            &mut extensions,
        );
        *req.extensions_mut() = extensions;
        result
    }

    /// Validates the handshake in request parts and takes their upgrade handle.
    ///
    /// # Errors
    ///
    /// As for [`from_request`](Self::from_request).
    pub fn from_parts(parts: &mut Parts) -> Result<Self, WebSocketUpgradeRejection> {
        Self::extract(
            &parts.method,
            parts.version,
            (
                parts.uri.authority().map(http::uri::Authority::as_str),
                parts.uri.path(),
            ),
            &parts.headers,
            &mut parts.extensions,
        )
    }

    fn extract(
        method: &Method,
        version: Version,
        (authority, path): (Option<&str>, &str),
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Self, WebSocketUpgradeRejection> {
        Self::validate(method, version, authority, path, headers, extensions).inspect_err(|r| {
            crate::telemetry::handshake_rejected(r);
        })
    }

    fn validate(
        method: &Method,
        version: Version,
        authority: Option<&str>,
        path: &str,
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Self, WebSocketUpgradeRejection> {
        let found = handshake::scan(headers);
        let key = handshake::check_request(method, version, &found, extensions)?;
        let offered = if found.protocols {
            handshake::offered_protocols(headers)?
        } else {
            Vec::new()
        };
        let origin = found.origin.first.cloned();
        let duplicate_origin = found.origin.repeated;
        let host = found
            .host
            .and_then(|h| h.to_str().ok())
            .or(authority)
            .map(Box::from);
        let on_upgrade = extensions
            .remove::<OnUpgrade>()
            .ok_or(ConnectionNotUpgradable)?;
        let config = extensions.get::<Config>().cloned().unwrap_or_default();
        let lifecycle = extensions
            .get::<Lifecycle>()
            .or_else(|| extensions.get::<Sessions>().map(Sessions::lifecycle))
            .cloned();
        let peer_addr = lifecycle
            .as_ref()
            .and_then(|l| l.peer)
            .or_else(|| extensions.get::<SocketAddr>().copied());
        let peer = peer_addr.map(tracing::field::display);
        let span = tracing::info_span!(
            "websocket",
            id = tracing::field::Empty,
            peer,
            client = tracing::field::Empty,
            path,
            protocol = tracing::field::Empty,
        );
        let mut upgrade = Self {
            config,
            key,
            offered,
            selected: None,
            origin,
            duplicate_origin,
            host,
            peer_addr,
            lifecycle,
            #[cfg(feature = "deflate")]
            deflate_offers: if found.extensions {
                crate::deflate::offer::deflate_offers(headers)
            } else {
                Vec::new()
            },
            on_upgrade,
            on_failed_upgrade: DefaultOnFailedUpgrade,
            span,
        };
        upgrade.select_protocol();
        Ok(upgrade)
    }
}

impl<F> WebSocketUpgrade<F> {
    /// Replaces the whole configuration for this connection.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self.select_protocol();
        self
    }

    /// Sets the subprotocols the server speaks for this connection, most
    /// preferred first (overriding [`Config::protocols`]).
    ///
    /// Which one wins follows [`Config::protocol_policy`]; with no match the
    /// connection goes ahead without a subprotocol, unless
    /// [`Config::require_protocol`] is set.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.config = self.config.protocols(protocols);
        self.select_protocol();
        self
    }

    /// The largest incoming message; see [`Config::max_message_size`].
    pub fn max_message_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config = self.config.max_message_size(bytes);
        self
    }

    /// The largest incoming frame; see [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config = self.config.max_frame_size(bytes);
        self
    }

    /// The read buffer size; see [`Config::read_buffer_size`].
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config = self.config.read_buffer_size(bytes);
        self
    }

    /// The write gather size; see [`Config::write_buffer_size`].
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.config = self.config.write_buffer_size(bytes);
        self
    }

    /// Offers permessage-deflate on this connection; see
    /// [`Config::deflate`].
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, deflate: impl Into<Option<crate::deflate::Deflate>>) -> Self {
        self.config = self.config.deflate(deflate);
        self
    }

    /// The permessage-deflate parameters the response will accept, if the
    /// client offered the extension and the configuration enables it.
    /// [`WebSocket::deflate`] tells the same after the upgrade.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn selected_deflate(&self) -> Option<crate::deflate::DeflateParams> {
        let settings = self.config.deflate.as_ref()?;
        self.deflate_offers
            .iter()
            .find_map(|offer| crate::deflate::offer::accept(offer, settings))
    }

    /// The write buffer limit; see [`Config::max_write_buffer_size`].
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.config = self.config.max_write_buffer_size(bytes);
        self
    }

    /// Sets the client's address that [`WebSocket::peer_addr`] reports
    /// (and the span's `client` field shows), where the request does not
    /// carry the right one: from axum's `ConnectInfo`, or the client behind
    /// a reverse proxy that [`serve`](crate::serve) does not know to trust.
    pub fn peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer_addr = Some(addr);
        self.span.record("client", tracing::field::display(addr));
        self
    }

    /// The subprotocol that will be answered, if any. Known before the
    /// upgrade; [`WebSocket::protocol`] tells the same after it.
    #[must_use]
    pub fn selected_protocol(&self) -> Option<&str> {
        self.selected.map(|i| &*self.offered[i])
    }

    /// Every subprotocol the client offered, in its order, from all
    /// `Sec-WebSocket-Protocol` header lines.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.offered.iter().map(|p| &**p)
    }

    /// The configuration this connection will use.
    #[must_use]
    pub fn effective_config(&self) -> &Config {
        &self.config
    }

    /// Calls `callback` with the error if hyper cannot complete the upgrade
    /// after the response was sent (e.g. the client went away). The default
    /// logs a `tracing` warning.
    pub fn on_failed_upgrade<C>(self, callback: C) -> WebSocketUpgrade<C>
    where
        C: OnFailedUpgrade,
    {
        WebSocketUpgrade {
            config: self.config,
            key: self.key,
            offered: self.offered,
            selected: self.selected,
            origin: self.origin,
            duplicate_origin: self.duplicate_origin,
            host: self.host,
            peer_addr: self.peer_addr,
            lifecycle: self.lifecycle,
            #[cfg(feature = "deflate")]
            deflate_offers: self.deflate_offers,
            on_upgrade: self.on_upgrade,
            on_failed_upgrade: callback,
            span: self.span,
        }
    }

    /// Finishes the handshake: returns the `101 Switching Protocols` (or
    /// `200 OK` on HTTP/2) response at once and, once hyper has switched the
    /// connection, runs `callback` with the [`WebSocket`] in a new task.
    ///
    /// If the origin policy refuses the request, or a subprotocol is
    /// required and none matches, the response is that rejection instead
    /// (403 or 400) and `callback` never runs.
    ///
    /// Anything from the request the callback needs (headers, extensions,
    /// the peer address) can be captured by the closure.
    #[must_use = "the response must be returned to the client for the upgrade to happen"]
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        match self.try_on_upgrade(callback) {
            Ok(response) => response,
            Err(rejection) => rejection.into_response(),
        }
    }

    /// Like [`on_upgrade`](Self::on_upgrade), but gives the policy rejection
    /// back as a typed error.
    ///
    /// # Errors
    ///
    /// [`OriginRefused`], [`NoMatchingProtocol`], [`TooManyWebSockets`]
    /// when served by [`serve`](crate::serve) with a limit that is reached,
    /// or [`ConnectionNotUpgradable`] when called outside a tokio runtime.
    ///
    /// [`OriginRefused`]: crate::rejection::OriginRefused
    /// [`NoMatchingProtocol`]: crate::rejection::NoMatchingProtocol
    /// [`TooManyWebSockets`]: crate::rejection::TooManyWebSockets
    pub fn try_on_upgrade<C, Fut>(self, callback: C) -> Result<Response, WebSocketUpgradeRejection>
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        match self.accept(callback) {
            Ok(response) => {
                crate::telemetry::handshake_accepted();
                Ok(response)
            }
            Err(rejection) => {
                crate::telemetry::handshake_rejected(&rejection);
                Err(rejection)
            }
        }
    }

    fn response(&self, protocol: Option<&str>) -> Response {
        let mut res = Response::new(Body::empty());
        if let Some(key) = &self.key {
            *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = res.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(
                header::SEC_WEBSOCKET_ACCEPT,
                handshake::accept_key(key.as_bytes()),
            );
        }
        if let Some(protocol) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
            res.headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        res
    }

    fn select_protocol(&mut self) {
        let server = &self.config.protocols;
        self.selected = match self.config.protocol_policy {
            ProtocolPolicy::ServerPreference => server
                .iter()
                .find_map(|s| self.offered.iter().position(|o| o == s)),
            ProtocolPolicy::ClientPreference => {
                self.offered.iter().position(|o| server.contains(o))
            }
        };
    }
}

impl<F> fmt::Debug for WebSocketUpgrade<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("config", &self.config)
            .field("requested_protocols", &self.offered)
            .field("selected_protocol", &self.selected_protocol())
            .field("http2", &self.key.is_none())
            .finish_non_exhaustive()
    }
}

/// What to do when hyper cannot complete an upgrade after the response.
///
/// Implemented for every `FnOnce(Error) + Send + 'static`.
pub trait OnFailedUpgrade: Send + 'static {
    /// Handles the error.
    fn call(self, error: Error);
}

impl<F> OnFailedUpgrade for F
where
    F: FnOnce(Error) + Send + 'static,
{
    fn call(self, error: Error) {
        self(error);
    }
}

/// The default [`OnFailedUpgrade`]: a `tracing` warning.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct DefaultOnFailedUpgrade;

impl OnFailedUpgrade for DefaultOnFailedUpgrade {
    fn call(self, error: Error) {
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        tracing::warn!(%error, ?cause, "WebSocket upgrade failed");
    }
}
