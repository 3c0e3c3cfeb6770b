//! [`WebSocket`]: an upgraded connection, a `Stream` of incoming and a `Sink`
//! of outgoing [`Message`]s, and its [`split`](WebSocket::split) halves.

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use std::future::Future;

use futures_util::task::AtomicWaker;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::keepalive::{Due, Keepalive};
use crate::message::{CloseFrame, Message, Utf8Bytes};
use crate::sessions::Shutdown;
use crate::transport::Transport;
use crate::Error;

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
    inner: Inner,
    config: WebSocketConfig,
    /// The most unwritten output before the connection stops taking more.
    write_limit: usize,
    protocol: Option<Utf8Bytes>,
    peer_addr: Option<SocketAddr>,
    /// A message read ahead by `send` to decide whether to flush.
    peeked: Option<Option<Result<Message, Error>>>,
    /// A close frame was sent or received, or the connection failed: the
    /// connection stays with tungstenite until it ends.
    closing: bool,
    /// A large message went through since tungstenite took over: its
    /// buffers are large, and worth keeping a while (see `RELEASE_AFTER`).
    heavy: bool,
    /// Messages moved since the release timer was set.
    moved: bool,
    /// When an idle connection with large buffers gives them back.
    release: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Resolves when the server shuts down gracefully.
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// The server's shutdown signal and task tracker, for a hub writer to
    /// take over.
    shutdown_handle: Option<Shutdown>,
    /// Pings a quiet peer; `None` when keepalive is off.
    keepalive: Option<Keepalive>,
    /// Keepalive gave up on the peer while sending; the reader is told.
    timed_out: bool,
    /// After `split`: the two halves' wakers, and the waker that wakes
    /// them (see [`Halves`]).
    halves: Option<(Arc<Halves>, Waker)>,
}

/// The wakers of a split socket's two halves, behind one waker that wakes
/// both. tungstenite keeps a single waker for write readiness, so whichever
/// half flushed last would take the other's wake-up: a writer waiting for a
/// full socket could then wait forever while its reader keeps reading. Each
/// half polls through this instead; a half's slot is emptied when its poll
/// completes, so only a half that is waiting gets woken.
#[derive(Debug, Default)]
struct Halves {
    reader: AtomicWaker,
    writer: AtomicWaker,
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

/// A message at least this large leaves tungstenite with large buffers.
const HEAVY: usize = 32 * 1024;
/// How long a connection with large buffers keeps them once idle. Dropping
/// and growing them again for every large message would cost page faults.
const RELEASE_AFTER: Duration = Duration::from_secs(1);
/// The read buffer when tungstenite takes over with little data waiting.
const SMALL_READ: usize = 4 * 1024;

/// Who holds the connection.
enum Inner {
    /// tungstenite, with its buffers, while messages are moving. Boxed so
    /// that a dormant connection's task stays small.
    Active(Box<WebSocketStream<Transport>>),
    /// Only the socket: idle at a frame boundary with nothing left to write.
    /// tungstenite would have nothing in its buffers, so they are dropped and
    /// an idle connection costs no buffer memory.
    Dormant(Transport),
    /// The socket failed while dormant, or could not be handed over.
    Gone,
}

impl WebSocket {
    pub(crate) fn new(
        transport: Transport,
        prefix: Option<Vec<u8>>,
        config: WebSocketConfig,
        write_limit: usize,
        protocol: Option<Utf8Bytes>,
        peer_addr: Option<SocketAddr>,
    ) -> Self {
        let mut socket = Self {
            inner: Inner::Dormant(transport),
            config,
            write_limit,
            protocol,
            peer_addr,
            peeked: None,
            closing: false,
            heavy: false,
            moved: false,
            release: None,
            shutdown: None,
            shutdown_handle: None,
            keepalive: None,
            timed_out: false,
            halves: None,
        };
        if let Some(prefix) = prefix {
            socket.activate(prefix, false);
        }
        socket
    }

