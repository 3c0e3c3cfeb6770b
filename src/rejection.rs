//! Why a request is not a valid WebSocket handshake: one type per failure,
//! each an HTTP response with the right status and a one-line reason.

use http::{header, HeaderName, HeaderValue, StatusCode};

/// Display, `Error` and `IntoResponse` for a rejection, all from its public
/// `status()` and `body_text()` (and, with `header:`, a method giving one
/// more response header): every rejection of the crate, upgrade and
/// extractor alike, is written this way.
macro_rules! impl_rejection {
    ($name:ty $(, header: $header:ident)?) => {
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.body_text())
            }
        }

        impl ::std::error::Error for $name {}

        impl $crate::response::IntoResponse for $name {
            fn into_response(self) -> $crate::response::Response {
                #[allow(unused_mut)]
                let mut res = $crate::response::plain_text(self.status(), self.body_text());
                $(
                    if let Some((name, value)) = self.$header() {
                        res.headers_mut().insert(name, value);
                    }
                )?
                res
            }
        }
    };
}
#[cfg_attr(not(feature = "router"), allow(unused_imports))]
pub(crate) use impl_rejection;

/// A handshake rejection: a unit struct with a fixed status and reason.
macro_rules! rejection {
    (
        $(#[$doc:meta])*
        $name:ident, $status:ident, $body:literal $(, $header:expr => $value:literal)?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[non_exhaustive]
        pub struct $name;

        impl $name {
            /// The HTTP status this rejection answers with.
            #[must_use]
            pub fn status(&self) -> StatusCode {
                StatusCode::$status
            }

            /// The one-line reason sent as the body.
            #[must_use]
            pub fn body_text(&self) -> String {
                $body.to_owned()
            }

            fn header(&self) -> Option<(HeaderName, HeaderValue)> {
                None$(.or(Some(($header, HeaderValue::from_static($value)))))?
            }
        }

        impl_rejection!($name, header: header);
    };
}

rejection! {
    /// An HTTP/1.1 upgrade request whose method is not `GET` (405, `Allow: GET`).
    MethodNotGet, METHOD_NOT_ALLOWED, "WebSocket upgrade requests must use GET",
    header::ALLOW => "GET"
}

rejection! {
    /// An HTTP/2 request whose method is not `CONNECT` (405, `Allow: CONNECT`).
    MethodNotConnect, METHOD_NOT_ALLOWED,
    "WebSocket over HTTP/2 requires an extended CONNECT request",
    header::ALLOW => "CONNECT"
}

rejection! {
    /// A request older than HTTP/1.1 (400).
    HttpVersionTooOld, BAD_REQUEST, "WebSocket upgrades require HTTP/1.1 or later"
}

rejection! {
    /// An HTTP/1.1 request without a `Host` header (400).
    MissingHost, BAD_REQUEST, "missing Host header"
}

rejection! {
    /// `Connection` does not list the `upgrade` token (400).
    InvalidConnectionHeader, BAD_REQUEST, "Connection header must contain the token 'upgrade'"
}

rejection! {
    /// `Upgrade` does not list `websocket` (400).
    InvalidUpgradeHeader, BAD_REQUEST, "Upgrade header must contain 'websocket'"
}

rejection! {
    /// An HTTP/2 CONNECT whose `:protocol` is not `websocket` (400).
    InvalidProtocolPseudoHeader, BAD_REQUEST, ":protocol must be 'websocket'"
}

rejection! {
    /// `Sec-WebSocket-Version` is missing or not 13 (426 with
    /// `Sec-WebSocket-Version: 13`, as RFC 6455 §4.2.2 asks).
    UnsupportedVersion, UPGRADE_REQUIRED, "Sec-WebSocket-Version must be 13",
    header::SEC_WEBSOCKET_VERSION => "13"
}

rejection! {
    /// `Sec-WebSocket-Key` is missing, empty, or not 16 bytes in base64 (400).
    InvalidKey, BAD_REQUEST, "Sec-WebSocket-Key must be 16 bytes encoded in base64"
}

rejection! {
    /// `Sec-WebSocket-Key` or `Sec-WebSocket-Version` appears more than once (400).
    DuplicateHeader, BAD_REQUEST, "Sec-WebSocket-Key and Sec-WebSocket-Version must appear once"
}

rejection! {
    /// A `Sec-WebSocket-Protocol` line that is empty or not visible ASCII (400).
    InvalidProtocolHeader, BAD_REQUEST, "Sec-WebSocket-Protocol must be a list of tokens"
}

rejection! {
    /// The configured origin policy refused the `Origin` header (403).
    OriginRefused, FORBIDDEN, "origin not allowed"
}

rejection! {
    /// A protocol is required and the client offered none the server speaks (400).
    NoMatchingProtocol, BAD_REQUEST, "none of the offered subprotocols is supported"
}

rejection! {
    /// The server is at its limit of open WebSockets (503).
    TooManyWebSockets, SERVICE_UNAVAILABLE, "server is at its limit of open WebSockets"
}

rejection! {
    /// hyper cannot upgrade this connection: the request carries no upgrade
    /// handle (it was taken already, or the server was built without upgrade
    /// support, e.g. HTTP/2 without extended CONNECT) (500).
    ConnectionNotUpgradable, INTERNAL_SERVER_ERROR, "connection cannot be upgraded"
}

macro_rules! rejection_enum {
    ($($variant:ident => $reason:literal),+ $(,)?) => {
        /// Why a request is not a WebSocket handshake this server accepts.
        ///
        /// Each variant is a response: return it from a handler, or call
        /// [`IntoResponse::into_response`](crate::IntoResponse::into_response).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum WebSocketUpgradeRejection {
            $(
                #[doc = concat!("See [`", stringify!($variant), "`].")]
                $variant($variant),
            )+
        }

        impl WebSocketUpgradeRejection {
            /// The HTTP status this rejection answers with.
            #[must_use]
            pub fn status(&self) -> StatusCode {
                match self { $(Self::$variant(r) => r.status(),)+ }
            }

            /// The one-line reason sent as the body.
            #[must_use]
            pub fn body_text(&self) -> String {
                match self { $(Self::$variant(r) => r.body_text(),)+ }
            }

            /// A short, stable name for the failure (`origin_refused`,
            /// `invalid_key`, ...), as logs and the `reason` label of
            /// `hyperws_handshakes_total` carry it.
            #[must_use]
            pub fn reason(&self) -> &'static str {
                match self { $(Self::$variant(_) => $reason,)+ }
            }

            fn header(&self) -> Option<(HeaderName, HeaderValue)> {
                match self { $(Self::$variant(r) => r.header(),)+ }
            }
        }

        impl_rejection!(WebSocketUpgradeRejection, header: header);

        $(
            impl From<$variant> for WebSocketUpgradeRejection {
                fn from(r: $variant) -> Self {
                    Self::$variant(r)
                }
            }
        )+
    };
}

rejection_enum!(
    MethodNotGet => "method_not_get",
    MethodNotConnect => "method_not_connect",
    HttpVersionTooOld => "http_version_too_old",
    MissingHost => "missing_host",
    InvalidConnectionHeader => "invalid_connection_header",
    InvalidUpgradeHeader => "invalid_upgrade_header",
    InvalidProtocolPseudoHeader => "invalid_protocol_pseudo_header",
    UnsupportedVersion => "unsupported_version",
    InvalidKey => "invalid_key",
    DuplicateHeader => "duplicate_header",
    InvalidProtocolHeader => "invalid_protocol_header",
    OriginRefused => "origin_refused",
    NoMatchingProtocol => "no_matching_protocol",
    TooManyWebSockets => "too_many_websockets",
    ConnectionNotUpgradable => "connection_not_upgradable",
);
