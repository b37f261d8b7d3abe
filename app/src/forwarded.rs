//! The real client behind a trusted proxy: `X-Forwarded-For` believed only from the proxies
//! configured with `--trusted-proxies`, read from the right so a client cannot forge it.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address as the middleware found it (the one a trusted proxy reports, else the
/// peer's), in the extensions of every request that may carry a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The address the middleware put on the request, if it did.
    pub(crate) fn of(parts: &Parts) -> Option<IpAddr> {
        parts
            .extensions
            .get::<ClientAddr>()
            .map(|ClientAddr(ip)| *ip)
    }
}

/// The request's client address ([`ClientAddr`]), if the middleware found one; as an extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(ClientAddr::of(parts)))
    }
}

/// Who a client is, for what is shared out per client (the concurrency permits, the task
/// queues' turns): an IPv4 address; for IPv6, the /64 network the address is in, given as its
/// first address. One IPv6 host is commonly given a whole /64 and may send from any address in
/// it: counted per address, it could take as many shares as it liked. IPv4-mapped IPv6
/// addresses are their IPv4 address.
pub(crate) fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// How [`client_of`] is written where a client is named: the IPv4 address, or the IPv6 /64.
pub(crate) fn client_name(ip: IpAddr) -> String {
    match client_of(ip) {
        IpAddr::V6(network) => format!("{network}/64"),
        v4 => v4.to_string(),
    }
}

/// The client address a trusted proxy reports, or `None` when the peer is not a trusted proxy
/// or the header is missing or malformed (then the peer itself is the client).
///
/// Proxies append the address they saw, so the list reads client, proxy, proxy... The rightmost
/// address that is not itself a trusted proxy is the first one no trusted party vouches for
/// beyond: that is the client. Anything left of it may have been written by the client, so it
/// is not read at all: a forged or malformed entry there changes nothing. When every address is
/// a trusted proxy's, the leftmost is the client.
pub(crate) fn client_behind_proxy(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return None;
    }
    let mut leftmost = None;
    // Header lines and the hops within each, right to left.
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for hop in value.to_str().ok()?.rsplit(',') {
            let hop = parse_hop(hop.trim())?;
            if !is_trusted(hop, trusted) {
                return Some(hop);
            }
            leftmost = Some(hop);
        }
    }
    leftmost
}

fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    // An IPv4 address seen over IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
    let addr = addr.to_canonical();
    trusted.iter().any(|net| net.contains(&addr))
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_static(v));
        }
        headers
    }

    fn trusted() -> Vec<IpNet> {
        vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let h = headers(&["203.0.113.7"]);
        assert_eq!(
            client_behind_proxy(ip("127.0.0.1"), &h, &trusted()),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(client_behind_proxy(ip("192.0.2.1"), &h, &trusted()), None);
        assert_eq!(client_behind_proxy(ip("127.0.0.1"), &h, &[]), None);
        assert_eq!(
            client_behind_proxy(ip("::ffff:127.0.0.1"), &h, &trusted()),
            Some(ip("203.0.113.7"))
        );
    }

    #[test]
    fn a_forged_left_part_is_skipped() {
        // The client sent "1.1.1.1"; nginx appended the address it saw.
        let h = headers(&["1.1.1.1, 203.0.113.7"]);
        assert_eq!(
            client_behind_proxy(ip("127.0.0.1"), &h, &trusted()),
            Some(ip("203.0.113.7"))
        );
        // Through two trusted proxies, over two header lines.
        let h = headers(&["203.0.113.7", "10.1.2.3"]);
        assert_eq!(
            client_behind_proxy(ip("10.9.9.9"), &h, &trusted()),
            Some(ip("203.0.113.7"))
        );
        // Only trusted hops: the leftmost one.
        let h = headers(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(
            client_behind_proxy(ip("127.0.0.1"), &h, &trusted()),
            Some(ip("10.1.1.1"))
        );
    }

    #[test]
    fn garbage_left_of_the_client_changes_nothing() {
        // A proxy that appends kept what the client sent: malformed entries, a non-ASCII header
        // line of its own. None of it is read, so the client cannot make itself the proxy.
        for forged in [
            headers(&["nope, 203.0.113.7"]),
            headers(&["unknown, , 1.1.1.1, 203.0.113.7, 10.0.0.5"]),
            headers(&["garbage", "203.0.113.7"]),
        ] {
            assert_eq!(
                client_behind_proxy(ip("127.0.0.1"), &forged, &trusted()),
                Some(ip("203.0.113.7")),
                "{forged:?}"
            );
        }
        let mut non_ascii = HeaderMap::new();
        non_ascii.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        non_ascii.append(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        assert_eq!(
            client_behind_proxy(ip("127.0.0.1"), &non_ascii, &trusted()),
            Some(ip("203.0.113.7"))
        );
        // Garbage reached before any untrusted address: the client is unknown, the peer stands.
        let h = headers(&["nope, 10.1.1.1"]);
        assert_eq!(client_behind_proxy(ip("127.0.0.1"), &h, &trusted()), None);
    }

    #[test]
    fn ports_and_brackets_and_garbage() {
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_behind_proxy(ip("127.0.0.1"), &h, &trusted()),
            Some(ip("2001:db8::1"))
        );
        let h = headers(&["203.0.113.7:5000"]);
        assert_eq!(
            client_behind_proxy(ip("127.0.0.1"), &h, &trusted()),
            Some(ip("203.0.113.7"))
        );
        for bad in ["unknown", "", "203.0.113.7, nope"] {
            assert_eq!(
                client_behind_proxy(ip("127.0.0.1"), &headers(&[bad]), &trusted()),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            client_behind_proxy(ip("127.0.0.1"), &HeaderMap::new(), &trusted()),
            None
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_an_ipv4_one_its_address() {
        let of = |ip: &str| client_of(ip.parse().unwrap());
        assert_eq!(
            of("2001:db8:1:2::1"),
            of("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(
            of("2001:db8:1:2:3:4:5:6"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(of("192.0.2.1"), of("192.0.2.2"));
        assert_eq!(of("::ffff:192.0.2.1"), of("192.0.2.1"));
        assert_eq!(
            client_name("2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_name("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1"
        );
    }
}
