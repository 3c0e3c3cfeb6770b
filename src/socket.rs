//! [`WebSocket`]: an upgraded connection, a `Stream` of incoming and a `Sink`
//! of outgoing [`Message`]s, and its [`split`](WebSocket::split) halves.

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::WebSocketStream;

use crate::message::{CloseFrame, Message, Utf8Bytes};
use crate::transport::Transport;
use crate::Error;

/// An established WebSocket connection.
///
/// Read with [`recv`](Self::recv) (or as a [`Stream`]) and write with
/// [`send`](Self::send) (or as a [`Sink`]). Pings are answered for you and
/// a close frame from the peer is acknowledged for you; the stream then
/// ends.
///
/// # Batching
///
/// [`send`](Self::send) writes the message and flushes it to the socket,
/// unless another incoming message is already waiting to be read: then the
/// flush is left to the next `recv` that finds nothing to read (or the next
/// `send`, [`flush`](Self::flush) or [`close`](Self::close)). A loop that
/// answers each message therefore sends its answers to a burst of requests
/// in one write, and the peer still gets every answer without delay once
/// the burst is handled.
///
/// # Failures
///
/// When the peer breaks the protocol the connection is closed with the code
/// RFC 6455 asks for (1002 protocol error, 1007 invalid UTF-8, 1009 message
/// too big) and `recv` returns the error once; the stream then ends.
pub struct WebSocket {
    inner: WebSocketStream<Transport>,
    protocol: Option<Utf8Bytes>,
    peer_addr: Option<SocketAddr>,
    /// A message read ahead by `send` to decide whether to flush.
    peeked: Option<Option<Result<Message, Error>>>,
    /// Messages were written since the last flush.
    unflushed: bool,
}

