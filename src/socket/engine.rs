//! The machinery under [`WebSocket`]: handing the socket to tungstenite
//! and back (dormancy), deferred flushes, keepalive, the server's shutdown,
//! and failing a connection with the right close code.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::state::{State, Stream as TsStream};
use super::{Peeked, WebSocket};
use crate::error::Error;
use crate::keepalive::{Due, Keepalive};
use crate::lifecycle::Shutdown;
use crate::message::{CloseFrame, Message, Utf8Bytes};
use crate::telemetry::SocketTelemetry;
use crate::transport::{Outgoing, Transport, DIRECT_MIN};

impl WebSocket {
    pub(crate) fn new(
        transport: Transport,
        prefix: Option<Vec<u8>>,
        config: WebSocketConfig,
        write_limit: usize,
        protocol: Option<Utf8Bytes>,
        peer_addr: Option<SocketAddr>,
        telemetry: SocketTelemetry,
    ) -> Self {
        let mut socket = Self {
            telemetry,
            state: State::Dormant(transport),
            config,
            write_limit,
            protocol,
            peer_addr,
            peeked: None,
            shutdown: None,
            shutdown_handle: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            #[cfg(feature = "deflate")]
            prepare: None,
            keepalive: None,
            timed_out: false,
            yielded: 0,
            halves: None,
        };
        if let Some(prefix) = prefix {
            socket.state.activate(&socket.config, prefix, false);
        }
        socket
    }

    /// Records what permessage-deflate the handshake agreed on, and how
    /// (in shared mode) this socket compresses what it sends.
    #[cfg(feature = "deflate")]
    pub(crate) fn with_deflate(
        mut self,
        negotiated: Option<(crate::deflate::DeflateParams, crate::deflate::Deflate)>,
    ) -> Self {
        self.deflate = negotiated.map(|(params, _)| params);
        self.prepare = negotiated
            .and_then(|(params, settings)| crate::deflate::Prepare::new(params, &settings));
        self
    }

