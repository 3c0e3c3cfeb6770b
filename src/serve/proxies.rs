//! [`TrustedProxies`]: which peers may say who the client is, and reading
//! what they say (`X-Forwarded-For`, or RFC 7239 `Forwarded`).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::header::{HeaderMap, FORWARDED};
use ipnet::IpNet;

use crate::error::Error;

/// The reverse proxies whose word on the client's address is taken.
///
/// Given to [`Serve::trusted_proxies`](crate::Serve::trusted_proxies): a
/// request whose TCP peer is one of these networks is taken to come from
/// the client that the proxy names, which [`ClientAddr`],
/// [`WebSocket::peer_addr`](crate::WebSocket::peer_addr) and the
/// WebSocket's span then report. A request from anyone else keeps its TCP
/// peer, whatever headers it sends.
///
/// The list is read right to left, the way proxies append to it: each
/// address added by a trusted hop is followed to the one before, and the
/// first untrusted address is the client. Only one header is read, the
/// one your proxy sets (`X-Forwarded-For` unless
/// [`forwarded`](Self::forwarded)): a proxy passes on any header it does
/// not set itself, so reading the other would let a client pick its own
/// address.
///
/// ```
/// # fn main() -> Result<(), hyperws::Error> {
/// use hyperws::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["127.0.0.1", "10.0.0.0/8", "::1"])?;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "203.0.113.7, 10.1.2.3".parse().unwrap());
/// // From the proxy on 10.0.0.5: the client is 203.0.113.7 (10.1.2.3 is a
/// // trusted hop).
/// let client = proxies.client_addr("10.0.0.5:40000".parse().unwrap(), &headers);
/// assert_eq!(client.ip().to_string(), "203.0.113.7");
/// // From anyone else, the header is ignored.
/// let direct = proxies.client_addr("198.51.100.1:5000".parse().unwrap(), &headers);
/// assert_eq!(direct.to_string(), "198.51.100.1:5000");
/// # Ok(())
/// # }
/// ```
///
/// [`ClientAddr`]: crate::extract::ClientAddr
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: Header,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    XForwardedFor,
    Forwarded,
}

impl TrustedProxies {
    /// Trusts these addresses (`127.0.0.1`, `::1`) and networks
    /// (`10.0.0.0/8`, `fd00::/8`), reading `X-Forwarded-For`.
    ///
    /// # Errors
    ///
    /// [`Error::is_config`] for an entry that is neither.
    pub fn new<I>(networks: I) -> Result<Self, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let networks = networks
            .into_iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| {
                        Error::config(format!(
                            "trusted proxy {entry:?} is not an IP address or network"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            networks,
            header: Header::XForwardedFor,
        })
    }

    /// Reads RFC 7239 `Forwarded` (its `for=` parameters) instead of
    /// `X-Forwarded-For`: for proxies that set it (nginx does not unless
    /// told to).
    #[must_use]
    pub fn forwarded(mut self) -> Self {
        self.header = Header::Forwarded;
        self
    }

