//! Negotiating permessage-deflate (RFC 7692 §5, §7): reading the client's
//! offers from every `Sec-WebSocket-Extensions` line, taking the first one
//! this server can accept, and writing the answer.

use http::HeaderMap;
#[cfg(any(test, feature = "__fuzz"))]
use http::HeaderValue;

use super::{Deflate, DeflateParams};

const NAME: &str = "permessage-deflate";
/// zlib cannot produce a raw deflate stream with an 8-bit window (it uses
/// 9 instead), so the smallest window this server can promise is 9.
const MIN_SERVER_WINDOW: u8 = 9;

/// One extension offer: its name and parameters, values unquoted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Offer {
    pub(crate) name: String,
    pub(crate) params: Vec<(String, Option<String>)>,
}

/// Every offer in every `Sec-WebSocket-Extensions` line, in order. A line
/// that is not valid text, or an element that breaks the grammar, is
/// skipped: it is declined, not an error.
pub(crate) fn offers(headers: &HeaderMap) -> Vec<Offer> {
    let mut all = Vec::new();
    for line in headers.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS) {
        parse_line(line.as_bytes(), &mut all);
    }
    all
}

/// The permessage-deflate offers among all extension offers, in order.
pub(crate) fn deflate_offers(headers: &HeaderMap) -> Vec<Offer> {
    if !headers.contains_key(http::header::SEC_WEBSOCKET_EXTENSIONS) {
        return Vec::new();
    }
    let mut all = offers(headers);
    all.retain(|offer| offer.name.eq_ignore_ascii_case(NAME));
    all
}

/// The first acceptable permessage-deflate offer, as negotiated with these
/// settings, and the response header that accepts it (what the upgrade
/// does, in one call, for the tests and the fuzz target).
#[cfg(any(test, feature = "__fuzz"))]
pub(crate) fn negotiate(
    headers: &HeaderMap,
    settings: &Deflate,
) -> Option<(DeflateParams, HeaderValue)> {
    offers(headers)
        .iter()
        .filter(|offer| offer.name.eq_ignore_ascii_case(NAME))
        .find_map(|offer| accept(offer, settings))
        .and_then(|params| Some((params, HeaderValue::from_str(&params.response()).ok()?)))
}

/// The parameters this server answers an offer with, or `None` when the
/// offer must be declined (RFC 7692 §5: unknown or repeated parameter, bad
/// value).
pub(crate) fn accept(offer: &Offer, settings: &Deflate) -> Option<DeflateParams> {
    let mut server_no_context_takeover = false;
    let mut client_no_context_takeover = false;
    let mut server_max_window_bits: Option<u8> = None;
    // `Some(None)`: offered without a value.
    let mut client_max_window_bits: Option<Option<u8>> = None;
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &offer.params {
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => server_no_context_takeover = true,
            ("client_no_context_takeover", None) => client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => server_max_window_bits = Some(window_bits(v)?),
            ("client_max_window_bits", None) => client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(v)) => {
                client_max_window_bits = Some(Some(window_bits(v)?))
            }
            _ => return None,
        }
        seen.push(name);
    }
    // Our compressor's window: what we want, never more than the client
    // allows, and never below what zlib can produce.
    let server_bits = match server_max_window_bits {
        Some(limit) if limit < MIN_SERVER_WINDOW => return None,
        Some(limit) => settings.window_bits.min(limit),
        None => settings.window_bits,
    };
    // The client's window: only limited when it said it can be (§7.1.2.2).
    let client_bits =
        client_max_window_bits.map(|offered| settings.window_bits.min(offered.unwrap_or(15)));
    let no_takeover = !settings.context_takeover;
    Some(DeflateParams {
        server_no_context_takeover: server_no_context_takeover || no_takeover,
        client_no_context_takeover: client_no_context_takeover || no_takeover,
        server_max_window_bits: server_bits,
        answer_server_window: server_max_window_bits.is_some(),
        client_max_window_bits: client_bits.unwrap_or(15),
        answer_client_window: client_bits.is_some(),
    })
}