    /// Pings the peer when quiet, and gives up on it when silent.
    pub(crate) fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Keepalive for a sender: a session that only sends (or a split
    /// sender whose receiver waits elsewhere) still pings and still finds a
    /// dead peer. A split sender polls the timer with the waker of both
    /// halves, so the reader keeps its wake-up; no clock is read per send.
    pub(super) fn poll_keepalive_sending(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
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

    pub(super) fn keepalive_due(&mut self, cx: &mut Context<'_>, due: Due) -> Option<Error> {
        if self.state.is_closing() {
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
                self.state.close(&self.config);
                self.fail(cx, &err);
                // Drop the socket now: the lingering close drains it in the
                // background, bounded in time.
                self.state = State::Gone;
                Some(err)
            }
        }
    }

    /// Closes with 1001 when the server shuts down gracefully.
    pub(crate) fn with_shutdown(mut self, shutdown: Option<Shutdown>) -> Self {
        self.shutdown = shutdown.as_ref().map(|s| s.signal.waiter());
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

    /// Whether the server's shutdown has come (true once: then it is
    /// handled). With `wait`, the connection is about to wait, and the
    /// shutdown will wake it.
    fn shutdown_due(&mut self, cx: &mut Context<'_>, wait: bool) -> bool {
        let Some(shutdown) = &mut self.shutdown else {
            return false;
        };
        let due = if wait {
            Pin::new(shutdown).poll(cx).is_ready()
        } else {
            shutdown.is_fired()
        };
        if due {
            self.shutdown = None;
        }
        due
    }

    /// Starts the close handshake for the server's shutdown, after what is
    /// already queued.
    fn close_for_shutdown(&mut self, cx: &mut Context<'_>) {
        if self.state.is_closing() {
            return;
        }
        let frame = CloseFrame::server_shutdown();
        // The inner sink operations: this runs inside a half's poll.
        if let Poll::Ready(Ok(())) = self.poll_ready_inner(cx) {
            if let Err(err) = Pin::new(&mut *self).start_send(Message::Close(Some(frame))) {
                let cause = std::error::Error::source(&err).map(ToString::to_string);
                tracing::debug!(%err, ?cause, "could not queue the shutdown close frame");
            }
            // The flush completes in `poll_read`, which flushes when idle.
            let _ = self.poll_flush_inner(cx);
        }
    }

    /// tungstenite's stream, woken from dormancy if need be.
    pub(super) fn stream(&mut self) -> Result<&mut TsStream, Error> {
        self.state.stream(&self.config)
    }

    /// Reads one message, answering a peer's protocol fault with the right
    /// close frame. When there is nothing to read it flushes what is queued
    /// and, if tungstenite then holds nothing, lets it go dormant.
    pub(super) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        // Asked on every read, so that a peer that never stops sending is
        // still told; registered for only while the connection waits.
        if self.shutdown_due(cx, false) {
            self.close_for_shutdown(cx);
        }
        if std::mem::take(&mut self.timed_out) {
            return Poll::Ready(Some(Err(Error::timeout())));
        }
        let mut poll = self.poll_read_frames(cx);
        if poll.is_pending() && self.shutdown_due(cx, true) {
            self.close_for_shutdown(cx);
            // The close frame is queued: flushing it is the read's job.
            poll = self.poll_read_frames(cx);
        }
        if poll.is_ready() {
            return poll;
        }
        // The keepalive timer is looked at only while the connection waits:
        // traffic proves the peer alive and makes a ping needless, and a
        // connection that ends before it ever waits (a handshake and a
        // reset) never arms the timer at all.
        let Some(keepalive) = &mut self.keepalive else {
            return poll;
        };
        keepalive.settle();
        let Poll::Ready(due) = keepalive.poll(cx) else {
            return poll;
        };
        if let Some(err) = self.keepalive_due(cx, due) {
            return Poll::Ready(Some(Err(err)));
        }
        // A ping woke tungstenite: flush it and let the connection sleep
        // again (the read is polled again; what it yields is kept).
        let poll = self.poll_read_frames(cx);
        if poll.is_pending() {
            if let Some(keepalive) = &mut self.keepalive {
                keepalive.settle();
            }
        }
        poll
    }

    pub(super) fn poll_read_frames(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        // The socket's end reads as no bytes: tungstenite must see it.
        let mut at_end = false;
        loop {
            if !at_end {
                if let Some(stream) = self.state.drained(self.yielded) {
                    // Go dormant at once; the dormant read waits on the
                    // socket without a buffer of tungstenite's.
                    match Pin::new(&mut *stream).poll_flush(cx) {
                        Poll::Ready(Ok(())) => {
                            self.state.sleep();
                            continue;
                        }
                        Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(self.failed(err)))),
                        Poll::Pending => {}
                    }
                }
            }
            let stream = match &mut self.state {
                State::Gone => return Poll::Ready(None),
                State::Dormant(transport) => {
                    // Wait for bytes without any buffer of tungstenite's.
                    match transport.poll_read_dormant(cx, self.config.read_buffer_size) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(err)) => {
                            let err = Error::from_tungstenite(err.into());
                            if err.close_frame().is_some() {
                                // The deflate layer found the peer at fault:
                                // tungstenite takes the socket to say so.
                                self.state.close(&self.config);
                                self.fail(cx, &err);
                            } else {
                                self.state = State::Gone;
                            }
                            return Poll::Ready(Some(Err(err)));
                        }
                        // Data, or the end of the stream: tungstenite sorts it out.
                        Poll::Ready(Ok((part, more_waiting))) => {
                            at_end = part.is_empty();
                            self.state.activate(&self.config, part, more_waiting);
                            continue;
                        }
                    }
                }
                State::Active(stream, _) | State::Closing(stream) => &mut **stream,
            };
            // A peer that does not read what it is sent is not read from
            // either: what it is owed (pongs above all) would otherwise pile
            // up without bound.
            if stream.get_ref().unwritten() > self.write_limit {
                match Pin::new(&mut *stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(self.failed(err)))),
                    Poll::Pending if stream.get_ref().unwritten() > self.write_limit => {
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            let polled = if stream.get_ref().reads_ahead() {
                // Large frames have been coming: read the next bytes into a
                // buffer of our own, not tungstenite's (which it zero-fills).
                match stream.get_mut().poll_read_ahead(cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
                    Poll::Pending => Poll::Pending,
                }
            } else if stream.get_ref().incoming_is_next() {
                // A large frame read past tungstenite, which holds nothing
                // before it: read on without asking tungstenite.
                match stream.get_mut().poll_incoming(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(stream.get_mut().take_incoming()),
                    Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
                    Poll::Pending => Poll::Pending,
                }
            } else {
                match Pin::new(&mut *stream).poll_next(cx) {
                    // tungstenite has no more: the large frame read past it
                    // comes next, once whole.
                    Poll::Pending => match stream.get_mut().take_incoming() {
                        Some(item) => Poll::Ready(Some(item)),
                        None => Poll::Pending,
                    },
                    Poll::Ready(Some(Ok(msg))) => {
                        self.yielded = self.yielded.wrapping_add(1);
                        Poll::Ready(Some(Ok(msg)))
                    }
                    ended => ended,
                }
            };
            let item = match polled {
                Poll::Ready(item) => item,
                Poll::Pending => {
                    // Always flush: tungstenite may owe the peer a pong.
                    match Pin::new(&mut *stream).poll_flush(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(self.failed(err)))),
                        Poll::Pending => return Poll::Pending,
                    }
                    if self.state.poll_may_sleep(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.state.sleep();
                    // Poll the socket itself, so the waker is its own.
                    continue;
                }
            };
            return Poll::Ready(match item {
                None => {
                    self.state.close(&self.config);
                    None
                }
                Some(Ok(msg)) => {
                    let msg = Message::from_tungstenite(msg);
                    self.state.note_moved(msg.len());
                    self.telemetry.received(&msg);
                    if let Some(keepalive) = &mut self.keepalive {
                        keepalive.heard();
                    }
                    if matches!(msg, Message::Close(_)) {
                        self.state.close(&self.config);
                        // Send tungstenite's reply now: the session may drop
                        // the socket as soon as it sees this.
                        if let Some(stream) = self.state.stream_if_awake() {
                            let _ = Pin::new(stream).poll_flush(cx);
                        }
                    }
                    Some(Ok(msg))
                }
                Some(Err(err)) => {
                    let err = self.failed(err);
                    self.fail(cx, &err);
                    Some(Err(err))
                }
            });
        }
    }

    pub(super) fn failed(&mut self, err: tokio_tungstenite::tungstenite::Error) -> Error {
        self.state.close(&self.config);
        Error::from_tungstenite(err)
    }

    /// Tells the peer why the connection is being failed, with the close
    /// frame the error maps to (none: the peer is not at fault, or gone).
    /// One attempt: a peer that broke the protocol and does not read gets
    /// no more time.
    pub(super) fn fail(&mut self, cx: &mut Context<'_>, err: &Error) {
        let Some(frame) = err.close_frame() else {
            return;
        };
        let cause = std::error::Error::source(err).map(ToString::to_string);
        tracing::debug!(%err, ?cause, code = frame.code, "failing WebSocket connection");
        self.telemetry.sent(Some(&frame));
        let frame = Some(frame.into_tungstenite());
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
        if let Some(transport) = self.state.transport_mut() {
            transport.linger_on_drop();
        }
    }

    /// Runs one poll of a half of a split socket with the waker that wakes
    /// both halves (see [`Halves`]); unsplit, just runs it.
    pub(super) fn poll_half<T>(
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
    pub(super) fn poll_flush_batched(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.peeked.is_none() {
            // Nothing to read: this flushes (and may go dormant).
            if let Poll::Ready(item) = self.poll_read(cx) {
                self.peeked = Some(match item {
                    Some(item) => Peeked::Item(item),
                    None => Peeked::End,
                });
            }
        }
        let busy = matches!(self.peeked, Some(Peeked::Item(Ok(_))));
        match &mut self.state {
            State::Active(stream, _) if busy && stream.get_ref().can_defer() => {
                stream.get_mut().set_defer(true);
                let flushed = Pin::new(&mut **stream).poll_flush(cx);
                stream.get_mut().set_defer(false);
                flushed.map_err(Error::from_tungstenite)
            }
            _ => self.poll_flush_inner(cx),
        }
    }
}

