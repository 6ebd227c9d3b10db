//! Who a dashboard request comes from, for the sign-in limit: the peer, or behind a trusted
//! reverse proxy the address the proxy saw. Only the proxies named in `[server]
//! trusted_proxies` are believed, and of their `X-Forwarded-For` only the right-most address no
//! trusted proxy owns: the left of it is whatever the client wrote.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;

/// The setting, parsed by the config; who a request comes from behind those proxies is decided
/// here.
pub use crate::config::TrustedProxies;

impl TrustedProxies {
    /// The client's address: `peer`, unless `peer` is a trusted proxy, then the right-most
    /// `X-Forwarded-For` address that is not one (the peer itself when every one is, or the
    /// header is missing or unreadable).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        // Entries are split on the raw bytes: a byte the client wrote into its own entry must
        // not cost the entries the proxies appended after it.
        let forwarded: Vec<&[u8]> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
            .collect();
        let mut client = peer;
        for entry in forwarded.iter().rev() {
            let address = std::str::from_utf8(entry)
                .ok()
                .and_then(|entry| entry.trim().parse::<IpAddr>().ok());
            let Some(address) = address else {
                // Not an address: nothing left of it can be believed either.
                return client;
            };
            client = canonical(address);
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:1.2.3.4`, a dual-stack socket's peers) as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// What the sign-in limit counts per: an IPv4 address, or the /64 an IPv6 address is in (one
/// host is usually given a whole /64, so counting each address would give it endless tries).
pub fn counted_as(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address_behind_a_trusted_peer() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8", "::1"]);
        // (peer, X-Forwarded-For headers, client)
        let cases: &[(&str, &[&str], &str)] = &[
            // Not a proxy: its header is ignored.
            ("192.0.2.9", &["203.0.113.5"], "192.0.2.9"),
            // The proxy appended the client's address; the client wrote the first one.
            ("127.0.0.1", &["1.1.1.1, 203.0.113.5"], "203.0.113.5"),
            // Through two trusted proxies.
            ("127.0.0.1", &["203.0.113.5, 10.1.2.3"], "203.0.113.5"),
            // Several headers are one list, in order.
            ("127.0.0.1", &["1.1.1.1", "203.0.113.5"], "203.0.113.5"),
            // No header, or only proxies in it: the proxy itself.
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["10.0.0.1"], "10.0.0.1"),
            // Garbage stops the walk at the last address believed.
            ("127.0.0.1", &["203.0.113.5, nonsense"], "127.0.0.1"),
            ("::1", &["2001:db8::1"], "2001:db8::1"),
            ("::ffff:127.0.0.1", &["203.0.113.5"], "203.0.113.5"),
        ];
        for (peer, forwarded, client) in cases {
            let mut headers = HeaderMap::new();
            for value in *forwarded {
                headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(
                trusted.client(peer.parse().unwrap(), &headers),
                client.parse::<IpAddr>().unwrap(),
                "{peer} {forwarded:?}"
            );
        }
        // A byte the client wrote into its own entry (nginx joins the proxy's entry into the
        // same value) does not cost the address the proxy appended.
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.1.1.1\xff, 203.0.113.5").unwrap(),
        );
        assert_eq!(
            trusted.client("127.0.0.1".parse().unwrap(), &headers),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".to_owned()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".to_owned()]).is_err());
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_ipv4_per_address() {
        for (address, counted) in [
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
        ] {
            assert_eq!(
                counted_as(address.parse().unwrap()),
                counted.parse::<IpAddr>().unwrap()
            );
        }
    }
}
