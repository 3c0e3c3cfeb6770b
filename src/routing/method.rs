//! [`MethodRouter`]: the handlers of one path, by method, and the `405`
//! answer with its `Allow` header.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use tower::Layer;

use super::route::{bind_state, endpoint, layered, Endpoint, Route, RouteService};
use crate::extract::Request;
use crate::handler::{BoxFuture, Handler};
use crate::response::{plain_text, BoxError, Response};

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
pub(super) fn not_found_endpoint<S>() -> Endpoint<S> {
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
    pub(super) fn new() -> Self {
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

    /// A path answering `method` with an endpoint built elsewhere (a hub
    /// route's).
    pub(super) fn from_endpoint(method: Method, endpoint: Endpoint<S>) -> Self {
        Self::new().add(Filter::Method(method), endpoint)
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

    pub(super) fn merge(mut self, other: Self) -> Self {
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

    pub(super) fn with_state<S2>(self, state: &S) -> MethodRouter<S2> {
        MethodRouter {
            endpoints: self
                .endpoints
                .into_iter()
                .map(|(f, e)| (f, bind_state(e, state.clone())))
                .collect(),
            not_allowed: self.not_allowed.map(|e| bind_state(e, state.clone())),
        }
    }

    pub(super) fn map(self, f: impl Fn(Endpoint<S>) -> Endpoint<S>) -> Self {
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

    pub(super) fn call(&self, req: Request, state: S) -> BoxFuture<Response> {
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
