//! The crate's one error type.

use std::fmt;

use tokio_tungstenite::tungstenite::{self as ts, error::ProtocolError};

use crate::message::{close_code, CloseFrame};
use crate::response::BoxError;

/// An error from a WebSocket connection or its upgrade.
///
/// It is opaque on purpose, so it can grow without breaking anyone: ask it
/// what happened with the `is_*` predicates. Its `Display` text is for
/// people and logs, not for matching, and says only what went wrong at this
/// level; the cause, when there is one, is its
/// [`source`](std::error::Error::source) (print the chain to see it). One
/// pointer wide, so `Result`s stay small on the hot path.
pub struct Error {
    inner: Box<ErrorImpl>,
}

struct ErrorImpl {
    kind: Kind,
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The connection is closed; using it further is a programmer error.
    Closed,
    /// A transport (socket) error: reset, broken pipe, timeout.
    Io,
    /// The peer broke the WebSocket protocol.
    Protocol,
    /// A text message was not valid UTF-8.
    Utf8,
    /// An incoming message or frame was over the configured maximum.
    TooLarge,
    /// The outgoing buffer is over `max_write_buffer_size`.
    WriteBufferFull,
    /// hyper could not complete the HTTP upgrade.
    Upgrade,
    /// The peer answered no keepalive ping in time.
    Timeout,
    /// The connection's hub queue overflowed; closed with this code.
    SlowConsumer(u16),
    /// The hub's Redis backplane is misconfigured.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Backplane,
    /// A message could not be (de)serialized as JSON.
    Json,
    /// A send could not be recorded in a room's history.
    History,
    /// A setting given in code is invalid.
    #[cfg_attr(not(feature = "router"), allow(dead_code))]
    Config,
}

impl Error {
    fn from_parts(kind: Kind, source: Option<BoxError>) -> Self {
        Self {
            inner: Box::new(ErrorImpl { kind, source }),
        }
    }

    fn new(kind: Kind, source: impl Into<BoxError>) -> Self {
        Self::from_parts(kind, Some(source.into()))
    }

    fn kind(&self) -> Kind {
        self.inner.kind
    }

    pub(crate) fn closed() -> Self {
        Self::from_parts(Kind::Closed, None)
    }

    pub(crate) fn timeout() -> Self {
        Self::from_parts(Kind::Timeout, None)
    }

    #[cfg(feature = "redis")]
    pub(crate) fn backplane(err: redis::RedisError) -> Self {
        Self::new(Kind::Backplane, err)
    }

    #[cfg(feature = "redis")]
    pub(crate) fn backplane_runtime(err: tokio::runtime::TryCurrentError) -> Self {
        Self::new(Kind::Backplane, err)
    }

    #[cfg_attr(not(feature = "router"), allow(dead_code))]
    pub(crate) fn config(why: String) -> Self {
        Self::new(Kind::Config, why)
    }

    pub(crate) fn history(why: &'static str) -> Self {
        Self::new(Kind::History, why)
    }

    pub(crate) fn slow_consumer(code: u16) -> Self {
        Self::from_parts(Kind::SlowConsumer(code), None)
    }

    pub(crate) fn upgrade(err: hyper::Error) -> Self {
        Self::new(Kind::Upgrade, err)
    }

    #[cfg(feature = "json")]
    pub(crate) fn json(err: serde_json::Error) -> Self {
        Self::new(Kind::Json, err)
    }

    pub(crate) fn from_tungstenite(err: ts::Error) -> Self {
        // The deflate layer fails a connection through an I/O error that
        // carries the close code it calls for.
        #[cfg(feature = "deflate")]
        if let ts::Error::Io(io) = &err {
            if let Some(fault) = io
                .get_ref()
                .and_then(|e| e.downcast_ref::<crate::deflate::Fault>())
            {
                let kind = if fault.code == close_code::SIZE {
                    Kind::TooLarge
                } else {
                    Kind::Protocol
                };
                return Self::new(kind, *fault);
            }
        }
        let kind = match &err {
            ts::Error::ConnectionClosed | ts::Error::AlreadyClosed => Kind::Closed,
            ts::Error::Io(_)
            | ts::Error::Tls(_)
            | ts::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Kind::Io,
            ts::Error::Capacity(_) => Kind::TooLarge,
            ts::Error::WriteBufferFull(_) => Kind::WriteBufferFull,
            ts::Error::Utf8(_) => Kind::Utf8,
            _ => Kind::Protocol,
        };
        match err {
            ts::Error::ConnectionClosed | ts::Error::AlreadyClosed => Self::from_parts(kind, None),
            // Keep the message out of the error: it may be megabytes.
            ts::Error::WriteBufferFull(_) => Self::from_parts(kind, None),
            other => Self::new(kind, other),
        }
    }