/// A window size: a decimal 8 to 15, with no leading zero.
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [b'8'] => Some(8),
        [b'9'] => Some(9),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value that accepts these parameters.
    pub(crate) fn response(&self) -> String {
        let mut out = String::from(NAME);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        // Answered only when offered: a smaller window than the client
        // expects needs no announcement (its inflater copes), and some
        // clients refuse parameters they did not offer.
        if self.answer_server_window {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.answer_client_window {
            out.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        out
    }
}

// The grammar (RFC 6455 §9.1, RFC 9110 §5.6):
//   extension-list = 1#( token *( OWS ";" OWS param ) )
//   param          = token [ BWS "=" BWS ( token / quoted-string ) ]

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn skip_ows(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
        i += 1;
    }
    i
}

fn token(line: &[u8], start: usize) -> (Option<String>, usize) {
    let mut i = start;
    while i < line.len() && is_tchar(line[i]) {
        i += 1;
    }
    if i == start {
        return (None, i);
    }
    (
        Some(String::from_utf8_lossy(&line[start..i]).into_owned()),
        i,
    )
}

/// A quoted-string starting at `start` (on its `"`), unescaped; `None` when
/// it never ends or holds a byte it may not.
fn quoted(line: &[u8], start: usize) -> (Option<String>, usize) {
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < line.len() {
        match line[i] {
            b'"' => return (Some(String::from_utf8_lossy(&out).into_owned()), i + 1),
            b'\\' if i + 1 < line.len() => {
                out.push(line[i + 1]);
                i += 2;
            }
            b if b == b'\t' || (b' '..=b'~').contains(&b) => {
                out.push(b);
                i += 1;
            }
            _ => return (None, line.len()),
        }
    }
    (None, line.len())
}

