//! [`WebSocket`]: an upgraded connection, a `Stream` of incoming and a `Sink`
//! of outgoing [`Message`]s, and its [`split`](WebSocket::split) halves.
//!
//! This file holds the public type and its API; `engine.rs` the machinery
//! under it (dormancy, batching, keepalive, shutdown, failing a connection);
//! `split.rs` the two halves and the waker they share.

mod engine;
mod split;
mod state;
#[cfg(test)]
mod tests;

/// The sending conveniences of [`WebSocket`] and [`WebSocketSender`],
/// written once over their `send` and their `Sink`.
macro_rules! sending_helpers {
    () => {
        /// Sends a text message.
        ///
        /// # Errors
        ///
        /// As for [`WebSocket::send`].
        pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
            self.send(Message::Text(text.into())).await
        }

        /// Sends a binary message.
        ///
        /// # Errors
        ///
        /// As for [`WebSocket::send`].
        pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
            self.send(Message::Binary(data.into())).await
        }

        /// Serializes a value as JSON and sends it as a text message.
        ///
        /// # Errors
        ///
        /// When the value cannot be serialized, or as for [`WebSocket::send`].
        #[cfg(feature = "json")]
        pub async fn send_json<T: serde::Serialize + ?Sized>(
            &mut self,
            value: &T,
        ) -> Result<(), Error> {
            self.send(crate::json::to_message(value)?).await
        }

        /// Writes out every queued message.
        ///
        /// # Errors
        ///
        /// When the socket fails or the connection is closed.
        pub async fn flush(&mut self) -> Result<(), Error> {
            SinkExt::flush(self).await
        }

        /// Starts the close handshake: sends a close frame with this code and
        /// reason, after every message queued before it.
        ///
        /// Messages the peer sent before it saw the close frame can still be
        /// read (with [`WebSocket::recv`], or the receiving half), which ends
        /// after the peer's reply. Dropping the socket instead lets a
        /// background task wait for the reply (bounded in time) so that the
        /// TCP connection ends cleanly.
        ///
        /// # Errors
        ///
        /// When the socket fails or the connection was already closed.
        pub async fn close(
            &mut self,
            code: u16,
            reason: impl Into<Utf8Bytes>,
        ) -> Result<(), Error> {
            let frame = CloseFrame::new(code, reason);
            SinkExt::send(self, Message::Close(Some(frame))).await
        }
    };
}
use sending_helpers;

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::Error;
use crate::keepalive::Keepalive;
use crate::lifecycle::{Shutdown, Waiter};
use crate::message::{CloseFrame, Message, Utf8Bytes};
use crate::transport::Transport;
use split::Halves;
pub use split::{ReuniteError, WebSocketReceiver, WebSocketSender};
use state::State;

/// An established WebSocket connection.
///
/// Read with [`recv`](Self::recv) (or as a [`Stream`]) and write with
/// [`send`](Self::send) (or as a [`Sink`]). Pings are answered for you and
/// a close frame from the peer is acknowledged for you; the stream then
/// ends.
///
/// # Batching, and the latency guarantee
///
/// [`send`](Self::send) writes the message and flushes it to the socket,
/// unless it is smaller than
/// [`Config::write_buffer_size`](crate::Config::write_buffer_size) and
/// another incoming message is already waiting to be read: then its bytes
/// are held back for a moment, so that the replies to a burst of requests
/// leave in one write. They are written by the next `recv` that finds
/// nothing to read (or the next `send` that does not defer,
/// [`flush`](Self::flush) or [`close`](Self::close)), and **at the latest
/// when the session's task next yields**, whatever it awaits: a database
/// call, a timer, a channel. A handler that answers one request and then
/// spends seconds on the next does not delay the first answer: the peer
/// has it within the time the runtime takes to switch tasks. (Only a
/// session that blocks its thread without awaiting can hold it up, as it
/// holds up every other task on that thread.)
///
/// Deferring needs the plain TCP socket under the connection; over TLS or
/// HTTP/2 every `send` flushes.
///
/// # Failures
///
/// When the peer breaks the protocol the connection is closed with the code
/// RFC 6455 asks for (1002 protocol error, 1007 invalid UTF-8, 1009 message
/// too big) and `recv` returns the error once; the stream then ends.
pub struct WebSocket {
    /// Who holds the connection (see `state.rs`).
    state: State,
    /// Its span, counters and close codes.
    telemetry: crate::telemetry::SocketTelemetry,
    config: WebSocketConfig,
    /// The most unwritten output before the connection stops taking more.
    write_limit: usize,
    protocol: Option<Utf8Bytes>,
    peer_addr: Option<SocketAddr>,
    /// permessage-deflate, as negotiated.
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateParams>,
    /// Shared mode: messages compressed here, once for every connection.
    #[cfg(feature = "deflate")]
    prepare: Option<crate::deflate::Prepare>,
    /// What `send` read ahead to decide whether to flush, for the next
    /// `recv`.
    peeked: Option<Peeked>,
    /// Resolves when the server shuts down gracefully.
    shutdown: Option<Waiter>,
    /// The server's shutdown signal and task tracker, for a hub writer to
    /// take over.
    shutdown_handle: Option<Shutdown>,
    /// Pings a quiet peer; `None` when keepalive is off.
    keepalive: Option<Keepalive>,
    /// Keepalive gave up on the peer while sending; the reader is told.
    timed_out: bool,
    /// Items tungstenite has yielded (see `State::drained`), wrapping.
    yielded: u64,
    /// After `split`: the two halves' wakers, and the waker that wakes
    /// them (see [`Halves`]).
    halves: Option<(Arc<Halves>, Waker)>,
}

/// An item read ahead of the session's `recv`.
enum Peeked {
    Item(Result<Message, Error>),
    /// The stream ended.
    End,
}

