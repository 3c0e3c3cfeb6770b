//! Hooks: handler functions that run when a hub connection opens, sends a
//! message, and closes. They take extractors like any route handler
//! (`State`, `Path`, `Query`, `HeaderMap`, `ConnectInfo`... read from the
//! upgrade request), plus [`Connection`], [`Message`] and [`Closed`].
//!
//! ```
//! use hyperws::extract::{Path, State};
//! use hyperws::hub::{Connection, Hub};
//! use hyperws::routing::{Closed, Hooks, Refuse};
//! use hyperws::{Message, Router};
//!
//! #[derive(Clone)]
//! struct App { hub: Hub }
//!
//! async fn connect(conn: Connection, Path(room): Path<String>) -> Result<(), Refuse> {
//!     if room == "closed" {
//!         return Err(Refuse::new(4003, "this room is closed"));
//!     }
//!     conn.join(&room);
//!     conn.send(Message::text(format!("welcome to {room}")));
//!     Ok(())
//! }
//!
//! async fn message(conn: Connection, msg: Message, State(app): State<App>, Path(room): Path<String>) {
//!     app.hub.to(&room).except(conn.id()).send(msg);
//! }
//!
//! async fn close(conn: Connection, Closed(frame): Closed) {
//!     tracing::info!(id = %conn.id(), ?frame, "left");
//! }
//!
//! let hub = Hub::new();
//! let app: Router = Router::new()
//!     .hub("/rooms/{room}", hub.clone(), Hooks::new().on_connect(connect).on_message(message).on_close(close))
//!     .with_state(App { hub });
//! ```

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::StatusCode;

use super::route::{endpoint, Endpoint};
use crate::error::Error;
use crate::extract::rejection::MissingExtension;
use crate::extract::{FromRequestParts, Request};
use crate::handler::Handler;
use crate::hub::{Connection, Hub};
use crate::message::close_code;
use crate::message::CloseFrame;
use crate::message::Message;
use crate::response::{Body, IntoResponse, Response};
use crate::socket::WebSocket;

/// The handlers of a hub route; see [`Router::hub`](crate::Router::hub).
pub struct Hooks<S = ()> {
    connect: Option<Endpoint<S>>,
    message: Option<Endpoint<S>>,
    close: Option<Endpoint<S>>,
}

impl<S> Clone for Hooks<S> {
    fn clone(&self) -> Self {
        Self {
            connect: self.connect.clone(),
            message: self.message.clone(),
            close: self.close.clone(),
        }
    }
}

impl<S> fmt::Debug for Hooks<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_connect", &self.connect.is_some())
            .field("on_message", &self.message.is_some())
            .field("on_close", &self.close.is_some())
            .finish()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Hooks<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Hooks<S> {
    /// No hooks: connections join the hub and nothing else happens.
    #[must_use]
    pub fn new() -> Self {
        Self {
            connect: None,
            message: None,
            close: None,
        }
    }

    /// Runs when a connection has joined the hub, before any of its
    /// messages. Returning [`Refuse`] (or any response that is not a
    /// success) closes the connection; `on_close` then does not run.
    #[must_use]
    pub fn on_connect<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.connect = Some(endpoint(handler));
        self
    }

    /// Runs for each text or binary message, one at a time, in order.
    #[must_use]
    pub fn on_message<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.message = Some(endpoint(handler));
        self
    }

    /// Runs once when the connection is over, after it left the hub, with
    /// the close code and reason in [`Closed`].
    #[must_use]
    pub fn on_close<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.close = Some(endpoint(handler));
        self
    }
}

/// How an `on_connect` hook turns a connection away: the close code and
/// reason the peer receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse(CloseFrame);

impl Refuse {
    /// Refuses with this close code (4000-4999 for your own) and reason.
    pub fn new(code: u16, reason: impl Into<crate::message::Utf8Bytes>) -> Self {
        Self(CloseFrame::new(code, reason))
    }
}

impl IntoResponse for Refuse {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::FORBIDDEN;
        res.extensions_mut().insert(self.0);
        res
    }
}

/// How a hub connection ended, for `on_close`: the peer's close frame, or
/// one standing for what happened (1006 connection lost, 1011 keepalive
/// timeout, 1008 slow consumer, 1002/1007/1009 protocol faults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed(pub Option<CloseFrame>);

impl Closed {
    fn from_error(err: &Error) -> Self {
        let frame = err
            .close_frame()
            .unwrap_or_else(|| CloseFrame::new(close_code::ABNORMAL, "connection lost"));
        Self(Some(frame))
    }
}

macro_rules! from_extension {
    ($($ty:ty),+) => {$(
        impl<S: Sync> FromRequestParts<S> for $ty {
            type Rejection = MissingExtension;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MissingExtension> {
                parts
                    .extensions
                    .get::<$ty>()
                    .cloned()
                    .ok_or(MissingExtension(stringify!($ty)))
            }
        }
    )+};
}

from_extension!(Connection, Message, Closed);

/// The endpoint of a hub route: validates the upgrade and runs the hooks.
pub(crate) fn hub_endpoint<S: Clone + Send + Sync + 'static>(
    hub: Hub,
    hooks: Hooks<S>,
) -> Endpoint<S> {
    let hooks = Arc::new(hooks);
    Arc::new(move |req: Request, state: S| {
        let (mut parts, _) = req.into_parts();
        let (hub, hooks) = (hub.clone(), hooks.clone());
        Box::pin(async move {
            match crate::upgrade::WebSocketUpgrade::from_parts(&mut parts) {
                Ok(ws) => ws.on_upgrade(move |socket| run(socket, hub, hooks, parts, state)),
                Err(rejection) => rejection.into_response(),
            }
        })
    })
}

/// The request a hook sees: the upgrade request's head, plus the hook's own
/// values.
fn hook_request(
    parts: &Parts,
    conn: &Connection,
    add: impl FnOnce(&mut http::Extensions),
) -> Request {
    let mut req = Request::from_parts(parts.clone(), Body::empty());
    req.extensions_mut().insert(conn.clone());
    add(req.extensions_mut());
    req
}

async fn run<S: Clone>(socket: WebSocket, hub: Hub, hooks: Arc<Hooks<S>>, parts: Parts, state: S) {
    let (conn, mut inbox) = hub.connect(socket);
    if let Some(on_connect) = &hooks.connect {
        let res = on_connect(hook_request(&parts, &conn, |_| {}), state.clone()).await;
        let refusal = match res.extensions().get::<CloseFrame>() {
            Some(frame) => Some(frame.clone()),
            None if !res.status().is_success() => {
                Some(CloseFrame::new(close_code::POLICY, "refused"))
            }
            None => None,
        };
        if let Some(frame) = refusal {
            conn.send(Message::Close(Some(frame)));
            // Dropping `inbox` lets the writer send the close, and leaves.
            return;
        }
    }
    let closed = loop {
        match inbox.recv().await {
            Some(Ok(Message::Close(frame))) => break Closed(frame),
            Some(Ok(msg)) if msg.is_data() => {
                if let Some(on_message) = &hooks.message {
                    let req = hook_request(&parts, &conn, |ext| {
                        ext.insert(msg);
                    });
                    on_message(req, state.clone()).await;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => break Closed::from_error(&err),
            None => break Closed::from_error(&Error::closed()),
        }
    };
    drop(inbox);
    if let Some(on_close) = &hooks.close {
        let req = hook_request(&parts, &conn, |ext| {
            ext.insert(closed);
        });
        on_close(req, state).await;
    }
}
