//! WebSocket messages: [`Message`], [`Utf8Bytes`], [`CloseFrame`] and the
//! [`close_code`] constants.
//!
//! These are this crate's own types so that a tungstenite upgrade is never a
//! breaking change for users. Every payload is [`Bytes`]-backed: converting to
//! and from tungstenite's types moves the buffer, it never copies it, and
//! cloning a message for a broadcast only bumps a reference count.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{self as ts, protocol::frame::coding::CloseCode};

/// A UTF-8 string backed by [`Bytes`]: cheap to clone, validated once.
///
/// It dereferences to `str`, so every `&str` method is available.
///
/// ```
/// use hyperws::Utf8Bytes;
///
/// let text = Utf8Bytes::from("hello");
/// assert_eq!(text.len(), 5);
/// assert_eq!(text, "hello");
/// let bytes = Utf8Bytes::try_from(bytes::Bytes::from_static(b"ok")).unwrap();
/// assert_eq!(bytes.as_str(), "ok");
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(ts::Utf8Bytes);

impl Utf8Bytes {
    /// Creates a value from a static string without copying it.
    #[must_use]
    pub const fn from_static(text: &'static str) -> Self {
        Self(ts::Utf8Bytes::from_static(text))
    }

    /// Returns the text as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Returns the underlying bytes (a reference-count bump, no copy).
    #[must_use]
    pub fn as_bytes(&self) -> Bytes {
        Bytes::from(self.0.clone())
    }

    fn into_tungstenite(self) -> ts::Utf8Bytes {
        self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Utf8Bytes {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(text.into())
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Self(text.into())
    }
}

impl From<&String> for Utf8Bytes {
    fn from(text: &String) -> Self {
        Self(text.as_str().into())
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;

    /// Validates the bytes as UTF-8 and keeps the same buffer.
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        ts::Utf8Bytes::try_from(bytes).map(Self)
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = std::str::Utf8Error;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        Self::try_from(Bytes::from(bytes))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.0.into()
    }
}

/// Named close codes (RFC 6455 §7.4.1 and the IANA registry).
///
/// Codes are plain `u16`s so that application codes (4000–4999) fit the same
/// field; these constants name the registered ones.
pub mod close_code {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: u16 = 1000;
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const AWAY: u16 = 1001;
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: u16 = 1002;
    /// 1003: the endpoint received a kind of data it cannot accept.
    pub const UNSUPPORTED: u16 = 1003;
    /// 1005: no status code was present. Never sent on the wire.
    pub const STATUS: u16 = 1005;
    /// 1006: the connection closed without a close frame. Never sent on the wire.
    pub const ABNORMAL: u16 = 1006;
    /// 1007: a message's data was not consistent with its type (e.g. invalid UTF-8 text).
    pub const INVALID: u16 = 1007;
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY: u16 = 1008;
    /// 1009: a message was too big to process.
    pub const SIZE: u16 = 1009;
    /// 1010: the client expected an extension the server did not negotiate.
    pub const EXTENSION: u16 = 1010;
    /// 1011: the server met an unexpected condition.
    pub const ERROR: u16 = 1011;
    /// 1012: the server is restarting.
    pub const RESTART: u16 = 1012;
    /// 1013: the server is overloaded; try again later.
    pub const AGAIN: u16 = 1013;
}

/// The payload of a close frame: a code and a short UTF-8 reason.
///
/// ```
/// use hyperws::{close_code, CloseFrame};
///
/// let frame = CloseFrame::new(close_code::AWAY, "server restarting");
/// assert_eq!(frame.code, 1001);
/// assert_eq!(frame.reason, "server restarting");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close code; see [`close_code`] for the registered values.
    pub code: u16,
    /// Why the connection is closing. The whole control frame is limited to
    /// 125 bytes, so keep it under 123 bytes of UTF-8.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// Creates a close frame from a code and a reason.
    pub fn new(code: u16, reason: impl Into<Utf8Bytes>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// What every WebSocket is told on the server's graceful shutdown.
    pub(crate) fn server_shutdown() -> Self {
        Self::new(
            close_code::AWAY,
            Utf8Bytes::from_static("server shutting down"),
        )
    }

    pub(crate) fn into_tungstenite(self) -> ts::protocol::CloseFrame {
        ts::protocol::CloseFrame {
            code: CloseCode::from(self.code),
            reason: self.reason.into_tungstenite(),
        }
    }

    fn from_tungstenite(frame: ts::protocol::CloseFrame) -> Self {
        Self {
            code: frame.code.into(),
            reason: Utf8Bytes(frame.reason),
        }
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.reason)
    }
}