/// Skips to just after the next comma outside a quoted-string.
fn skip_element(line: &[u8], mut i: usize) -> usize {
    let mut in_quotes = false;
    while i < line.len() {
        match line[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

fn parse_line(line: &[u8], into: &mut Vec<Offer>) {
    let mut i = 0;
    while i < line.len() {
        let start = i;
        match parse_element(line, start) {
            Some((offer, end)) => {
                into.extend(offer);
                i = end;
            }
            None => i = skip_element(line, start),
        }
    }
}

/// One element of the list and the position after its comma; `Ok(None)`
/// for an empty element (allowed by the list grammar).
fn parse_element(line: &[u8], start: usize) -> Option<(Option<Offer>, usize)> {
    let mut i = skip_ows(line, start);
    if i == line.len() {
        return Some((None, i));
    }
    if line[i] == b',' {
        return Some((None, i + 1));
    }
    let (name, next) = token(line, i);
    let name = name?;
    i = next;
    let mut params = Vec::new();
    loop {
        i = skip_ows(line, i);
        match line.get(i) {
            None => return Some((Some(Offer { name, params }), i)),
            Some(b',') => return Some((Some(Offer { name, params }), i + 1)),
            Some(b';') => {}
            Some(_) => return None,
        }
        i = skip_ows(line, i + 1);
        let (param, next) = token(line, i);
        let param = param?;
        i = skip_ows(line, next);
        let mut value = None;
        if line.get(i) == Some(&b'=') {
            i = skip_ows(line, i + 1);
            let (v, next) = if line.get(i) == Some(&b'"') {
                let (v, next) = quoted(line, i);
                // A quoted value must still be a token once unquoted.
                (v.filter(|v| !v.is_empty() && v.bytes().all(is_tchar)), next)
            } else {
                token(line, i)
            };
            value = Some(v?);
            i = next;
        }
        params.push((param, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(
                http::header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_str(line).unwrap(),
            );
        }
        map
    }

    fn answer(lines: &[&str], settings: &Deflate) -> Option<String> {
        negotiate(&headers(lines), settings).map(|(_, h)| h.to_str().unwrap().to_owned())
    }

    fn dedicated() -> Deflate {
        Deflate::dedicated().context_takeover(true).window_bits(15)
    }

    #[test]
    fn nothing_offered_nothing_answered() {
        assert_eq!(answer(&[], &Deflate::shared()), None);
        assert_eq!(
            answer(&["x-webkit-deflate-frame"], &Deflate::shared()),
            None
        );
    }

    #[test]
    fn a_bare_offer_is_accepted() {
        assert_eq!(
            answer(&["permessage-deflate"], &dedicated()).as_deref(),
            Some("permessage-deflate")
        );
        // Shared mode never keeps a context, and says so for both sides.
        assert_eq!(
            answer(&["permessage-deflate"], &Deflate::shared()).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
    }

    #[test]
    fn browsers_offer_is_accepted() {
        // What Chromium and Firefox send.
        let (params, header) = negotiate(
            &headers(&["permessage-deflate; client_max_window_bits"]),
            &dedicated(),
        )
        .unwrap();
        assert_eq!(header, "permessage-deflate; client_max_window_bits=15");
        assert_eq!(params.client_max_window_bits(), 15);
        assert!(!params.server_no_context_takeover());
    }

    #[test]
    fn each_parameter_is_honoured() {
        let settings = dedicated();
        assert_eq!(
            answer(
                &["permessage-deflate; server_no_context_takeover"],
                &settings
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(
            answer(
                &["permessage-deflate; client_no_context_takeover"],
                &settings
            )
            .as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
        assert_eq!(
            answer(
                &["permessage-deflate; server_max_window_bits=10"],
                &settings
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        assert_eq!(
            answer(
                &["permessage-deflate; client_max_window_bits=11"],
                &settings
            )
            .as_deref(),
            Some("permessage-deflate; client_max_window_bits=11")
        );
        // The server's own smaller window wins over the client's larger one.
        let small = Deflate::dedicated().context_takeover(true).window_bits(12);
        assert_eq!(
            answer(
                &["permessage-deflate; server_max_window_bits=14; client_max_window_bits"],
                &small
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
        );
        // Not offered, not answered: the server still uses its 12 bits.
        let (params, header) = negotiate(&headers(&["permessage-deflate"]), &small).unwrap();
        assert_eq!(header, "permessage-deflate");
        assert_eq!(params.server_max_window_bits(), 12);
        assert_eq!(params.client_max_window_bits(), 15);
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_one_taken() {
        let settings = dedicated();
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"\"",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; mystery",
            "permessage-deflate; ",
            "permessage-deflate; client_max_window_bits=\"10",
        ] {
            assert_eq!(answer(&[bad], &settings), None, "{bad}");
            let good = "permessage-deflate; server_max_window_bits=11";
            let expected = Some("permessage-deflate; server_max_window_bits=11");
            assert_eq!(
                answer(&[bad, good], &settings).as_deref(),
                expected,
                "{bad}; next line"
            );
            // On the same line too, unless an unterminated quote swallows
            // the rest of it.
            if !bad.ends_with("\"10") {
                let line = format!("{bad}, {good}");
                assert_eq!(answer(&[&line], &settings).as_deref(), expected, "{line}");
            }
        }
    }

    #[test]
    fn quoted_values_are_unquoted() {
        assert_eq!(
            answer(
                &["permessage-deflate; client_max_window_bits=\"10\""],
                &dedicated()
            )
            .as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
        assert_eq!(
            answer(
                &["permessage-deflate; client_max_window_bits=\"1\\0\""],
                &dedicated()
            )
            .as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
    }

    #[test]
    fn offers_span_every_line_in_order() {
        let settings = dedicated();
        assert_eq!(
            answer(
                &[
                    "foo, permessage-deflate; bogus",
                    "permessage-deflate; client_no_context_takeover"
                ],
                &settings
            )
            .as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
        let all = offers(&headers(&["a; x=\"y\", b", ",, c ;d"]));
        let names: Vec<_> = all.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(all[0].params, [("x".to_owned(), Some("y".to_owned()))]);
        assert_eq!(all[2].params, [("d".to_owned(), None)]);
        // A quoted value must be a token once unquoted (RFC 6455 §9.1): this
        // element is dropped, and the comma inside its quotes does not end
        // it early.
        let all = offers(&headers(&["a; x=\"y,z\", b"]));
        let names: Vec<_> = all.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn names_and_parameters_ignore_case() {
        assert_eq!(
            answer(
                &["Permessage-Deflate; Server_No_Context_Takeover"],
                &dedicated()
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
    }

    #[test]
    fn no_context_takeover_combinations() {
        let takeover = dedicated();
        let none = Deflate::dedicated();
        for (offer, settings, server, client) in [
            ("permessage-deflate", &takeover, false, false),
            (
                "permessage-deflate; server_no_context_takeover",
                &takeover,
                true,
                false,
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                &takeover,
                false,
                true,
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                &takeover,
                true,
                true,
            ),
            ("permessage-deflate", &none, true, true),
        ] {
            let (params, _) = negotiate(&headers(&[offer]), settings).unwrap();
            assert_eq!(params.server_no_context_takeover(), server, "{offer}");
            assert_eq!(params.client_no_context_takeover(), client, "{offer}");
        }
    }
}
