//! Server-Sent Events: a one-way stream of [`Event`]s as an HTTP response,
//! the WebSocket's sibling for push-only clients (`EventSource` in the
//! browser). Over HTTP/1.1 and HTTP/2 alike; under
//! [`serve`](crate::serve), the stream ends cleanly when the server shuts
//! down gracefully.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use futures_util::stream::{self, Stream};
//! use hyperws::sse::{Event, KeepAlive, Sse};
//!
//! async fn ticks() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
//!     let events = stream::iter(0..3).map(|n| Ok(Event::default().id(n.to_string()).data("tick")));
//!     Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
//! }
//! # use futures_util::StreamExt;
//! ```
//!
//! - `event.rs`: one event and its text on the wire;
//! - `served.rs`: what `serve` adds: the end at shutdown, and the drop of a
//!   connection whose client stopped reading.

mod event;
#[cfg(feature = "router")]
pub(crate) mod served;

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{header, HeaderName, HeaderValue};
use http_body::Frame;

pub use event::Event;

use crate::response::{Body, BoxError, IntoResponse, Response};

/// An SSE response from a stream of events. Sends `Content-Type:
/// text/event-stream`, `Cache-Control: no-cache` and `X-Accel-Buffering:
/// no` (so that nginx passes each event on at once), and, with
/// [`keep_alive`](Self::keep_alive), a comment whenever the stream has been
/// quiet for the interval (proxies close idle connections). The response
/// ends when the stream does; an item that is an error ends it too (the
/// client sees the connection close, and reconnects).
#[must_use]
pub struct Sse<S> {
    stream: S,
    keep_alive: Option<KeepAlive>,
}

impl<S> std::fmt::Debug for Sse<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sse")
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl<S, E> Sse<S>
where
    S: Stream<Item = Result<Event, E>> + Send + 'static,
    E: Into<BoxError>,
{
    /// A response that sends `stream`'s events.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            keep_alive: None,
        }
    }

    /// Sends a comment when nothing was sent for a while.
    pub fn keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        self.keep_alive = Some(keep_alive);
        self
    }
}

/// How an [`Sse`] stream keeps a quiet connection alive: a comment line
/// after `interval` without an event. Default: every 15 s, an empty
/// comment (`:`).
#[derive(Debug, Clone)]
#[must_use]
pub struct KeepAlive {
    interval: Duration,
    comment: Bytes,
}

impl Default for KeepAlive {
    fn default() -> Self {
        Self::new()
    }
}

impl KeepAlive {
    /// Every 15 s, an empty comment.
    pub fn new() -> Self {
        Self {
            interval: Duration::from_secs(15),
            comment: Bytes::from_static(b":\n\n"),
        }
    }

    /// How long the stream may be quiet before a comment goes out (at
    /// least 1 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The comment's text.
    pub fn text(mut self, text: &str) -> Self {
        self.comment = Event::default().comment(text).encode();
        self
    }
}

/// The `Content-Type` of an SSE response: `serve` watches for it, to end
/// such responses at shutdown.
pub(crate) const CONTENT_TYPE: &str = "text/event-stream";

impl<S, E> IntoResponse for Sse<S>
where
    S: Stream<Item = Result<Event, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn into_response(self) -> Response {
        let body = SseBody {
            stream: Box::pin(self.stream.map(|item| item.map_err(Into::into))),
            keep_alive: self.keep_alive.map(|keep_alive| Quiet {
                sleep: Box::pin(tokio::time::sleep(keep_alive.interval)),
                keep_alive,
            }),
        };
        let mut res = Response::new(Body::new(body));
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        res
    }
}

/// A boxed stream of events.
type Events = Pin<Box<dyn Stream<Item = Result<Event, BoxError>> + Send>>;

struct SseBody {
    stream: Events,
    keep_alive: Option<Quiet>,
}

/// The keep-alive timer: how long the stream has been quiet.
struct Quiet {
    keep_alive: KeepAlive,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Quiet {
    /// Something went out: the quiet interval starts again.
    fn rearm(&mut self) {
        let next = tokio::time::Instant::now() + self.keep_alive.interval;
        self.sleep.as_mut().reset(next);
    }
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => {
                if let Some(quiet) = &mut this.keep_alive {
                    quiet.rearm();
                }
                Poll::Ready(Some(Ok(Frame::data(event.encode()))))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let Some(quiet) = &mut this.keep_alive else {
                    return Poll::Pending;
                };
                ready!(quiet.sleep.as_mut().poll(cx));
                quiet.rearm();
                Poll::Ready(Some(Ok(Frame::data(quiet.keep_alive.comment.clone()))))
            }
        }
    }
}

/// Whether a response is an event stream (which `serve` ends at shutdown).
#[cfg(feature = "router")]
pub(crate) fn is_event_stream(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with(CONTENT_TYPE))
}