    /// Pings the peer when quiet, and gives up on it when silent.
    pub(crate) fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Sends a keepalive ping, or fails the connection when the last one
    /// went unanswered. Returns the error to hand to the reader.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Option<Error> {
        if std::mem::take(&mut self.timed_out) {
            return Some(Error::timeout());
        }
        let due = match self.keepalive.as_mut()?.poll(cx) {
            Poll::Ready(due) => due,
            Poll::Pending => return None,
        };
        self.keepalive_due(cx, due)
    }

    /// Keepalive for a sender: a session that only sends (or a split
    /// sender whose receiver waits elsewhere) still pings and still finds a
    /// dead peer. A split sender polls the timer with the waker of both
    /// halves, so the reader keeps its wake-up; no clock is read per send.
    fn poll_keepalive_sending(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(keepalive) = self.keepalive.as_mut() else {
            return Ok(());
        };
        let Poll::Ready(due) = keepalive.poll(cx) else {
            return Ok(());
        };
        match self.keepalive_due(cx, due) {
            Some(err) => {
                self.timed_out = true;
                Err(err)
            }
            None => Ok(()),
        }
    }

    fn keepalive_due(&mut self, cx: &mut Context<'_>, due: Due) -> Option<Error> {
        if self.closing {
            return None;
        }
        match due {
            Due::Ping => {
                if let Ok(stream) = self.stream() {
                    let mut stream = Pin::new(stream);
                    if let Poll::Ready(Ok(())) = stream.as_mut().poll_ready(cx) {
                        let ping = tokio_tungstenite::tungstenite::Message::Ping(Bytes::new());
                        let _ = stream.as_mut().start_send(ping);
                        // Written out by the flush `poll_read` does when idle.
                        let _ = stream.poll_flush(cx);
                    }
                }
                None
            }
            Due::Dead => {
                let err = Error::timeout();
                self.closing = true;
                self.fail(cx, crate::close_code::ERROR, &err);
                // Drop the socket now: the lingering close drains it in the
                // background, bounded in time.
                self.inner = Inner::Gone;
                Some(err)
            }
        }
    }

    /// Closes with 1001 when the server shuts down gracefully.
    pub(crate) fn with_shutdown(mut self, shutdown: Option<Shutdown>) -> Self {
        self.shutdown = shutdown
            .as_ref()
            .map(|s| Box::pin(s.token.clone().cancelled_owned()));
        self.shutdown_handle = shutdown;
        self
    }

    /// Hands the graceful-shutdown close over to the caller (a hub writer,
    /// which must send what it has queued before the close, and which the
    /// server then waits for).
    pub(crate) fn take_shutdown(&mut self) -> Option<Shutdown> {
        self.shutdown = None;
        self.shutdown_handle.take()
    }

