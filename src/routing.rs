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

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use tower::{Layer, Service, ServiceExt};

use crate::config::Config;
use crate::extract::body::BodyLimit;
use crate::extract::{PathParams, Request};
use crate::handler::{BoxFuture, Handler};
use crate::response::{plain_text, Body, BoxError, IntoResponse, Response};
use crate::socket::WebSocket;
use crate::upgrade::WebSocketUpgrade;

/// A route's handler with the state still to be given.
pub(crate) type Endpoint<S> = Arc<dyn Fn(Request, S) -> BoxFuture<Response> + Send + Sync>;

pub(crate) fn endpoint<H, T, S>(handler: H) -> Endpoint<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Send + 'static,
{
    Arc::new(move |req, state| Box::pin(handler.clone().call(req, state)))
}

/// The state travels through tower layers inside the request.
#[derive(Clone)]
struct StateSlot<S>(S);

/// Wraps an endpoint in a tower layer; the state rides in the request's
/// extensions through the layer's service.
fn layered<S, L, B>(inner: Endpoint<S>, layer: &L) -> Endpoint<S>
where
    S: Clone + Send + Sync + 'static,
    L: Layer<Route>,
    L::Service: RouteService<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let route = Route(Arc::new(move |mut req: Request| {
        match req.extensions_mut().remove::<StateSlot<S>>() {
            Some(StateSlot(state)) => inner(req, state),
            None => Box::pin(async {
                tracing::error!("a layer dropped the request's extensions; cannot reach the state");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }),
        }
    }));
    let service = layer.layer(route);
    Arc::new(move |mut req: Request, state: S| {
        req.extensions_mut().insert(StateSlot(state));
        let service = service.clone();
        Box::pin(async move {
            match service.oneshot(req).await {
                Ok(res) => res.map(Body::new),
                Err(never) => match never {},
            }
        })
    })
}

/// What a tower layer must make of a [`Route`] to wrap routes: a service
/// that cannot fail (errors are responses), whose response body is any
/// [`Bytes`] body. Implemented for every such service.
pub trait RouteService<B>:
    Service<Request, Response = http::Response<B>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T, B> RouteService<B> for T where
    T: Service<Request, Response = http::Response<B>, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The service a tower layer wraps: one route, or the whole router.
#[derive(Clone)]
pub struct Route(Arc<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>);

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Route")
    }
}

impl Service<Request> for Route {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let fut = (self.0)(req);
        Box::pin(async move { Ok(fut.await) })
    }
}

/// Which methods an endpoint answers.
#[derive(Clone, PartialEq, Eq)]
enum Filter {
    Method(Method),
    Any,
}

/// The handlers of one path, by method.
///
/// Built with [`get`], [`post`], [`any`]... and chained:
/// `get(show).post(create)`.
pub struct MethodRouter<S = ()> {
    endpoints: Vec<(Filter, Endpoint<S>)>,
    /// The `405` answer, once a layer wraps it (else built directly).
    not_allowed: Option<Endpoint<S>>,
}

impl<S> Clone for MethodRouter<S> {
    fn clone(&self) -> Self {
        Self {
            endpoints: self.endpoints.clone(),
            not_allowed: self.not_allowed.clone(),
        }
    }
}

/// The methods a path answers, for the `Allow` header of a `405`.
#[derive(Clone)]
struct AllowList(String);

fn method_not_allowed(allow: &str) -> Response {
    let mut res = plain_text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    if let Ok(allow) = HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// The `405` answer as an endpoint, so that layers can wrap it.
fn not_allowed_endpoint<S>() -> Endpoint<S> {
    Arc::new(|req: Request, _| {
        let allow = req
            .extensions()
            .get::<AllowList>()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        Box::pin(async move { method_not_allowed(&allow) })
    })
}

/// The `404` answer as an endpoint, so that layers can wrap it.
fn not_found_endpoint<S>() -> Endpoint<S> {
    Arc::new(|_, _| Box::pin(async { plain_text(StatusCode::NOT_FOUND, "not found") }))
}

impl<S> fmt::Debug for MethodRouter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.allow()).finish()
    }
}

