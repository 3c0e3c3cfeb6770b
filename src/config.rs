//! [`Config`]: transport buffers and limits, subprotocols and origin policy.
//!
//! Every default is chosen for a server holding many connections at once;
//! `docs/configuration.md` gives the reasoning and the cost of each.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Settings for WebSocket connections, written in code.
///
/// Cheap to clone (the lists are shared), so a router can hand one to every
/// request. Build it with the setters; new settings can be added without
/// breaking anyone.
///
/// ```
/// use hyperws::{Config, OriginPolicy};
///
/// let config = Config::default()
///     .max_message_size(16 * 1024 * 1024)
///     .protocols(["chat.v2", "chat.v1"])
///     .origin(OriginPolicy::allow(["https://example.com"]));
/// assert_eq!(config.message_size_limit(), Some(16 * 1024 * 1024));
/// assert!(config.supported_protocols().eq(["chat.v2", "chat.v1"]));
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) read_buffer_size: usize,
    pub(crate) write_buffer_size: usize,
    pub(crate) max_write_buffer_size: usize,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) max_frame_size: Option<usize>,
    pub(crate) accept_unmasked_frames: bool,
    pub(crate) protocols: Arc<[Box<str>]>,
    pub(crate) protocol_policy: ProtocolPolicy,
    pub(crate) require_protocol: bool,
    pub(crate) origin: OriginPolicy,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<crate::deflate::Deflate>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            read_buffer_size: 64 * KIB,
            write_buffer_size: 16 * KIB,
            max_write_buffer_size: 16 * KIB,
            max_message_size: Some(4 * MIB),
            max_frame_size: Some(4 * MIB),
            accept_unmasked_frames: false,
            protocols: Arc::new([]),
            protocol_policy: ProtocolPolicy::ServerPreference,
            require_protocol: false,
            origin: OriginPolicy::any(),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(20),
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