    /// Starts the close handshake for the server's shutdown, after what is
    /// already queued.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) {
        let Some(shutdown) = &mut self.shutdown else {
            return;
        };
        if shutdown.as_mut().poll(cx).is_pending() {
            return;
        }
        self.shutdown = None;
        if self.closing {
            return;
        }
        let frame = CloseFrame::new(crate::close_code::AWAY, "server shutting down");
        // The inner sink operations: this runs inside a half's poll.
        if let Poll::Ready(Ok(())) = self.poll_ready_inner(cx) {
            if let Err(err) = Pin::new(&mut *self).start_send(Message::Close(Some(frame))) {
                tracing::debug!(%err, "could not queue the shutdown close frame");
            }
            // The flush completes in `poll_read`, which flushes when idle.
            let _ = self.poll_flush_inner(cx);
        }
    }

    /// Hands the socket to tungstenite, with bytes already read from it.
    /// With little data waiting, tungstenite gets a small read buffer: a
    /// few messages then cost a small allocation, not a large one.
    fn activate(&mut self, part: Vec<u8>, more_waiting: bool) {
        let Inner::Dormant(transport) = std::mem::replace(&mut self.inner, Inner::Gone) else {
            return;
        };
        let mut config = self.config;
        if !more_waiting {
            config = config.read_buffer_size(config.read_buffer_size.min(SMALL_READ));
        }
        // tokio-tungstenite's constructor is async in name only: it is ready
        // on its first poll.
        let stream =
            WebSocketStream::from_partially_read(transport, part, Role::Server, Some(config));
        if let Some(stream) = stream.now_or_never() {
            self.inner = Inner::Active(Box::new(stream));
        }
    }

    /// Puts tungstenite and its buffers away; only the socket is kept.
    fn sleep(&mut self) {
        if let Inner::Active(stream) = std::mem::replace(&mut self.inner, Inner::Gone) {
            let transport = stream.into_inner();
            transport.release();
            self.inner = Inner::Dormant(transport);
        }
        self.heavy = false;
        self.release = None;
    }

    /// Whether an idle, flushed connection at a frame boundary may drop
    /// tungstenite's buffers now. Large buffers are kept until a whole
    /// `RELEASE_AFTER` passes without traffic. The timer is set once and
    /// looked at when it fires, so busy connections do not pay for it per
    /// message.
    fn poll_may_sleep(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.heavy {
            return Poll::Ready(());
        }
        let timer = self
            .release
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(RELEASE_AFTER)));
        std::task::ready!(timer.as_mut().poll(cx));
        if std::mem::take(&mut self.moved) {
            // Traffic since the timer was set: look again later.
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + RELEASE_AFTER);
            let _ = timer.as_mut().poll(cx);
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    fn note_moved(&mut self, len: usize) {
        self.moved = true;
        self.heavy |= len >= HEAVY;
    }

    /// tungstenite's stream, woken from dormancy if need be.
    fn stream(&mut self) -> Result<&mut WebSocketStream<Transport>, Error> {
        if matches!(self.inner, Inner::Dormant(_)) {
            self.activate(Vec::new(), false);
        }
        match &mut self.inner {
            Inner::Active(stream) => Ok(&mut **stream),
            _ => Err(Error::closed()),
        }
    }

    fn transport_mut(&mut self) -> Option<&mut Transport> {
        match &mut self.inner {
            Inner::Active(stream) => Some(stream.get_mut()),
            Inner::Dormant(transport) => Some(transport),
            Inner::Gone => None,
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
        self.send(crate::json::to_message(value)?).await
    }

    /// Receives the next text or binary message and parses it as JSON.
    ///
    /// Pings and pongs are skipped. Returns `None` once the connection is
    /// closed. A message that is not valid JSON for `T` is an error for
    /// which [`Error::is_json`] is true; the connection stays open.
    #[cfg(feature = "json")]
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        recv_json_from(self).await
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
        // Asked of the socket only when needed: most sessions never do.
        self.peer_addr.or_else(|| match &self.inner {
            Inner::Active(stream) => stream.get_ref().peer_addr(),
            Inner::Dormant(transport) => transport.peer_addr(),
            Inner::Gone => None,
        })
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
        let protocol = self.protocol.clone();
        let peer_addr = self.peer_addr();
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

    /// Reads one message, answering a peer's protocol fault with the right
    /// close frame. When there is nothing to read it flushes what is queued
    /// and, if tungstenite then holds nothing, lets it go dormant.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.poll_shutdown(cx);
        if let Some(err) = self.poll_keepalive(cx) {
            return Poll::Ready(Some(Err(err)));
        }
        let poll = self.poll_read_frames(cx);
        if poll.is_pending() {
            if let Some(keepalive) = &mut self.keepalive {
                keepalive.settle();
            }
        }
        poll
    }

    fn poll_read_frames(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match &mut self.inner {
                Inner::Gone => return Poll::Ready(None),
                Inner::Dormant(transport) => {
                    // Wait for bytes without any buffer of tungstenite's.
                    let mut buf = [0u8; 1024];
                    let mut read = ReadBuf::new(&mut buf);
                    match Pin::new(transport).poll_read(cx, &mut read) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(err)) => {
                            self.inner = Inner::Gone;
                            return Poll::Ready(Some(Err(Error::from_tungstenite(err.into()))));
                        }
                        // Data, or the end of the stream: tungstenite sorts it out.
                        Poll::Ready(Ok(())) => {
                            let more_waiting = read.remaining() == 0;
                            let part = read.filled().to_vec();
                            self.activate(part, more_waiting);
                        }
                    }
                }
                Inner::Active(stream) => {
                    // A peer that does not read what it is sent is not read
                    // from either: what it is owed (pongs above all) would
                    // otherwise pile up without bound.
                    if stream.get_ref().unwritten() > self.write_limit {
                        match Pin::new(&mut *stream).poll_flush(cx) {
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(err)) => {
                                return Poll::Ready(Some(Err(self.failed(err))));
                            }
                            Poll::Pending if stream.get_ref().unwritten() > self.write_limit => {
                                return Poll::Pending;
                            }
                            Poll::Pending => {}
                        }
                    }
                    let item = match Pin::new(&mut *stream).poll_next(cx) {
                        Poll::Ready(item) => item,
                        Poll::Pending => {
                            // Always flush: tungstenite may owe the peer a pong.
                            match Pin::new(&mut *stream).poll_flush(cx) {
                                Poll::Ready(Ok(())) => {}
                                Poll::Ready(Err(err)) => {
                                    return Poll::Ready(Some(Err(self.failed(err))));
                                }
                                Poll::Pending => return Poll::Pending,
                            }
                            if self.closing
                                || !stream.get_ref().at_rest()
                                || self.poll_may_sleep(cx).is_pending()
                            {
                                return Poll::Pending;
                            }
                            self.sleep();
                            // Poll the socket itself, so the waker is its own.
                            continue;
                        }
                    };
                    return Poll::Ready(match item {
                        None => {
                            self.closing = true;
                            None
                        }
                        Some(Ok(msg)) => {
                            let msg = Message::from_tungstenite(msg);
                            self.note_moved(msg.len());
                            if let Some(keepalive) = &mut self.keepalive {
                                keepalive.heard();
                            }
                            if matches!(msg, Message::Close(_)) {
                                self.closing = true;
                                // Send tungstenite's reply now: the session
                                // may drop the socket as soon as it sees this.
                                if let Inner::Active(stream) = &mut self.inner {
                                    let _ = Pin::new(&mut **stream).poll_flush(cx);
                                }
                            }
                            Some(Ok(msg))
                        }
                        Some(Err(err)) => {
                            let err = self.failed(err);
                            if let Some(code) = err.close_code() {
                                self.fail(cx, code, &err);
                            }
                            Some(Err(err))
                        }
                    });
                }
            }
        }
    }

    fn failed(&mut self, err: tokio_tungstenite::tungstenite::Error) -> Error {
        self.closing = true;
        Error::from_tungstenite(err)
    }

    /// Tells the peer why the connection is being failed. One attempt: a
    /// peer that broke the protocol and does not read gets no more time.
    fn fail(&mut self, cx: &mut Context<'_>, code: u16, err: &Error) {
        tracing::debug!(%err, code, "failing WebSocket connection");
        let reason = match code {
            crate::close_code::INVALID => "invalid UTF-8 in text message",
            crate::close_code::SIZE => "message too big",
            crate::close_code::ERROR => "keepalive timeout",
            _ => "protocol error",
        };
        let frame = Some(CloseFrame::new(code, reason).into_tungstenite());
        // A dormant connection is woken up to say it.
        if let Ok(stream) = self.stream() {
            let mut stream = Pin::new(stream);
            if let Poll::Ready(Ok(())) = stream.as_mut().poll_ready(cx) {
                let msg = tokio_tungstenite::tungstenite::Message::Close(frame);
                if stream.as_mut().start_send(msg).is_ok() {
                    let _ = stream.poll_flush(cx);
                }
            }
        }
        if let Some(transport) = self.transport_mut() {
            transport.linger_on_drop();
        }
    }

    /// Runs one poll of a half of a split socket with the waker that wakes
    /// both halves (see [`Halves`]); unsplit, just runs it.
    fn poll_half<T>(
        &mut self,
        cx: &mut Context<'_>,
        writer: bool,
        poll: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let Some((halves, waker)) = &self.halves else {
            return poll(self, cx);
        };
        let (halves, waker) = (halves.clone(), waker.clone());
        let slot = if writer {
            &halves.writer
        } else {
            &halves.reader
        };
        slot.register(cx.waker());
        let result = poll(self, &mut Context::from_waker(&waker));
        if result.is_ready() {
            slot.take();
        }
        result
    }

    /// Flushes; but when an incoming message is already waiting, the bytes
    /// are deferred instead: the next flush writes them together with the
    /// replies to what is waiting, and if the session awaits anything else
    /// first, the transport's flusher writes them as soon as its task
    /// yields (see `transport::tcp`).
    fn poll_flush_batched(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.peeked.is_none() {
            // Nothing to read: this flushes (and may go dormant).
            if let Poll::Ready(item) = self.poll_read(cx) {
                self.peeked = Some(item);
            }
        }
        let busy = matches!(self.peeked, Some(Some(Ok(_))));
        match &mut self.inner {
            Inner::Active(stream) if busy && stream.get_ref().can_defer() => {
                stream.get_mut().set_defer(true);
                let flushed = Pin::new(&mut **stream).poll_flush(cx);
                stream.get_mut().set_defer(false);
                flushed.map_err(Error::from_tungstenite)
            }
            _ => self.poll_flush_inner(cx),
        }
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
                Some(item) => Poll::Ready(item),
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
        self.note_moved(msg.len());
        if matches!(msg, Message::Close(_)) {
            self.closing = true;
            // Let the peer's reply arrive before the socket is dropped.
            if let Some(transport) = self.transport_mut() {
                transport.linger_on_drop();
            }
        }
        let stream = self.stream()?;
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

/// The sink operations, polled with the waker [`WebSocket::poll_half`]
/// chooses.
impl WebSocket {
    fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_keepalive_sending(cx)?;
        let limit = self.write_limit;
        let mut stream = Pin::new(self.stream()?);
        // Room for another message only once the queue is under the limit.
        if stream.get_ref().unwritten() > limit {
            std::task::ready!(stream.as_mut().poll_flush(cx)).map_err(Error::from_tungstenite)?;
        }
        stream.poll_ready(cx).map_err(Error::from_tungstenite)
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &mut self.inner {
            // Dormant means everything was written already.
            Inner::Dormant(_) => Poll::Ready(Ok(())),
            Inner::Gone => Poll::Ready(Err(Error::closed())),
            Inner::Active(stream) => Pin::new(stream)
                .poll_flush(cx)
                .map_err(Error::from_tungstenite),
        }
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.closing = true;
        if let Some(transport) = self.transport_mut() {
            transport.linger_on_drop();
        }
        let stream = self.stream()?;
        Pin::new(stream)
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
        self.send(crate::json::to_message(value)?).await
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
        recv_json_from(&mut self.inner).await
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

/// Reads a stream of messages until one decodes as JSON (or it ends).
#[cfg(feature = "json")]
async fn recv_json_from<S, T>(stream: &mut S) -> Option<Result<T, Error>>
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
    T: serde::de::DeserializeOwned,
{
    loop {
        match crate::json::decode(stream.next().await?) {
            crate::json::Decoded::Skip => continue,
            crate::json::Decoded::End => return None,
            crate::json::Decoded::Item(item) => return Some(item),
        }
    }
}