/// The direct path for large outgoing messages (see `transport::direct`).
impl WebSocket {
    /// Whether a data message of `len` bytes can bypass tungstenite's write
    /// buffer: it is large, the connection is open, and everything
    /// tungstenite holds has reached the transport (which writes the frame
    /// after it). Then the message costs no copy.
    pub(super) fn may_send_direct(&mut self, len: usize) -> bool {
        if len < self.config.write_buffer_size.max(DIRECT_MIN) {
            return false;
        }
        let State::Active(stream, _) = &mut self.state else {
            return false;
        };
        if !stream.get_ref().can_send_direct() {
            return false;
        }
        // A flush that completes at once says tungstenite holds nothing (no
        // earlier message, no pong it owes). One that would wait leaves the
        // message to tungstenite, behind what it holds; its waker is the one
        // that wakes both halves of a split socket, so the other half's
        // wait for the socket is not lost (unsplit, the caller is the only
        // one who waits, and it flushes next).
        let waker = self
            .halves
            .as_ref()
            .map_or(Waker::noop(), |(_, waker)| waker);
        let mut cx = Context::from_waker(waker);
        matches!(
            Pin::new(&mut **stream).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        )
    }

    /// Hands a frame to the transport after [`may_send_direct`](Self::may_send_direct) said yes.
    pub(super) fn send_direct(&mut self, b0: u8, payload: Bytes) {
        if let Some(transport) = self.state.transport_mut() {
            transport.send_direct(Outgoing::new(b0, payload));
        }
    }
}