impl WebSocket {
    pub(crate) fn new(
        inner: WebSocketStream<Transport>,
        protocol: Option<Utf8Bytes>,
        peer_addr: Option<SocketAddr>,
    ) -> Self {
        let peer_addr = peer_addr.or_else(|| inner.get_ref().peer_addr());
        Self {
            inner,
            protocol,
            peer_addr,
            peeked: None,
            unflushed: false,
        }
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
        poll_fn(|cx| Pin::new(&mut *self).poll_ready(cx)).await?;
        Pin::new(&mut *self).start_send(msg.into())?;
        poll_fn(|cx| self.poll_flush_unless_busy(cx)).await
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into())).await
    }

    /// Serializes a value as JSON and sends it as a text message.
    ///
    /// # Errors
    ///
    /// When the value cannot be serialized, or as for [`send`](Self::send).
    #[cfg(feature = "json")]
    pub async fn send_json<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), Error> {
        self.send(json::to_message(value)?).await
    }

    /// Receives the next text or binary message and parses it as JSON.
    ///
    /// Pings and pongs are skipped. Returns `None` once the connection is
    /// closed. A message that is not valid JSON for `T` is an error for
    /// which [`Error::is_json`] is true; the connection stays open.
    #[cfg(feature = "json")]
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        json::recv(self).await
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
    /// read with [`recv`](Self::recv), which ends after the peer's reply.
    /// Dropping the socket instead lets a background task wait for the reply
    /// (bounded in time) so that the TCP connection ends cleanly.
    ///
    /// # Errors
    ///
    /// When the socket fails or the connection was already closed.
    pub async fn close(&mut self, code: u16, reason: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.inner.get_mut().linger_on_drop();
        let frame = CloseFrame::new(code, reason);
        SinkExt::send(self, Message::Close(Some(frame))).await
    }

    /// The subprotocol chosen during the handshake, if any.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The peer's address, when known: taken from a `SocketAddr` in the
    /// request's extensions, or from the TCP connection itself.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
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
    pub fn split(self) -> (WebSocketSender, WebSocketReceiver) {
        let protocol = self.protocol.clone();
        let peer_addr = self.peer_addr;
        let (sink, stream) = StreamExt::split(self);
        (
            WebSocketSender {
                inner: sink,
                protocol: protocol.clone(),
                peer_addr,
            },
            WebSocketReceiver {
                inner: stream,
                protocol,
                peer_addr,
            },
        )
    }

    /// Reads one message from tungstenite, answering a peer's protocol
    /// fault with the right close frame, and flushing pending writes when
    /// there is nothing to read.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let item = match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Pending => {
                if self.unflushed {
                    if let Poll::Ready(Err(err)) = Pin::new(&mut *self).poll_flush(cx) {
                        return Poll::Ready(Some(Err(err)));
                    }
                }
                return Poll::Pending;
            }
            Poll::Ready(item) => item,
        };
        Poll::Ready(item.map(|res| match res {
            Ok(msg) => Ok(Message::from_tungstenite(msg)),
            Err(err) => {
                let err = Error::from_tungstenite(err);
                if let Some(code) = err.close_code() {
                    self.fail(cx, code, &err);
                }
                Err(err)
            }
        }))
    }

    /// Tells the peer why the connection is being failed. One attempt: a
    /// peer that broke the protocol and does not read gets no more time.
    fn fail(&mut self, cx: &mut Context<'_>, code: u16, err: &Error) {
        tracing::debug!(%err, code, "failing WebSocket connection");
        let reason = match code {
            crate::close_code::INVALID => "invalid UTF-8 in text message",
            crate::close_code::SIZE => "message too big",
            _ => "protocol error",
        };
        let frame = Some(CloseFrame::new(code, reason).into_tungstenite());
        let inner = Pin::new(&mut self.inner);
        if let Poll::Ready(Ok(())) = inner.poll_ready(cx) {
            let mut inner = Pin::new(&mut self.inner);
            let msg = tokio_tungstenite::tungstenite::Message::Close(frame);
            if inner.as_mut().start_send(msg).is_ok() {
                let _ = inner.poll_flush(cx);
            }
        }
        self.inner.get_mut().linger_on_drop();
    }

    /// Flushes, unless an incoming message is already waiting (then the
    /// next `recv` that would wait flushes instead).
    fn poll_flush_unless_busy(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.peeked.is_none() {
            if let Poll::Ready(item) = self.poll_read(cx) {
                self.peeked = Some(item);
            }
        }
        if matches!(self.peeked, Some(Some(Ok(_)))) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut *self).poll_flush(cx)
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
        let this = self.get_mut();
        match this.peeked.take() {
            Some(item) => Poll::Ready(item),
            None => this.poll_read(cx),
        }
    }
}

impl Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner)
            .poll_ready(cx)
            .map_err(Error::from_tungstenite)
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        self.unflushed = true;
        Pin::new(&mut self.inner)
            .start_send(msg.into_tungstenite())
            .map_err(Error::from_tungstenite)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let res = std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx));
        self.unflushed = false;
        Poll::Ready(res.map_err(Error::from_tungstenite))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.get_mut().linger_on_drop();
        Pin::new(&mut self.inner)
            .poll_close(cx)
            .map_err(Error::from_tungstenite)
    }
}

/// The sending half of a [`WebSocket`], from [`WebSocket::split`].
///
/// Each [`send`](Self::send) flushes; to batch, [`feed`](SinkExt::feed)
/// several messages and [`flush`](Self::flush) once.
pub struct WebSocketSender {
    inner: SplitSink<WebSocket, Message>,
    protocol: Option<Utf8Bytes>,
    peer_addr: Option<SocketAddr>,
}