    /// The connection is already closed; further sends or receives fail.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.kind() == Kind::Closed
    }

    /// A transport error: the peer went away without a close handshake, the
    /// socket was reset, I/O failed.
    #[must_use]
    pub fn is_io(&self) -> bool {
        self.kind() == Kind::Io
    }

    /// The peer broke the WebSocket protocol (bad framing, unmasked frame,
    /// reset without a close handshake...). The server answered with 1002.
    #[must_use]
    pub fn is_protocol(&self) -> bool {
        self.kind() == Kind::Protocol
    }

    /// A text message was not valid UTF-8. The server answered with 1007.
    #[must_use]
    pub fn is_utf8(&self) -> bool {
        self.kind() == Kind::Utf8
    }

    /// An incoming message or frame was larger than the configured maximum.
    /// The server answered with 1009.
    #[must_use]
    pub fn is_too_large(&self) -> bool {
        self.kind() == Kind::TooLarge
    }

    /// tungstenite refused to queue a message. hyperws configures it so that
    /// this does not happen (a send over the write limit waits instead), so
    /// this is kept only for errors converted from tungstenite elsewhere.
    #[must_use]
    pub fn is_write_buffer_full(&self) -> bool {
        self.kind() == Kind::WriteBufferFull
    }

    /// The peer stayed silent after a keepalive ping for the whole pong
    /// timeout; the connection was closed with 1011.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.kind() == Kind::Timeout
    }

    /// The peer read too slowly: its [`Hub`](crate::hub::Hub) queue
    /// overflowed and the slow-consumer policy closed the connection.
    #[must_use]
    pub fn is_slow_consumer(&self) -> bool {
        matches!(self.kind(), Kind::SlowConsumer(_))
    }

    /// hyper could not hand over the connection after the 101 response.
    #[must_use]
    pub fn is_upgrade(&self) -> bool {
        self.kind() == Kind::Upgrade
    }

    /// A message was not the JSON the handler asked for.
    #[must_use]
    pub fn is_json(&self) -> bool {
        self.kind() == Kind::Json
    }

    /// The hub's Redis backplane could not be set up (a bad URL, or no
    /// tokio runtime to run it on).
    #[must_use]
    pub fn is_backplane(&self) -> bool {
        self.kind() == Kind::Backplane
    }

    /// A send could not be recorded in a room's history: it did not name
    /// exactly one room, or the hub keeps no history for that room (the
    /// [`source`](std::error::Error::source) says which). Nothing was sent.
    #[must_use]
    pub fn is_history(&self) -> bool {
        self.kind() == Kind::History
    }

    /// A setting given in code is invalid, such as a trusted proxy that is
    /// not an address ([`source`](std::error::Error::source) names it).
    #[must_use]
    pub fn is_config(&self) -> bool {
        self.kind() == Kind::Config
    }

    /// The close frame the server sends its peer when this error ends the
    /// connection: 1002 for a protocol error, 1007 for invalid UTF-8, 1009
    /// for a message too large, 1011 for a keepalive timeout, the policy's
    /// code (1008 by default) for a slow consumer. `None` when the error
    /// sends no close frame (the connection is lost, or the error is not
    /// the peer's).
    ///
    /// ```
    /// # fn log(err: &hyperws::Error) {
    /// if let Some(frame) = err.close_frame() {
    ///     tracing::info!(code = frame.code, reason = %frame.reason, "closed by the server");
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self.kind() {
            Kind::Protocol => (close_code::PROTOCOL, "protocol error"),
            Kind::Utf8 => (close_code::INVALID, "invalid UTF-8 in text message"),
            Kind::TooLarge => (close_code::SIZE, "message too big"),
            Kind::Timeout => (close_code::ERROR, "keepalive timeout"),
            Kind::SlowConsumer(code) => (code, "slow consumer"),
            _ => return None,
        };
        Some(CloseFrame::new(
            code,
            crate::message::Utf8Bytes::from_static(reason),
        ))
    }

    fn description(&self) -> &'static str {
        match self.kind() {
            Kind::Closed => "connection closed",
            Kind::Io => "transport error",
            Kind::Protocol => "WebSocket protocol error",
            Kind::Utf8 => "text message is not valid UTF-8",
            Kind::TooLarge => "message too large",
            Kind::WriteBufferFull => "write buffer full: the peer is not reading",
            Kind::Upgrade => "HTTP upgrade failed",
            Kind::Timeout => "keepalive timeout: the peer stopped answering",
            Kind::SlowConsumer(_) => "slow consumer: the connection's queue overflowed",
            Kind::Backplane => "hub backplane configuration",
            Kind::Json => "invalid JSON message",
            Kind::History => "not recorded in the room's history",
            Kind::Config => "invalid setting",
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut t = f.debug_tuple("hyperws::Error");
        t.field(&self.inner.kind);
        if let Some(source) = &self.inner.source {
            t.field(source);
        }
        t.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only this level: the cause is `source()`, which reporters print.
        f.write_str(self.description())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<(), Error>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn display_is_this_level_and_the_cause_is_the_source() {
        let cause = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe broke");
        let err = Error::new(Kind::Io, cause);
        assert_eq!(err.to_string(), "transport error");
        let source = std::error::Error::source(&err).expect("a source");
        assert_eq!(source.to_string(), "pipe broke");
        assert!(err.is_io() && !err.is_backplane());
        assert!(Error::closed().is_closed());
        assert!(std::error::Error::source(&Error::closed()).is_none());
    }

    #[test]
    fn one_mapping_from_errors_to_close_frames() {
        let code = |err: Error| err.close_frame().map(|f| f.code);
        assert_eq!(code(Error::from_parts(Kind::Protocol, None)), Some(1002));
        assert_eq!(code(Error::from_parts(Kind::Utf8, None)), Some(1007));
        assert_eq!(code(Error::from_parts(Kind::TooLarge, None)), Some(1009));
        assert_eq!(code(Error::timeout()), Some(1011));
        assert_eq!(code(Error::slow_consumer(1013)), Some(1013));
        assert!(Error::slow_consumer(1008).is_slow_consumer());
        for quiet in [
            Kind::Closed,
            Kind::Io,
            Kind::Upgrade,
            Kind::Json,
            Kind::History,
            Kind::Config,
            Kind::WriteBufferFull,
        ] {
            assert_eq!(code(Error::from_parts(quiet, None)), None);
        }
    }
}