macro_rules! method_fns {
    ($($(#[$doc:meta])* $name:ident => $method:ident,)+) => {
        $(
            $(#[$doc])*
            pub fn $name<H, T, S>(handler: H) -> MethodRouter<S>
            where
                H: Handler<T, S>,
                T: 'static,
                S: Clone + Send + Sync + 'static,
            {
                MethodRouter::new().on(Method::$method, handler)
            }
        )+

        impl<S: Clone + Send + Sync + 'static> MethodRouter<S> {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name<H, T>(self, handler: H) -> Self
                where
                    H: Handler<T, S>,
                    T: 'static,
                {
                    self.on(Method::$method, handler)
                }
            )+
        }
    };
}

method_fns! {
    /// Routes `GET` (and `HEAD`, and HTTP/2 WebSocket `CONNECT`) to `handler`.
    get => GET,
    /// Routes `POST` to `handler`.
    post => POST,
    /// Routes `PUT` to `handler`.
    put => PUT,
    /// Routes `DELETE` to `handler`.
    delete => DELETE,
    /// Routes `PATCH` to `handler`.
    patch => PATCH,
    /// Routes `HEAD` to `handler`.
    head => HEAD,
    /// Routes `OPTIONS` to `handler`.
    options => OPTIONS,
}

/// Routes every method to `handler`.
pub fn any<H, T, S>(handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    MethodRouter::new().any(handler)
}

/// Routes `method` to `handler`.
pub fn on<H, T, S>(method: Method, handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    MethodRouter::new().on(method, handler)
}

impl<S: Clone + Send + Sync + 'static> MethodRouter<S> {
    fn new() -> Self {
        Self {
            endpoints: Vec::new(),
            not_allowed: None,
        }
    }

    /// Routes `method` to `handler`.
    ///
    /// # Panics
    ///
    /// When `method` already has a handler: a programmer error, caught at
    /// start-up.
    #[must_use]
    pub fn on<H, T>(self, method: Method, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Filter::Method(method), endpoint(handler))
    }

    /// Routes every method without a handler of its own to `handler`.
    ///
    /// # Panics
    ///
    /// When `any` was already set.
    #[must_use]
    pub fn any<H, T>(self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Filter::Any, endpoint(handler))
    }

    fn add(mut self, filter: Filter, endpoint: Endpoint<S>) -> Self {
        if self.endpoints.iter().any(|(f, _)| *f == filter) {
            let which = match &filter {
                Filter::Method(m) => m.as_str().to_owned(),
                Filter::Any => "any".to_owned(),
            };
            panic!("hyperws: {which} handler registered twice for the same route");
        }
        self.endpoints.push((filter, endpoint));
        self
    }

    fn merge(mut self, other: Self) -> Self {
        for (filter, endpoint) in other.endpoints {
            self = self.add(filter, endpoint);
        }
        self.not_allowed = self.not_allowed.or(other.not_allowed);
        self
    }

    /// Wraps every handler of this route, and its `405` answer, in a tower
    /// layer (a timeout, a concurrency limit...).
    #[must_use]
    pub fn layer<L, B>(self, layer: L) -> Self
    where
        L: Layer<Route>,
        L::Service: RouteService<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let not_allowed = self.not_allowed.unwrap_or_else(not_allowed_endpoint);
        Self {
            endpoints: self
                .endpoints
                .into_iter()
                .map(|(f, e)| (f, layered(e, &layer)))
                .collect(),
            not_allowed: Some(layered(not_allowed, &layer)),
        }
    }

    fn with_state<S2>(self, state: &S) -> MethodRouter<S2> {
        MethodRouter {
            endpoints: self
                .endpoints
                .into_iter()
                .map(|(f, e)| (f, bind_state(e, state.clone())))
                .collect(),
            not_allowed: self.not_allowed.map(|e| bind_state(e, state.clone())),
        }
    }

    fn map(self, f: impl Fn(Endpoint<S>) -> Endpoint<S>) -> Self {
        Self {
            endpoints: self.endpoints.into_iter().map(|(m, e)| (m, f(e))).collect(),
            not_allowed: self.not_allowed.map(&f),
        }
    }
}