impl WebSocketSender {
    /// Sends a message and flushes it.
    ///
    /// # Errors
    ///
    /// As for [`WebSocket::send`].
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        SinkExt::send(&mut self.inner, msg.into()).await
    }

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
    /// As for [`WebSocket::send_json`].
    #[cfg(feature = "json")]
    pub async fn send_json<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), Error> {
        self.send(json::to_message(value)?).await
    }

    /// Writes out every queued message.
    ///
    /// # Errors
    ///
    /// When the socket fails or the connection is closed.
    pub async fn flush(&mut self) -> Result<(), Error> {
        SinkExt::flush(&mut self.inner).await
    }

    /// Starts the close handshake; see [`WebSocket::close`].
    ///
    /// # Errors
    ///
    /// When the socket fails or the connection was already closed.
    pub async fn close(&mut self, code: u16, reason: impl Into<Utf8Bytes>) -> Result<(), Error> {
        let frame = CloseFrame::new(code, reason);
        self.send(Message::Close(Some(frame))).await
    }

    /// The subprotocol chosen during the handshake, if any.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The peer's address, when known.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// Puts the two halves back together.
    ///
    /// # Errors
    ///
    /// Gives both halves back when they come from different sockets.
    pub fn reunite(self, receiver: WebSocketReceiver) -> Result<WebSocket, ReuniteError> {
        let WebSocketSender {
            inner,
            protocol,
            peer_addr,
        } = self;
        let WebSocketReceiver {
            inner: stream,
            protocol: rx_protocol,
            peer_addr: rx_peer,
        } = receiver;
        stream.reunite(inner).map_err(|err| {
            ReuniteError(Box::new((
                WebSocketSender {
                    inner: err.0,
                    protocol,
                    peer_addr,
                },
                WebSocketReceiver {
                    inner: err.1,
                    protocol: rx_protocol,
                    peer_addr: rx_peer,
                },
            )))
        })
    }
}

/// The halves given to [`WebSocketSender::reunite`] came from different
/// sockets; they are handed back.
pub struct ReuniteError(Box<(WebSocketSender, WebSocketReceiver)>);

impl ReuniteError {
    /// The two halves, unchanged.
    #[must_use]
    pub fn into_parts(self) -> (WebSocketSender, WebSocketReceiver) {
        *self.0
    }
}

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReuniteError").finish_non_exhaustive()
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sender and receiver come from different WebSockets")
    }
}

impl std::error::Error for ReuniteError {}

impl fmt::Debug for WebSocketSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketSender")
            .field("protocol", &self.protocol)
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

impl Sink<Message> for WebSocketSender {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        Pin::new(&mut self.inner).start_send(msg)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::split`].
pub struct WebSocketReceiver {
    inner: SplitStream<WebSocket>,
    protocol: Option<Utf8Bytes>,
    peer_addr: Option<SocketAddr>,
}

impl WebSocketReceiver {
    /// Receives the next message, or `None` once the connection is closed.
    /// Cancel safe.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.inner.next().await
    }

    /// Receives the next data message and parses it as JSON; see
    /// [`WebSocket::recv_json`].
    #[cfg(feature = "json")]
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        json::recv(&mut self.inner).await
    }

    /// The subprotocol chosen during the handshake, if any.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The peer's address, when known.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }
}

impl fmt::Debug for WebSocketReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketReceiver")
            .field("protocol", &self.protocol)
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

impl Stream for WebSocketReceiver {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(feature = "json")]
mod json {
    use futures_util::{Stream, StreamExt};

    use crate::{Error, Message};

    pub(super) fn to_message<T: serde::Serialize + ?Sized>(value: &T) -> Result<Message, Error> {
        let text = serde_json::to_string(value).map_err(Error::json)?;
        Ok(Message::text(text))
    }

    pub(super) async fn recv<S, T>(stream: &mut S) -> Option<Result<T, Error>>
    where
        S: Stream<Item = Result<Message, Error>> + Unpin,
        T: serde::de::DeserializeOwned,
    {
        loop {
            let parsed = match stream.next().await? {
                Ok(Message::Text(text)) => serde_json::from_str(&text),
                Ok(Message::Binary(data)) => serde_json::from_slice(&data),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => return None,
                Err(err) => return Some(Err(err)),
            };
            return Some(parsed.map_err(Error::json));
        }
    }
}
