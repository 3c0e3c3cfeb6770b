//! [`Router`] and [`MethodRouter`]: paths (matched by `matchit`) to methods
//! to handlers.
//!
//! ```
//! use hyperws::{extract::Path, routing::get, Router, WebSocket};
//!
//! async fn room(Path(name): Path<String>) -> String {
//!     format!("room {name}")
//! }
//!
//! let app: Router = Router::new()
//!     .route("/rooms/{name}", get(room))
//!     .websocket("/ws", |mut socket: WebSocket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             if msg.is_data() && socket.send(msg).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! ```
//!
//! Unknown paths answer `404`; a known path with a method it has no handler
//! for answers `405` with an `Allow` header. `HEAD` is served by the `GET`
//! handler when there is no `HEAD` one, and an HTTP/2 extended `CONNECT`
//! (RFC 8441, a WebSocket over HTTP/2) by the `GET` handler when there is no
//! `CONNECT` one, so `get(ws_handler)` serves WebSockets on both versions.

mod hooks;
mod method;
mod route;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, StatusCode};
use tower::{Layer, Service};

use crate::config::Config;
use crate::extract::body::BodyLimit;
use crate::extract::{PathParams, Request};
use crate::handler::{BoxFuture, Handler};
use crate::hub::Hub;
use crate::response::{plain_text, Body, BoxError, Response};
use crate::socket::WebSocket;
use crate::upgrade::WebSocketUpgrade;
pub use hooks::{Closed, Hooks, Refuse};
use method::not_found_endpoint;
pub use method::{any, delete, get, head, on, options, patch, post, put, MethodRouter};
use route::{bind_state, endpoint, layered, with_settings, Endpoint};
pub use route::{Route, RouteService};

/// Paths to [`MethodRouter`]s, with a fallback, a state and the default
/// WebSocket [`Config`] of every route.
///
/// `Router<S>` still needs a state of type `S`; [`with_state`](Self::with_state)
/// gives it and makes a `Router<()>`, which is a `tower::Service` and what
/// [`serve`](crate::serve) takes.
pub struct Router<S = ()> {
    // Shared, so that cloning a built router (tower does, per connection)
    // costs two reference counts.
    paths: Arc<Vec<(String, MethodRouter<S>)>>,
    matcher: Arc<matchit::Router<usize>>,
    fallback: Option<Endpoint<S>>,
    config: Option<Config>,
    body_limit: Option<usize>,
}

impl<S> Clone for Router<S> {
    fn clone(&self) -> Self {
        Self {
            paths: self.paths.clone(),
            matcher: self.matcher.clone(),
            fallback: self.fallback.clone(),
            config: self.config.clone(),
            body_limit: self.body_limit,
        }
    }
}

