//! The plumbing under routes: an [`Endpoint`] (a handler with its state
//! still to be given), the [`Route`] service that tower layers wrap, and the
//! wrappers that bind a state or a router's settings to an endpoint.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use tower::{Layer, Service, ServiceExt};

use crate::config::Config;
use crate::extract::body::BodyLimit;
use crate::extract::Request;
use crate::handler::{BoxFuture, Handler};
use crate::response::{Body, BoxError, IntoResponse, Response};

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
pub(super) fn layered<S, L, B>(inner: Endpoint<S>, layer: &L) -> Endpoint<S>
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

pub(super) fn bind_state<S: Clone + Send + Sync + 'static, S2>(
    endpoint: Endpoint<S>,
    state: S,
) -> Endpoint<S2> {
    Arc::new(move |req, _| endpoint(req, state.clone()))
}

/// Puts a router's WebSocket config and body limit into each request its
/// routes see.
pub(super) fn with_settings<S: 'static>(
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
