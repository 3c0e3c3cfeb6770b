//! The two halves of a split [`WebSocket`], and the waker they share.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::task::AtomicWaker;
use futures_util::{Sink, SinkExt, Stream, StreamExt};

use super::WebSocket;
use crate::error::Error;
use crate::message::{CloseFrame, Message, Utf8Bytes};

/// The wakers of a split socket's two halves, behind one waker that wakes
/// both. tungstenite keeps a single waker for write readiness, so whichever
/// half flushed last would take the other's wake-up: a writer waiting for a
/// full socket could then wait forever while its reader keeps reading. Each
/// half polls through this instead; a half's slot is emptied when its poll
/// completes, so only a half that is waiting gets woken.
#[derive(Debug, Default)]
pub(super) struct Halves {
    pub(super) reader: AtomicWaker,
    pub(super) writer: AtomicWaker,
}

impl Wake for Halves {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.reader.wake();
        self.writer.wake();
    }
}

/// What both halves know of the handshake and the peer.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) protocol: Option<Utf8Bytes>,
    pub(super) addr: Option<SocketAddr>,
}

/// The getters both halves share.
macro_rules! peer_getters {
    () => {
        /// The subprotocol chosen during the handshake, if any.
        #[must_use]
        pub fn protocol(&self) -> Option<&str> {
            self.peer.protocol.as_deref()
        }

        /// The peer's address, when known.
        #[must_use]
        pub fn peer_addr(&self) -> Option<SocketAddr> {
            self.peer.addr
        }
    };
}

/// The sending half of a [`WebSocket`], from [`WebSocket::split`].
///
/// Each [`send`](Self::send) flushes; to batch, [`feed`](SinkExt::feed)
/// several messages and [`flush`](Self::flush) once.
pub struct WebSocketSender {
    pub(super) inner: SplitSink<WebSocket, Message>,
    pub(super) peer: Peer,
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

    super::sending_helpers!();

    peer_getters!();

    /// Puts the two halves back together.
    ///
    /// # Errors
    ///
    /// Gives both halves back when they come from different sockets.
    pub fn reunite(self, receiver: WebSocketReceiver) -> Result<WebSocket, ReuniteError> {
        let (tx_peer, rx_peer) = (self.peer, receiver.peer);
        receiver.inner.reunite(self.inner).map_err(|err| {
            ReuniteError(Box::new((
                WebSocketSender {
                    inner: err.0,
                    peer: tx_peer,
                },
                WebSocketReceiver {
                    inner: err.1,
                    peer: rx_peer,
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
            .field("peer", &self.peer)
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
    pub(super) inner: SplitStream<WebSocket>,
    pub(super) peer: Peer,
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
        crate::json::recv(self).await
    }

    peer_getters!();
}

impl fmt::Debug for WebSocketReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketReceiver")
            .field("peer", &self.peer)
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
impl crate::json::Recv for WebSocketReceiver {
    fn recv_message(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<Message, Error>>> + Send {
        self.recv()
    }
}