impl Config {
    /// The read buffer a connection uses while messages are moving, and the
    /// most bytes asked of the socket in one read. Default: 64 KiB.
    ///
    /// An idle connection holds no read buffer at all: once everything
    /// received has been handed to the application and everything sent has
    /// been written, the buffers are dropped, and allocated again when the
    /// next bytes arrive. So this costs memory only for connections that are
    /// busy at that moment, and a larger value makes large messages cost
    /// fewer system calls. Values under 14 bytes (the largest frame header)
    /// are raised to 14.
    #[must_use]
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(14);
        self
    }

    /// Outgoing frames are gathered until this many bytes are buffered, then
    /// written to the socket in one call. Default: 16 KiB.
    ///
    /// A flush always writes what is buffered, so this only matters when
    /// several messages are queued before a flush. The buffer grows only as
    /// needed.
    #[must_use]
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// The most unwritten output a connection may hold before it stops
    /// taking more. Default: 16 KiB (values under
    /// [`write_buffer_size`](Self::write_buffer_size) are raised to it).
    ///
    /// While more than this waits for a peer that does not read, `send`
    /// waits (backpressure), and nothing more is read from that peer, so
    /// that answers it is owed (pongs to a flood of pings) cannot pile up:
    /// such a connection holds about this plus its read buffer. This bounds
    /// what is *queued*, not the size of one message: a message larger than
    /// this is still sent, once what was queued ahead of it is written.
    #[must_use]
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.max_write_buffer_size = bytes;
        self
    }

    /// The largest incoming message, after reassembling its fragments.
    /// Default: 4 MiB. `None` removes the limit (not advised: a peer could
    /// then make the server buffer any amount).
    ///
    /// A larger message closes the connection with code 1009.
    #[must_use]
    pub fn max_message_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.max_message_size = bytes.into();
        self
    }

    /// The largest incoming frame. Default: 4 MiB. A larger frame closes the
    /// connection with code 1009, on its header, before its payload is read.
    ///
    /// Never more than [`max_message_size`](Self::max_message_size): a frame
    /// larger than a whole message may be cannot be of any use, so the
    /// smaller of the two applies to frames.
    #[must_use]
    pub fn max_frame_size(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.max_frame_size = bytes.into();
        self
    }

    /// Accept frames a client sent without masking. Default: `false`, as
    /// RFC 6455 §5.1 requires: an unmasked frame closes the connection with
    /// 1002. Only for peers known to be broken.
    #[must_use]
    pub fn accept_unmasked_frames(mut self, accept: bool) -> Self {
        self.accept_unmasked_frames = accept;
        self
    }

    /// The subprotocols the server speaks, most preferred first. Default:
    /// none.
    ///
    /// [`WebSocketUpgrade::protocols`](crate::WebSocketUpgrade::protocols)
    /// overrides this list for one handler.
    #[must_use]
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.protocols = protocols
            .into_iter()
            .map(|p| p.into().into_boxed_str())
            .collect();
        self
    }

    /// Whose preference order picks the subprotocol. Default:
    /// [`ProtocolPolicy::ServerPreference`].
    #[must_use]
    pub fn protocol_policy(mut self, policy: ProtocolPolicy) -> Self {
        self.protocol_policy = policy;
        self
    }

    /// Refuse the handshake with `400 Bad Request` when the client offers
    /// none of the server's subprotocols. Default: `false` (the connection
    /// goes ahead with no subprotocol, as RFC 6455 allows).
    #[must_use]
    pub fn require_protocol(mut self, require: bool) -> Self {
        self.require_protocol = require;
        self
    }

    /// Which `Origin`s may open a connection. Default: [`OriginPolicy::any`].
    /// A refused origin gets `403 Forbidden` before any upgrade.
    #[must_use]
    pub fn origin(mut self, policy: OriginPolicy) -> Self {
        self.origin = policy;
        self
    }

    /// How long a connection may stay quiet, counted from the last byte
    /// received, before the server pings it. Default: 30 s. `None` turns
    /// keepalive off.
    ///
    /// Anything received (a message, a ping, a pong) counts as a sign of
    /// life. The ping goes out while the session waits in `recv` or `send`
    /// (or its split halves do); a session that does neither for longer
    /// than an interval pings when it next does. 30 s is below the idle
    /// timeouts of common proxies and NATs (60 s and more).
    #[must_use]
    pub fn ping_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.ping_interval = interval.into();
        self
    }

    /// How long to wait, after a ping, for anything from the peer before
    /// closing the connection as dead (close code 1011, and `recv` returns
    /// an error for which [`Error::is_timeout`](crate::Error::is_timeout)
    /// is true). Default: 20 s, so a dead peer is found within 50 s of the
    /// last byte it sent.
    #[must_use]
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// Offers permessage-deflate compression (RFC 7692) to clients that ask
    /// for it; `None` (the default) declines it. See [`Deflate`] for the two
    /// modes, and `docs/configuration.md` for what each costs.
    ///
    /// [`Deflate`]: crate::Deflate
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn deflate(mut self, deflate: impl Into<Option<crate::deflate::Deflate>>) -> Self {
        self.deflate = deflate.into();
        self
    }

    /// The largest incoming message accepted ([`max_message_size`](Self::max_message_size)),
    /// `None` for no limit.
    #[must_use]
    pub fn message_size_limit(&self) -> Option<usize> {
        self.max_message_size
    }

    /// The subprotocols the server speaks ([`protocols`](Self::protocols)),
    /// most preferred first.
    pub fn supported_protocols(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().map(|p| &**p)
    }

    #[cfg(feature = "deflate")]
    fn deflate_settings(&self) -> Option<crate::deflate::Deflate> {
        self.deflate
    }

    #[cfg(not(feature = "deflate"))]
    fn deflate_settings(&self) -> Option<()> {
        None
    }

    /// The tungstenite settings these map onto.
    pub(crate) fn transport(&self) -> WebSocketConfig {
        let write = self.write_buffer_size;
        // The frame limit never exceeds the message limit, so an oversized
        // frame is refused on its header instead of being read first.
        let frame = match (self.max_frame_size, self.max_message_size) {
            (Some(frame), Some(message)) => Some(frame.min(message)),
            (frame, message) => frame.or(message),
        };
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(write)
            // tungstenite's limit refuses any single message larger than it;
            // what is queued is bounded by the socket layer instead (see
            // `max_write_buffer_size`), so tungstenite's is off.
            .max_write_buffer_size(usize::MAX)
            .max_message_size(self.max_message_size)
            .max_frame_size(frame)
            .accept_unmasked_frames(self.accept_unmasked_frames)
    }

    /// The most unwritten output before a connection stops taking more.
    pub(crate) fn write_limit(&self) -> usize {
        self.max_write_buffer_size.max(self.write_buffer_size)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("read_buffer_size", &self.read_buffer_size)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("max_write_buffer_size", &self.max_write_buffer_size)
            .field("max_message_size", &self.max_message_size)
            .field("max_frame_size", &self.max_frame_size)
            .field("accept_unmasked_frames", &self.accept_unmasked_frames)
            .field("protocols", &self.protocols)
            .field("protocol_policy", &self.protocol_policy)
            .field("deflate", &self.deflate_settings())
            .field("require_protocol", &self.require_protocol)
            .field("origin", &self.origin)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .finish()
    }
}

/// How the subprotocol is chosen when the client offers several that the
/// server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProtocolPolicy {
    /// The first protocol in the server's list that the client offered.
    #[default]
    ServerPreference,
    /// The first protocol in the client's offer that the server speaks.
    ClientPreference,
}

type OriginPredicate = dyn Fn(Option<&str>) -> bool + Send + Sync;