/// A WebSocket message.
///
/// Pings are answered automatically; they are still handed to the
/// application for information, as are pongs. A `Close` message is the
/// peer's close frame; the reply is sent for you.
///
/// ```
/// use hyperws::Message;
///
/// let msg = Message::text("hi");
/// assert_eq!(msg.as_text(), Some("hi"));
/// assert_eq!(Message::binary(vec![1, 2, 3]).len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; the payload is valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping, with at most 125 bytes of payload. Answered automatically.
    Ping(Bytes),
    /// A pong, with at most 125 bytes of payload.
    Pong(Bytes),
    /// A close frame, with an optional code and reason.
    Close(Option<CloseFrame>),
}

impl Message {
    /// Creates a text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// Creates a binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// Creates a close message with a code and a reason.
    pub fn close(code: u16, reason: impl Into<Utf8Bytes>) -> Self {
        Self::Close(Some(CloseFrame::new(code, reason)))
    }

    /// The text, if this is a text message.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// The payload's length in bytes (for a close frame: code and reason).
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(data) | Self::Ping(data) | Self::Pong(data) => data.len(),
            Self::Close(frame) => frame.as_ref().map_or(0, |f| 2 + f.reason.len()),
        }
    }

    /// Whether the payload is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a text or binary message (not a control frame).
    #[must_use]
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Text(_) | Self::Binary(_))
    }

    /// The payload as bytes, without copying.
    #[must_use]
    pub fn into_data(self) -> Bytes {
        match self {
            Self::Text(text) => text.into(),
            Self::Binary(data) | Self::Ping(data) | Self::Pong(data) => data,
            Self::Close(frame) => frame.map_or_else(Bytes::new, |f| f.reason.into()),
        }
    }

    pub(crate) fn into_tungstenite(self) -> ts::Message {
        match self {
            Self::Text(text) => ts::Message::Text(text.into_tungstenite()),
            Self::Binary(data) => ts::Message::Binary(data),
            Self::Ping(data) => ts::Message::Ping(data),
            Self::Pong(data) => ts::Message::Pong(data),
            Self::Close(frame) => ts::Message::Close(frame.map(CloseFrame::into_tungstenite)),
        }
    }

    pub(crate) fn from_tungstenite(msg: ts::Message) -> Self {
        match msg {
            ts::Message::Text(text) => Self::Text(Utf8Bytes(text)),
            ts::Message::Binary(data) => Self::Binary(data),
            ts::Message::Ping(data) => Self::Ping(data),
            ts::Message::Pong(data) => Self::Pong(data),
            ts::Message::Close(frame) => Self::Close(frame.map(CloseFrame::from_tungstenite)),
            // tungstenite documents that reading never yields a raw frame;
            // should one appear, hand over its payload rather than panic.
            ts::Message::Frame(frame) => Self::Binary(frame.into_payload()),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::binary(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_keep_the_same_buffer() {
        let data = Bytes::from(vec![7u8; 1024]);
        let ptr = data.as_ptr();
        let ts = Message::Binary(data).into_tungstenite();
        let back = Message::from_tungstenite(ts);
        assert_eq!(back.into_data().as_ptr(), ptr);
    }

    #[test]
    fn close_frame_round_trips() {
        let msg = Message::close(close_code::SIZE, "too big");
        let back = Message::from_tungstenite(msg.clone().into_tungstenite());
        assert_eq!(back, msg);
        assert_eq!(back.len(), 2 + "too big".len());
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(Utf8Bytes::try_from(vec![0xff, 0xfe]).is_err());
    }
}
