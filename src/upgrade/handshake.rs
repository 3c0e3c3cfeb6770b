//! The rules a request must follow to be a WebSocket opening handshake
//! (RFC 6455 §4.2.1 on HTTP/1.1, RFC 8441 §4 on HTTP/2), each failure its
//! own rejection, and the accept key of the answer (§4.2.2).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{header, Extensions, HeaderMap, HeaderValue, Method, Version};
use sha1::{Digest, Sha1};

#[cfg(not(feature = "http2"))]
use crate::rejection::ConnectionNotUpgradable;
use crate::rejection::{
    DuplicateHeader, HttpVersionTooOld, InvalidConnectionHeader, InvalidKey, InvalidProtocolHeader,
    InvalidUpgradeHeader, MethodNotGet, MissingHost, UnsupportedVersion, WebSocketUpgradeRejection,
};

/// The handshake's headers, found in one pass over the request's: a
/// lookup by name hashes the name each time, and a request has only a
/// handful of headers.
#[derive(Default)]
pub(super) struct Found<'a> {
    pub(super) host: Option<&'a HeaderValue>,
    connection_upgrade: bool,
    upgrade_websocket: bool,
    version: Single<'a>,
    key: Single<'a>,
    pub(super) origin: Single<'a>,
    /// Whether any `Sec-WebSocket-Protocol` line came.
    pub(super) protocols: bool,
    /// Whether any `Sec-WebSocket-Extensions` line came.
    pub(super) extensions: bool,
}

/// A header that must appear at most once: its first value, and whether
/// another followed.
#[derive(Default, Clone, Copy)]
pub(super) struct Single<'a> {
    pub(super) first: Option<&'a HeaderValue>,
    pub(super) repeated: bool,
}

impl<'a> Single<'a> {
    fn add(&mut self, value: &'a HeaderValue) {
        if self.first.is_some() {
            self.repeated = true;
        } else {
            self.first = Some(value);
        }
    }

    fn one(self) -> Result<Option<&'a HeaderValue>, WebSocketUpgradeRejection> {
        if self.repeated {
            return Err(DuplicateHeader.into());
        }
        Ok(self.first)
    }
}

/// Looks at every header line once.
pub(super) fn scan(headers: &HeaderMap) -> Found<'_> {
    let mut found = Found::default();
    for (name, value) in headers {
        if name == header::HOST {
            found.host.get_or_insert(value);
        } else if name == header::CONNECTION {
            found.connection_upgrade |= lists(value, "upgrade");
        } else if name == header::UPGRADE {
            found.upgrade_websocket |= lists(value, "websocket");
        } else if name == header::SEC_WEBSOCKET_VERSION {
            found.version.add(value);
        } else if name == header::SEC_WEBSOCKET_KEY {
            found.key.add(value);
        } else if name == header::ORIGIN {
            found.origin.add(value);
        } else if name == header::SEC_WEBSOCKET_PROTOCOL {
            found.protocols = true;
        } else if name == header::SEC_WEBSOCKET_EXTENSIONS {
            found.extensions = true;
        }
    }
    found
}

/// Checks the method, version and upgrade headers; returns the
/// `Sec-WebSocket-Key` to answer (`None` on HTTP/2, which has none).
pub(super) fn check_request(
    method: &Method,
    version: Version,
    found: &Found<'_>,
    extensions: &Extensions,
) -> Result<Option<HeaderValue>, WebSocketUpgradeRejection> {
    if version == Version::HTTP_2 {
        check_http2(method, extensions)?;
        check_version(found)?;
        return Ok(None);
    }
    if version < Version::HTTP_11 {
        return Err(HttpVersionTooOld.into());
    }
    if method != Method::GET {
        return Err(MethodNotGet.into());
    }
    if found.host.is_none() {
        return Err(MissingHost.into());
    }
    if !found.connection_upgrade {
        return Err(InvalidConnectionHeader.into());
    }
    if !found.upgrade_websocket {
        return Err(InvalidUpgradeHeader.into());
    }
    check_version(found)?;
    Ok(Some(check_key(found)?))
}

#[cfg(feature = "http2")]
fn check_http2(method: &Method, extensions: &Extensions) -> Result<(), WebSocketUpgradeRejection> {
    use crate::rejection::{InvalidProtocolPseudoHeader, MethodNotConnect};
    if method != Method::CONNECT {
        return Err(MethodNotConnect.into());
    }
    match extensions.get::<hyper::ext::Protocol>() {
        Some(p) if p.as_str().eq_ignore_ascii_case("websocket") => Ok(()),
        _ => Err(InvalidProtocolPseudoHeader.into()),
    }
}