/// Which `Origin` header values may open a WebSocket.
///
/// Browsers always send `Origin`; other clients usually do not, and can put
/// anything there. The policy therefore protects browser users against
/// cross-site WebSocket hijacking; it does not authenticate anyone.
///
/// ```
/// use hyperws::OriginPolicy;
///
/// let list = OriginPolicy::allow(["https://example.com"]);
/// assert!(list.allows(Some("https://EXAMPLE.com")));
/// assert!(!list.allows(Some("https://evil.example")));
/// assert!(list.allows(None)); // not a browser
///
/// let strict = OriginPolicy::predicate(|origin| origin == Some("https://example.com"));
/// assert!(!strict.allows(None));
/// ```
#[derive(Clone)]
pub struct OriginPolicy(OriginInner);

#[derive(Clone)]
enum OriginInner {
    Any,
    SameOrigin,
    List(Arc<[Box<str>]>),
    Predicate(Arc<OriginPredicate>),
}

impl OriginPolicy {
    /// Every origin is allowed (the default).
    #[must_use]
    pub fn any() -> Self {
        Self(OriginInner::Any)
    }

    /// Only pages served by this same server: the `Origin`'s `host[:port]`
    /// must be the request's `Host` (on HTTP/2, its `:authority`), without
    /// regard to ASCII case. A request without an `Origin` header, which is
    /// not from a browser, is allowed. This stops cross-site WebSocket
    /// hijacking (a page elsewhere opening a socket with the visitor's
    /// cookies) without a list to keep up to date; behind a proxy that
    /// rewrites `Host`, use [`allow`](Self::allow) instead.
    ///
    /// ```
    /// use hyperws::OriginPolicy;
    ///
    /// let same = OriginPolicy::same_origin();
    /// let host = Some("chat.example:8080");
    /// assert!(same.allows_for_host(Some("https://chat.example:8080"), host));
    /// assert!(!same.allows_for_host(Some("https://evil.example"), host));
    /// assert!(same.allows_for_host(None, host));
    /// ```
    #[must_use]
    pub fn same_origin() -> Self {
        Self(OriginInner::SameOrigin)
    }

    /// Only these origins (compared without regard to ASCII case, as
    /// `scheme://host[:port]`). A request without an `Origin` header, which
    /// is not from a browser, is allowed; use
    /// [`predicate`](Self::predicate) to refuse those too.
    pub fn allow<I>(origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self(OriginInner::List(
            origins
                .into_iter()
                .map(|o| o.into().into_boxed_str())
                .collect(),
        ))
    }

    /// A function decides. It gets the `Origin` header, or `None` when the
    /// request has none. (A header that is not visible ASCII is refused by
    /// every policy but [`any`](Self::any).)
    pub fn predicate<F>(allow: F) -> Self
    where
        F: Fn(Option<&str>) -> bool + Send + Sync + 'static,
    {
        Self(OriginInner::Predicate(Arc::new(allow)))
    }

    /// Whether a request with this `Origin` may connect. With
    /// [`same_origin`](Self::same_origin), which needs the request's host,
    /// every `Origin` is refused here: see
    /// [`allows_for_host`](Self::allows_for_host).
    #[must_use]
    pub fn allows(&self, origin: Option<&str>) -> bool {
        self.allows_for_host(origin, None)
    }

    /// Whether a request with this `Origin`, sent to this host (the `Host`
    /// header or HTTP/2 `:authority`), may connect.
    #[must_use]
    pub fn allows_for_host(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        match &self.0 {
            OriginInner::Any => true,
            OriginInner::SameOrigin => origin.is_none_or(|origin| {
                let authority = origin.split_once("://").map(|(_, rest)| rest);
                matches!((authority, host), (Some(a), Some(h)) if !a.is_empty() && a.eq_ignore_ascii_case(h))
            }),
            OriginInner::List(list) => {
                origin.is_none_or(|o| list.iter().any(|allowed| allowed.eq_ignore_ascii_case(o)))
            }
            OriginInner::Predicate(allow) => allow(origin),
        }
    }

    pub(crate) fn allows_header(&self, origin: Option<&HeaderValue>, host: Option<&str>) -> bool {
        match &self.0 {
            OriginInner::Any => true,
            // A header that is not visible ASCII is no origin a browser sends.
            _ => match origin.map(HeaderValue::to_str) {
                None => self.allows_for_host(None, host),
                Some(Ok(o)) => self.allows_for_host(Some(o), host),
                Some(Err(_)) => false,
            },
        }
    }
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self::any()
    }
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            OriginInner::Any => f.write_str("OriginPolicy::Any"),
            OriginInner::SameOrigin => f.write_str("OriginPolicy::SameOrigin"),
            OriginInner::List(list) => f.debug_tuple("OriginPolicy::Allow").field(list).finish(),
            OriginInner::Predicate(_) => f.write_str("OriginPolicy::Predicate(..)"),
        }
    }
}
