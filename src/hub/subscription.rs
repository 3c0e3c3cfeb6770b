//! One-way hub members: a [`Subscription`] is a [`Stream`] of what the hub
//! sends to it, for a Server-Sent Events response (or any consumer that
//! pulls). It joins rooms and gets broadcasts like a WebSocket member,
//! through the same bounded queue and slow-consumer policy.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;

use super::outbox::{Outbox, Pulled, Queued};
use super::{Connection, ConnectionId, Hub, Position};
use crate::error::Error;
use crate::message::Message;
use crate::sse::Event;

/// A message the hub sent to a [`Subscription`].
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The message, as a WebSocket member would have received it.
    pub message: Message,
    /// Its position in its room's history, when it was
    /// [recorded](super::Target::record) on this process (live or
    /// replayed).
    pub position: Option<Position>,
}

impl Delivery {
    /// The message as an SSE event: its text as `data`, its position as
    /// `id` (so that an `EventSource` sends it back in `Last-Event-ID`).
    /// `None` for a binary message, which SSE cannot carry.
    #[must_use]
    pub fn to_event(&self) -> Option<Event> {
        let text = self.message.as_text()?;
        let event = Event::default().data(text);
        Some(match self.position {
            Some(position) => event.id(position.to_string()),
            None => event,
        })
    }
}

/// A hub member that pulls: a stream of the messages sent to it. Made by
/// [`Hub::subscribe`]; dropping it removes the member from the hub and its
/// rooms.
///
/// When its queue overflows under [`SlowConsumer::Close`](super::SlowConsumer::Close)
/// (the consumer reads too slowly: an SSE client that stopped reading), it
/// yields an error for which [`Error::is_slow_consumer`] is true, then
/// ends; as an SSE body, the error makes the server drop the connection,
/// as nothing more can be said to a peer that does not read. It also ends
/// after [`Hub::disconnect`].
pub struct Subscription {
    outbox: Arc<Outbox>,
    hub: Hub,
    id: ConnectionId,
    batch: VecDeque<Queued>,
    ended: bool,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Adds a member that pulls instead of a WebSocket: the [`Connection`]
    /// puts it in rooms and sends to it, the [`Subscription`] streams what
    /// it is sent (Server-Sent Events are the usual consumer):
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use futures_util::StreamExt;
    /// use hyperws::hub::Hub;
    /// use hyperws::sse::{KeepAlive, Sse};
    /// use hyperws::IntoResponse;
    ///
    /// async fn follow(hub: Hub, room: &str) -> impl IntoResponse {
    ///     let (conn, subscription) = hub.subscribe();
    ///     conn.join(room);
    ///     Sse::new(subscription.events()).keep_alive(KeepAlive::new())
    /// }
    /// ```
    pub fn subscribe(&self) -> (Connection, Subscription) {
        let id = ConnectionId::next(self.inner.node);
        let outbox = Arc::new(Outbox::new(
            self.inner.queue_capacity,
            self.inner.slow_consumer,
        ));
        self.inner.registry.insert(id, outbox.clone());
        let conn = Connection::new(id, self.clone(), outbox.clone());
        let subscription = Subscription {
            outbox,
            hub: self.clone(),
            id,
            batch: VecDeque::new(),
            ended: false,
        };
        (conn, subscription)
    }
}

impl Subscription {
    /// The member's id.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The text messages as SSE events ([`Delivery::to_event`]); binary
    /// messages are left out. Give it to [`Sse::new`](crate::sse::Sse::new).
    pub fn events(self) -> impl Stream<Item = Result<Event, Error>> + Send + 'static {
        futures_util::StreamExt::filter_map(self, |item| {
            std::future::ready(match item {
                Ok(delivery) => delivery.to_event().map(Ok),
                Err(err) => Some(Err(err)),
            })
        })
    }
}

impl Stream for Subscription {
    type Item = Result<Delivery, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(queued) = this.batch.pop_front() {
                return Poll::Ready(Some(Ok(Delivery {
                    message: queued.message,
                    position: queued.position,
                })));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.outbox.poll_pull(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Pulled::Batch(batch)) => this.batch = batch,
                Poll::Ready(Pulled::Overflow(code)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(Error::slow_consumer(code))));
                }
                Poll::Ready(Pulled::End) => this.ended = true,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.id);
        self.outbox.finish();
    }
}