/// The sink operations, polled with the waker [`WebSocket::poll_half`]
/// chooses.
impl WebSocket {
    pub(super) fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_keepalive_sending(cx)?;
        let limit = self.write_limit;
        let mut stream = Pin::new(self.stream()?);
        // Room for another message only once the queue is under the limit.
        if stream.get_ref().unwritten() > limit {
            std::task::ready!(stream.as_mut().poll_flush(cx)).map_err(Error::from_tungstenite)?;
        }
        stream.poll_ready(cx).map_err(Error::from_tungstenite)
    }

    pub(super) fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let flushed = match &mut self.state {
            // Dormant means everything was written already.
            State::Dormant(_) => return Poll::Ready(Ok(())),
            State::Gone => return Poll::Ready(Err(Error::closed())),
            State::Active(stream, _) | State::Closing(stream) => Pin::new(&mut **stream)
                .poll_flush(cx)
                .map_err(Error::from_tungstenite),
        };
        // A split sender (a hub writer above all) may be the only half at
        // work: a connection that only receives would stay awake, buffers
        // and all, until its peer next sent something. Once all is written
        // and tungstenite holds nothing read either, it sleeps here; the
        // reader's wait on the socket stays registered.
        if let Poll::Ready(Ok(())) = flushed {
            if self.halves.is_some() && self.state.drained(self.yielded).is_some() {
                self.state.sleep();
            }
        }
        flushed
    }

    pub(super) fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.state.close(&self.config);
        if let Some(transport) = self.state.transport_mut() {
            transport.linger_on_drop();
        }
        let stream = self.stream()?;
        Pin::new(stream)
            .poll_close(cx)
            .map_err(Error::from_tungstenite)
    }
}