impl<S> MethodRouter<S> {
    fn find(&self, method: &Method) -> Option<&Endpoint<S>> {
        let exact = |m: &Method| {
            self.endpoints
                .iter()
                .find(|(f, _)| *f == Filter::Method(m.clone()))
                .map(|(_, e)| e)
        };
        exact(method)
            .or_else(|| match *method {
                Method::HEAD => exact(&Method::GET),
                Method::CONNECT => exact(&Method::GET),
                _ => None,
            })
            .or_else(|| {
                self.endpoints
                    .iter()
                    .find(|(f, _)| *f == Filter::Any)
                    .map(|(_, e)| e)
            })
    }

    fn allow(&self) -> Vec<&str> {
        let mut allow: Vec<&str> = Vec::new();
        for (filter, _) in &self.endpoints {
            if let Filter::Method(m) = filter {
                allow.push(m.as_str());
                if *m == Method::GET && !allow.contains(&"HEAD") {
                    allow.push("HEAD");
                }
            }
        }
        allow
    }

    fn call(&self, req: Request, state: S) -> BoxFuture<Response> {
        if let Some(endpoint) = self.find(req.method()) {
            // Only an RFC 8441 CONNECT may borrow the GET handler.
            if req.method() != Method::CONNECT
                || is_websocket_connect(&req)
                || self.has(req.method())
            {
                return endpoint(req, state);
            }
        }
        let allow = self.allow().join(", ");
        match &self.not_allowed {
            Some(not_allowed) => {
                let mut req = req;
                req.extensions_mut().insert(AllowList(allow));
                not_allowed(req, state)
            }
            None => Box::pin(async move { method_not_allowed(&allow) }),
        }
    }

    fn has(&self, method: &Method) -> bool {
        self.endpoints
            .iter()
            .any(|(f, _)| *f == Filter::Method(method.clone()) || *f == Filter::Any)
    }
}

#[cfg(feature = "http2")]
fn is_websocket_connect(req: &Request) -> bool {
    req.extensions()
        .get::<hyper::ext::Protocol>()
        .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

#[cfg(not(feature = "http2"))]
fn is_websocket_connect(_: &Request) -> bool {
    false
}

fn bind_state<S: Clone + Send + Sync + 'static, S2>(
    endpoint: Endpoint<S>,
    state: S,
) -> Endpoint<S2> {
    Arc::new(move |req, _| endpoint(req, state.clone()))
}

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
    /// [`Hooks`](crate::hub::Hooks).
    #[must_use]
    pub fn hub(self, path: &str, hub: crate::hub::Hub, hooks: crate::hub::Hooks<S>) -> Self {
        let endpoint = crate::hub::hooks::hub_endpoint(hub, hooks);
        self.route(
            path,
            MethodRouter::new().add(Filter::Method(Method::GET), endpoint),
        )
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

/// Puts a router's WebSocket config and body limit into each request its
/// routes see.
fn with_settings<S: 'static>(
    endpoint: Endpoint<S>,
    config: Option<Config>,
    limit: Option<usize>,
) -> Endpoint<S> {
    if config.is_none() && limit.is_none() {
        return endpoint;
    }
    Arc::new(move |mut req: Request, state| {
        if let Some(config) = &config {
            req.extensions_mut().insert(config.clone());
        }
        if let Some(limit) = limit {
            req.extensions_mut().insert(BodyLimit(limit));
        }
        endpoint(req, state)
    })
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