impl WebSocket {
    /// The WebSocket's `tracing` span: `websocket`, with `peer`, `path`,
    /// `protocol` and, once it joins a hub, `id`.
    pub(crate) fn span(&self) -> &tracing::Span {
        self.telemetry.span()
    }

    /// Receives the next message, or `None` once the connection is closed.
    ///
    /// Cancel safe: dropping the future loses no message.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.next().await
    }

    /// Sends a message (see [Batching](Self#batching) for when it is flushed).
    ///
    /// Cancel safe once polled: a message that was accepted is sent even if
    /// the future is dropped before it completes.
    ///
    /// # Errors
    ///
    /// When the connection is closed or the socket fails, or when the write
    /// buffer is over its limit because the peer does not read.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        let msg = msg.into();
        // Only messages that fit the gather buffer are worth batching; a
        // larger one is written out at once anyway.
        let batch = msg.len() < self.config.write_buffer_size;
        poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        Pin::new(&mut *self).start_send(msg)?;
        if batch {
            poll_fn(|cx| self.poll_flush_batched(cx)).await
        } else {
            SinkExt::flush(self).await
        }
    }

    /// Receives the next text or binary message and parses it as JSON.
    ///
    /// Pings and pongs are skipped. Returns `None` once the connection is
    /// closed. A message that is not valid JSON for `T` is an error for
    /// which [`Error::is_json`] is true; the connection stays open.
    #[cfg(feature = "json")]
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        crate::json::recv(self).await
    }

    sending_helpers!();

    /// The subprotocol chosen during the handshake, if any.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The permessage-deflate parameters agreed in the handshake; `None`
    /// when the connection is not compressed.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn deflate(&self) -> Option<crate::deflate::DeflateParams> {
        self.deflate
    }

    /// The peer's address, when known: taken from a `SocketAddr` in the
    /// request's extensions, or from the TCP connection itself.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        // Asked of the socket only when needed: most sessions never do.
        self.peer_addr
            .or_else(|| self.state.transport().and_then(Transport::peer_addr))
    }

    /// Splits the socket into a sender and a receiver that can live in
    /// different tasks. [`WebSocketSender::reunite`] puts them back together.
    ///
    /// ```no_run
    /// # async fn run(socket: hyperws::WebSocket) {
    /// let (mut tx, mut rx) = socket.split();
    /// tokio::spawn(async move {
    ///     let _ = tx.send_text("hello").await;
    /// });
    /// while let Some(Ok(msg)) = rx.recv().await {
    ///     println!("{msg:?}");
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn split(mut self) -> (WebSocketSender, WebSocketReceiver) {
        let halves = Arc::new(Halves::default());
        self.halves = Some((halves.clone(), Waker::from(halves)));
        let peer = split::Peer {
            protocol: self.protocol.clone(),
            addr: self.peer_addr(),
        };
        let (sink, stream) = StreamExt::split(self);
        (
            WebSocketSender {
                inner: sink,
                peer: peer.clone(),
            },
            WebSocketReceiver {
                inner: stream,
                peer,
            },
        )
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Each message spends a unit of tokio's cooperative budget: a burst
        // of frames already buffered is handled in slices, and the tasks it
        // wakes (a hub's writers above all) run in between.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let item = self
            .get_mut()
            .poll_half(cx, false, |this, cx| match this.peeked.take() {
                Some(Peeked::Item(item)) => Poll::Ready(Some(item)),
                Some(Peeked::End) => Poll::Ready(None),
                None => this.poll_read(cx),
            });
        if item.is_ready() {
            coop.made_progress();
        }
        item
    }
}

impl Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_half(cx, true, Self::poll_ready_inner)
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        let this = &mut *self;
        if matches!(msg, Message::Close(_)) {
            this.state.close(&this.config);
            // Let the peer's reply arrive before the socket is dropped.
            if let Some(transport) = this.state.transport_mut() {
                transport.linger_on_drop();
            }
        }
        // A send wakes a dormant connection; the message counts once
        // tungstenite holds it.
        this.state.stream(&this.config)?;
        this.state.note_moved(msg.len());
        this.telemetry.sending(&msg);
        #[cfg(feature = "deflate")]
        let prepared = this.prepare.as_ref().and_then(|p| p.frame(&msg));
        #[cfg(feature = "deflate")]
        if let Some(frame) = prepared {
            if this.may_send_direct(frame.payload().len()) {
                // Compressed once for every receiver: FIN, RSV1, opcode.
                let b0 = 0xc0 | u8::from(frame.header().opcode);
                this.send_direct(b0, frame.into_payload());
                return Ok(());
            }
            let stream = this.state.stream_if_awake().ok_or_else(Error::closed)?;
            return Pin::new(stream)
                .start_send(tokio_tungstenite::tungstenite::Message::Frame(frame))
                .map_err(Error::from_tungstenite);
        }
        let direct = match &msg {
            Message::Text(text) => Some((0x81, text.as_bytes())),
            Message::Binary(data) => Some((0x82, data.clone())),
            _ => None,
        };
        if let Some((b0, payload)) = direct {
            if this.may_send_direct(payload.len()) {
                this.send_direct(b0, payload);
                return Ok(());
            }
        }
        let stream = this.state.stream_if_awake().ok_or_else(Error::closed)?;
        Pin::new(stream)
            .start_send(msg.into_tungstenite())
            .map_err(Error::from_tungstenite)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_half(cx, true, Self::poll_flush_inner)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_half(cx, true, Self::poll_close_inner)
    }
}

#[cfg(feature = "json")]
impl crate::json::Recv for WebSocket {
    fn recv_message(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<Message, Error>>> + Send {
        self.recv()
    }
}