    /// Whether `ip` is one of the trusted proxies.
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with these headers.
    /// An address a proxy gives without a port (`X-Forwarded-For` never
    /// has one) has port 0. An entry that is not an address (`unknown`,
    /// an obfuscated `_name`, garbage) ends the walk at the hop that wrote
    /// it.
    #[must_use]
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        let mut client = peer;
        let name = match self.header {
            Header::XForwardedFor => "x-forwarded-for",
            Header::Forwarded => FORWARDED.as_str(),
        };
        // The last line's last entry is the nearest hop's.
        for line in headers.get_all(name).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for entry in split_list(line).rev() {
                if !self.trusts(client.ip()) {
                    return client;
                }
                let said = match self.header {
                    Header::XForwardedFor => parse_node(entry),
                    Header::Forwarded => forwarded_for(entry).and_then(parse_node),
                };
                match said {
                    Some(addr) => client = addr,
                    None => return client,
                }
            }
        }
        client
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, as a dual-stack
/// socket reports IPv4 peers) is matched as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The comma-separated entries of a header line, commas inside quotes kept.
fn split_list(line: &str) -> impl DoubleEndedIterator<Item = &str> {
    let mut entries = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                entries.push(line[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(line[start..].trim());
    entries.into_iter().filter(|e| !e.is_empty())
}

/// The `for=` parameter of one `Forwarded` element (RFC 7239 §4), unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`
/// (RFC 7239 §6); anything else is not an address.
fn parse_node(node: &str) -> Option<SocketAddr> {
    if let Ok(addr) = SocketAddr::from_str(node) {
        return Some(addr);
    }
    let bare = node.trim_start_matches('[').trim_end_matches(']');
    IpAddr::from_str(bare).ok().map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_untrusted_address_from_the_right_is_the_client() {
        let proxies = TrustedProxies::new(["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let xff = headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2, 10.0.0.9")]);
        // 10.0.0.9 is trusted, 2.2.2.2 is not: it is the client, and the
        // 1.1.1.1 it claims to forward for is its own word.
        assert_eq!(
            proxies.client_addr(addr("127.0.0.1:1"), &xff),
            addr("2.2.2.2:0")
        );
        // Not from a proxy: the header is ignored.
        assert_eq!(
            proxies.client_addr(addr("3.3.3.3:7"), &xff),
            addr("3.3.3.3:7")
        );
        // Lines in order: the last line is the nearest hop's.
        let lines = headers(&[
            ("x-forwarded-for", "4.4.4.4"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(
            proxies.client_addr(addr("10.0.0.1:1"), &lines),
            addr("4.4.4.4:0")
        );
        // All trusted: the leftmost.
        let all = headers(&[("x-forwarded-for", "10.2.2.2, 10.3.3.3")]);
        assert_eq!(
            proxies.client_addr(addr("10.0.0.1:1"), &all),
            addr("10.2.2.2:0")
        );
        // No header.
        assert_eq!(
            proxies.client_addr(addr("10.0.0.1:1"), &HeaderMap::new()),
            addr("10.0.0.1:1")
        );
    }

    #[test]
    fn garbage_stops_at_the_hop_that_wrote_it() {
        let proxies = TrustedProxies::new(["127.0.0.1"]).unwrap();
        for value in ["not-an-ip", "unknown", "1.2.3.4.5", ""] {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(
                proxies.client_addr(addr("127.0.0.1:9"), &h),
                addr("127.0.0.1:9"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn forwarded_is_read_only_when_asked_and_carries_ports() {
        let h = headers(&[
            (
                "forwarded",
                r#"for=198.51.100.2;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.1"#,
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        let xff = TrustedProxies::new(["127.0.0.1"]).unwrap();
        assert_eq!(xff.client_addr(addr("127.0.0.1:1"), &h), addr("9.9.9.9:0"));
        let fwd = TrustedProxies::new(["127.0.0.1", "2001:db8::/32"])
            .unwrap()
            .forwarded();
        // The IPv6 hop is trusted, so the walk goes on to 198.51.100.2.
        assert_eq!(
            fwd.client_addr(addr("127.0.0.1:1"), &h),
            addr("198.51.100.2:0")
        );
        let strict = TrustedProxies::new(["127.0.0.1"]).unwrap().forwarded();
        assert_eq!(
            strict.client_addr(addr("127.0.0.1:1"), &h),
            addr("[2001:db8:cafe::17]:4711")
        );
        let hidden = headers(&[("forwarded", "for=_hidden, for=unknown")]);
        assert_eq!(
            strict.client_addr(addr("127.0.0.1:1"), &hidden),
            addr("127.0.0.1:1")
        );
    }

    #[test]
    fn entries_are_checked_and_mapped_v4_matches() {
        let err = TrustedProxies::new(["10.0.0.0/8", "localhost"]).unwrap_err();
        assert!(err.is_config(), "{err}");
        let why = std::error::Error::source(&err).unwrap().to_string();
        assert!(why.contains("localhost"), "{why}");
        let proxies = TrustedProxies::new(["127.0.0.0/8"]).unwrap();
        assert!(proxies.trusts("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!proxies.trusts("::1".parse().unwrap()));
    }
}