impl<S> fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.paths)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Router<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// An empty router: every request is a `404`.
    #[must_use]
    pub fn new() -> Self {
        Self {
            paths: Arc::new(Vec::new()),
            matcher: Arc::new(matchit::Router::new()),
            fallback: None,
            config: None,
            body_limit: None,
        }
    }

    /// Routes `path` to `methods`. Parameters are `{name}`, a trailing
    /// catch-all is `{*rest}`. Adding methods to a path already routed
    /// merges them.
    ///
    /// # Panics
    ///
    /// On an invalid pattern, a pattern that conflicts with another, or a
    /// method registered twice for a path: programmer errors, caught at
    /// start-up, with the path in the message.
    #[must_use]
    pub fn route(mut self, path: &str, methods: MethodRouter<S>) -> Self {
        if !path.starts_with('/') {
            panic!("hyperws: route {path:?} must start with '/'");
        }
        let paths = Arc::make_mut(&mut self.paths);
        if let Some((_, existing)) = paths.iter_mut().find(|(p, _)| p == path) {
            let merged = std::mem::replace(existing, MethodRouter::new()).merge(methods);
            *existing = merged;
            return self;
        }
        if let Err(err) = Arc::make_mut(&mut self.matcher).insert(path, paths.len()) {
            panic!("hyperws: cannot route {path:?}: {err}");
        }
        paths.push((path.to_owned(), methods));
        self
    }

    /// Serves WebSockets on `path` with `callback`, upgraded with the
    /// router's [`Config`]. A request that is not a valid handshake gets the
    /// upgrade rejection (`400`, `405`, `426`...).
    #[must_use]
    pub fn websocket<C, Fut>(self, path: &str, callback: C) -> Self
    where
        C: Fn(WebSocket) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = move |ws: WebSocketUpgrade| {
            let callback = callback.clone();
            async move { ws.on_upgrade(callback) }
        };
        self.route(path, get(handler))
    }

    /// Serves hub connections on `path`: each valid WebSocket handshake
    /// joins `hub`, and `hooks` run on connect, on each message and on
    /// close, with extractors reading the upgrade request. See
    /// [`Hooks`].
    #[must_use]
    pub fn hub(self, path: &str, hub: Hub, hooks: Hooks<S>) -> Self {
        let endpoint = hooks::hub_endpoint(hub, hooks);
        self.route(path, MethodRouter::from_endpoint(Method::GET, endpoint))
    }

    /// Mounts `router`'s routes under `prefix` (`/api` + `/users` =
    /// `/api/users`; the nested `/` becomes `/api`). The nested router's
    /// WebSocket [`Config`] and body limit apply to its routes; its fallback
    /// does not (the outer router's answers).
    ///
    /// # Panics
    ///
    /// When a resulting path conflicts, as for [`route`](Self::route).
    #[must_use]
    pub fn nest(mut self, prefix: &str, router: Router<S>) -> Self {
        let prefix = prefix.trim_end_matches('/');
        if !prefix.starts_with('/') {
            panic!("hyperws: nest prefix {prefix:?} must start with '/' and not be '/'");
        }
        let (config, limit) = (router.config.clone(), router.body_limit);
        for (path, methods) in Arc::unwrap_or_clone(router.paths) {
            let full = if path == "/" {
                prefix.to_owned()
            } else {
                format!("{prefix}{path}")
            };
            let methods = methods.map(|e| with_settings(e, config.clone(), limit));
            self = self.route(&full, methods);
        }
        self
    }

    /// Answers requests no route matches (instead of `404`).
    #[must_use]
    pub fn fallback<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.fallback = Some(endpoint(handler));
        self
    }

    /// The WebSocket [`Config`] every `WebSocketUpgrade` in this router
    /// starts from (a handler can still override it).
    #[must_use]
    pub fn websocket_config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The most bytes a body extractor (`Bytes`, `String`, `Json`) reads;
    /// more is a `413`. Default:
    /// [`DEFAULT_BODY_LIMIT`](crate::extract::DEFAULT_BODY_LIMIT).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// Wraps every route, the fallback and the router's own `404` and `405`
    /// answers in a tower layer, such as tower-http's `TraceLayer` or
    /// `TimeoutLayer`. Routes added later are not wrapped.
    #[must_use]
    pub fn layer<L, B>(self, layer: L) -> Self
    where
        L: Layer<Route>,
        L::Service: RouteService<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            paths: Arc::new(
                Arc::unwrap_or_clone(self.paths)
                    .into_iter()
                    .map(|(p, m)| (p, m.layer(&layer)))
                    .collect(),
            ),
            // The router's own 404 goes through the layer too.
            fallback: Some(layered(
                self.fallback.unwrap_or_else(not_found_endpoint),
                &layer,
            )),
            ..self
        }
    }

    /// Gives the router its state; the result needs none and can be served.
    #[must_use]
    pub fn with_state<S2>(self, state: S) -> Router<S2> {
        Router {
            paths: Arc::new(
                Arc::unwrap_or_clone(self.paths)
                    .into_iter()
                    .map(|(p, m)| (p, m.with_state(&state)))
                    .collect(),
            ),
            matcher: self.matcher,
            fallback: self.fallback.map(|e| bind_state(e, state.clone())),
            config: self.config,
            body_limit: self.body_limit,
        }
    }
}

impl Router<()> {
    /// Routes one request.
    pub(crate) fn dispatch(&self, mut req: Request) -> BoxFuture<Response> {
        // Nested routers' settings are inserted later and win.
        if let Some(config) = &self.config {
            req.extensions_mut().insert(config.clone());
        }
        if let Some(limit) = self.body_limit {
            req.extensions_mut().insert(BodyLimit(limit));
        }
        // Params are decoded into owned strings while the path is borrowed.
        let matched = self.matcher.at(req.uri().path()).ok().map(|found| {
            let params: Result<Vec<_>, _> = found
                .params
                .iter()
                .map(|(name, value)| {
                    let value = percent_encoding::percent_decode_str(value).decode_utf8()?;
                    Ok::<_, std::str::Utf8Error>((Arc::<str>::from(name), value.into_owned()))
                })
                .collect();
            (*found.value, params)
        });
        let Some((index, params)) = matched else {
            return match &self.fallback {
                Some(fallback) => fallback(req, ()),
                None => not_found_endpoint()(req, ()),
            };
        };
        let Ok(params) = params else {
            return Box::pin(async {
                plain_text(StatusCode::BAD_REQUEST, "path parameter is not valid UTF-8")
            });
        };
        req.extensions_mut().insert(PathParams(params.into()));
        self.paths[index].1.call(req, ())
    }
}

/// `Router<()>` is a tower service: layers from tower and tower-http wrap
/// it, and hyper serves it (see [`serve`](crate::serve)).
impl<B> Service<http::Request<B>> for Router<()>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.dispatch(req.map(Body::new));
        Box::pin(async move { Ok(fut.await) })
    }
}