#[cfg(not(feature = "http2"))]
fn check_http2(_: &Method, _: &Extensions) -> Result<(), WebSocketUpgradeRejection> {
    Err(ConnectionNotUpgradable.into())
}

/// Whether one line of a comma-separated header lists `token` (ASCII
/// case-insensitive).
fn lists(value: &HeaderValue, token: &str) -> bool {
    // Byte-wise: a token is ASCII, so no UTF-8 check of the whole line.
    value
        .as_bytes()
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn check_version(found: &Found<'_>) -> Result<(), WebSocketUpgradeRejection> {
    match found.version.one()? {
        Some(v) if v.as_bytes().trim_ascii() == b"13" => Ok(()),
        _ => Err(UnsupportedVersion.into()),
    }
}

fn check_key(found: &Found<'_>) -> Result<HeaderValue, WebSocketUpgradeRejection> {
    let key = found.key.one()?.ok_or(InvalidKey)?;
    if !is_base64_of_16_bytes(key.as_bytes().trim_ascii()) {
        return Err(InvalidKey.into());
    }
    Ok(key.clone())
}

/// Whether `key` is the canonical base64 of 16 bytes, as a decoder would
/// accept it: 22 characters of the alphabet, then `==`, the last character
/// carrying no bits past the 128th. Checked without decoding.
fn is_base64_of_16_bytes(key: &[u8]) -> bool {
    fn sextet(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let Some((body, b"==")) = key.split_last_chunk::<2>() else {
        return false;
    };
    body.len() == 22
        && body[..21].iter().all(|&c| sextet(c).is_some())
        // 16 bytes are 128 bits: the 22nd character holds 2 of them, its
        // low 4 bits must be zero.
        && sextet(body[21]).is_some_and(|v| v & 0x0F == 0)
}

/// Every subprotocol offered, over all `Sec-WebSocket-Protocol` lines, in
/// order.
pub(super) fn offered_protocols(
    headers: &HeaderMap,
) -> Result<Vec<Box<str>>, WebSocketUpgradeRejection> {
    let mut offered = Vec::new();
    for line in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let line = line.to_str().map_err(|_| InvalidProtocolHeader)?;
        for token in line.split(',').map(str::trim) {
            if token.is_empty() {
                return Err(InvalidProtocolHeader.into());
            }
            offered.push(token.into());
        }
    }
    Ok(offered)
}

/// `Sec-WebSocket-Accept`: base64(SHA-1(key + GUID)), RFC 6455 §4.2.2.
pub(super) fn accept_key(key: &[u8]) -> HeaderValue {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha1 = Sha1::new();
    sha1.update(key.trim_ascii());
    sha1.update(GUID);
    // 20 bytes are 28 base64 characters; encoded on the stack, so the
    // header value is the only allocation.
    let mut encoded = [0u8; 28];
    let len = BASE64
        .encode_slice(sha1.finalize(), &mut encoded)
        .unwrap_or(0);
    HeaderValue::from_bytes(&encoded[..len]).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        // RFC 6455 §1.3.
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn connection_tokens_are_parsed_as_a_list() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static("foo, UpGrade "),
        );
        assert!(scan(&headers).connection_upgrade);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrad"));
        assert!(!scan(&headers).connection_upgrade);
    }

    #[test]
    fn the_key_check_agrees_with_a_base64_decoder() {
        // Every 24-byte key built from a few interesting characters in the
        // last four places, against what the decoder says.
        let chars = b"AQgw/+=_a";
        for &a in chars {
            for &b in chars {
                for &c in chars {
                    for &d in chars {
                        let mut key = *b"AAAAAAAAAAAAAAAAAAAA____";
                        key[20..].copy_from_slice(&[a, b, c, d]);
                        let mut out = [0u8; 18];
                        let decoded = BASE64.decode_slice(key, &mut out) == Ok(16);
                        assert_eq!(is_base64_of_16_bytes(&key), decoded, "{key:?}");
                    }
                }
            }
        }
        assert!(!is_base64_of_16_bytes(b"AAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_base64_of_16_bytes(b"AAAAAAAAAAAAAAAAAAAAAAAAA=="));
    }

    #[test]
    fn keys_must_decode_to_sixteen_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="),
        );
        assert!(check_key(&scan(&headers)).is_ok());
        // 17 bytes.
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAAA="),
        );
        assert!(check_key(&scan(&headers)).is_err());
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("not base64 at all!!!!!!!"),
        );
        assert!(check_key(&scan(&headers)).is_err());
    }
}
