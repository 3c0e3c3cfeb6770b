//! Extractors: the arguments of handler functions.
//!
//! A handler is an `async fn` whose arguments each implement
//! [`FromRequestParts`] (they read the method, URI, headers or extensions),
//! except the last, which may instead implement [`FromRequest`] and consume
//! the body. A failed extraction answers with its rejection, a response
//! with the right status and a one-line reason, and the handler never runs.
//!
//! ```
//! use hyperws::extract::{Path, Query, State};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Page {
//!     limit: Option<u32>,
//! }
//!
//! async fn history(
//!     State(app): State<AppState>,
//!     Path(room): Path<String>,
//!     Query(page): Query<Page>,
//! ) -> String {
//!     format!("{} messages of {room} in {}", page.limit.unwrap_or(50), app.name)
//! }
//! # #[derive(Clone)] struct AppState { name: String }
//! ```
//!
//! Write your own by implementing [`FromRequestParts`] (or [`FromRequest`]
//! for body extractors).

pub(crate) mod body;
mod path;
#[cfg(feature = "__fuzz")]
pub(crate) use path::deserialize as path_deserialize;
pub mod rejection;

use std::convert::Infallible;
use std::future::Future;

use http::request::Parts;
use http::{HeaderMap, Method, Uri};

use crate::rejection::WebSocketUpgradeRejection;
use crate::response::IntoResponse;
use crate::upgrade::WebSocketUpgrade;
#[cfg(feature = "json")]
pub use body::Json;
pub use body::DEFAULT_BODY_LIMIT;
pub use path::Path;
pub(crate) use path::PathParams;
use rejection::{InvalidLastEventId, MissingConnectInfo, MissingExtension, QueryRejection};

/// An HTTP request with this crate's body.
pub type Request<B = crate::response::Body> = http::Request<B>;

/// Extracts a value from the request's head (method, URI, headers,
/// extensions) and the router's state.
pub trait FromRequestParts<S>: Sized {
    /// The response sent when extraction fails.
    type Rejection: IntoResponse;

    /// Performs the extraction.
    fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send;
}

/// Extracts a value from the whole request, body included. Only the last
/// argument of a handler may implement this alone.
///
/// The `M` parameter only keeps the blanket implementation for every
/// [`FromRequestParts`] type apart; implement `FromRequest<S>`.
pub trait FromRequest<S, M = private::ViaRequest>: Sized {
    /// The response sent when extraction fails.
    type Rejection: IntoResponse;

    /// Performs the extraction.
    fn from_request(
        req: Request,
        state: &S,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send;
}

/// Markers for [`FromRequest`]'s second parameter: public types in a
/// private module, so nobody outside can name (or rely on) them.
mod private {
    /// Extractors that read the body.
    #[derive(Debug, Clone, Copy)]
    pub enum ViaRequest {}
    /// Extractors that read only the request head.
    #[derive(Debug, Clone, Copy)]
    pub enum ViaParts {}
}

impl<S, T> FromRequest<S, private::ViaParts> for T
where
    S: Send + Sync,
    T: FromRequestParts<S>,
{
    type Rejection = T::Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, _) = req.into_parts();
        T::from_request_parts(&mut parts, state).await
    }
}

/// The router's state, given to [`Router::with_state`](crate::Router::with_state).
///
/// ```
/// use hyperws::{routing::get, extract::State, Router};
///
/// #[derive(Clone)]
/// struct App { greeting: &'static str }
///
/// async fn hello(State(app): State<App>) -> &'static str {
///     app.greeting
/// }
///
/// let router: Router = Router::new().route("/", get(hello)).with_state(App { greeting: "hi" });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

impl<S: Clone + Send + Sync> FromRequestParts<S> for State<S> {
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, state: &S) -> Result<Self, Infallible> {
        Ok(Self(state.clone()))
    }
}

/// The query string, deserialized with `serde_urlencoded`. A query that
/// does not fit `T` is a `400`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = QueryRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, QueryRejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Self)
            .map_err(|err| QueryRejection(err.to_string()))
    }
}

/// The address of the peer, put in the request by [`serve`](crate::serve).
#[derive(Debug, Clone, Copy)]
pub struct ConnectInfo<T>(pub T);

impl<S: Sync, T: Clone + Send + Sync + 'static> FromRequestParts<S> for ConnectInfo<T> {
    type Rejection = MissingConnectInfo;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MissingConnectInfo> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(MissingConnectInfo)
    }
}

/// The client's address: the TCP peer, or, when the request came through a
/// proxy that [`Serve::trusted_proxies`](crate::Serve::trusted_proxies)
/// trusts, the client that proxy names (see
/// [`TrustedProxies`](crate::TrustedProxies)). The port is 0 when the
/// proxy did not give one (`X-Forwarded-For` never does). Missing (500)
/// only outside [`serve`](crate::serve).
///
/// ```
/// use hyperws::extract::ClientAddr;
///
/// async fn whoami(ClientAddr(client): ClientAddr) -> String {
///     client.ip().to_string()
/// }
/// # let _: hyperws::Router = hyperws::Router::new().route("/", hyperws::routing::get(whoami));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

impl<S: Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = MissingConnectInfo;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MissingConnectInfo> {
        let extensions = &parts.extensions;
        extensions
            .get::<Self>()
            .copied()
            .or_else(|| {
                extensions
                    .get::<ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| Self(c.0))
            })
            .ok_or(MissingConnectInfo)
    }
}

/// The `Last-Event-ID` header: the id of the last event a reconnecting
/// `EventSource` saw (see [`sse`](crate::sse)). Take it as
/// `Option<LastEventId>`: a first connection has none. Refused (400) when
/// the header is there but not text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEventId(pub String);

impl<S: Sync> FromRequestParts<S> for LastEventId {
    type Rejection = InvalidLastEventId;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, InvalidLastEventId> {
        let value = parts
            .headers
            .get("last-event-id")
            .ok_or(InvalidLastEventId)?;
        let text = std::str::from_utf8(value.as_bytes()).map_err(|_| InvalidLastEventId)?;
        Ok(Self(text.to_owned()))
    }
}

/// A value from the request's extensions, put there by a layer or by the
/// server. Missing is a `500`: it is a server bug, not a client error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extension<T>(pub T);

impl<S: Sync, T: Clone + Send + Sync + 'static> FromRequestParts<S> for Extension<T> {
    type Rejection = MissingExtension;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MissingExtension> {
        parts
            .extensions
            .get::<T>()
            .cloned()
            .map(Self)
            .ok_or(MissingExtension(std::any::type_name::<T>()))
    }
}

impl<S: Sync> FromRequestParts<S> for HeaderMap {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts.headers.clone())
    }
}

impl<S: Sync> FromRequestParts<S> for Method {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts.method.clone())
    }
}

impl<S: Sync> FromRequestParts<S> for Uri {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts.uri.clone())
    }
}

impl<S: Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        WebSocketUpgrade::from_parts(parts)
    }
}

impl<S: Sync, T: FromRequestParts<S> + Send> FromRequestParts<S> for Option<T> {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        Ok(T::from_request_parts(parts, state).await.ok())
    }
}
