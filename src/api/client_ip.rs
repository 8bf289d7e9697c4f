//! Who the client is, for rate limits: the socket peer, unless the peer is one of
//! `server.trusted_proxies` — then the rightmost address of `Forwarded: for=` (or, without it,
//! `X-Forwarded-For`) that is not itself a trusted proxy. A client cannot pick its own bucket by
//! sending the header: from an untrusted peer it is ignored.

use std::net::IpAddr;

use poem::Request;

use crate::config::Cidr;

pub fn client_ip(req: &Request, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    Some(resolve(
        peer,
        req.header("forwarded"),
        req.header("x-forwarded-for"),
        trusted,
    ))
}

/// The client behind `peer`, given the request's forwarding headers.
fn resolve(
    peer: IpAddr,
    forwarded: Option<&str>,
    x_forwarded_for: Option<&str>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|c| c.contains(*ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = match (forwarded, x_forwarded_for) {
        (Some(forwarded), _) => forwarded_for(forwarded),
        (None, Some(xff)) => xff.split(',').filter_map(parse_hop).collect(),
        (None, None) => Vec::new(),
    };
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or_else(|| hops.first())
        .copied()
        .unwrap_or(peer)
}

/// The `for=` addresses of a `Forwarded` header (RFC 7239), in order.
fn forwarded_for(value: &str) -> Vec<IpAddr> {
    value
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim().eq_ignore_ascii_case("for").then_some(value)
        })
        .filter_map(parse_hop)
        .collect()
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn forwarding_headers_never_move_an_untrusted_peer(
            peer in any::<std::net::Ipv4Addr>(),
            forwarded in proptest::option::of(any::<String>()),
            xff in proptest::option::of(any::<String>()),
        ) {
            let trusted = [Cidr::parse("10.0.0.0/8").expect("cidr")];
            let peer = IpAddr::V4(peer);
            let client = resolve(peer, forwarded.as_deref(), xff.as_deref(), &trusted);
            if !trusted[0].contains(peer) {
                prop_assert_eq!(client, peer);
            }
        }

        #[test]
        fn any_hop_text_is_read_without_a_panic(text in any::<String>()) {
            let _ = parse_hop(&text);
            let _ = forwarded_for(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let proxies = [Cidr::parse("10.0.0.0/8").expect("cidr")];
        let spoofed = resolve(ip("203.0.113.5"), None, Some("1.1.1.1"), &proxies);
        assert_eq!(
            spoofed,
            ip("203.0.113.5"),
            "an untrusted peer's header is ignored"
        );
        let chain = Some("1.1.1.1, 198.51.100.7, 10.0.0.9");
        let proxied = resolve(ip("10.0.0.2"), None, chain, &proxies);
        assert_eq!(proxied, ip("198.51.100.7"), "rightmost untrusted hop");
        assert_eq!(
            resolve(ip("10.0.0.2"), None, None, &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), None, chain, &[]),
            ip("10.0.0.2"),
            "none trusted"
        );
    }

    #[test]
    fn the_forwarded_header_is_read_as_rfc_7239_says() {
        let proxies = [Cidr::parse("127.0.0.1").expect("cidr")];
        let header = "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"";
        let client = resolve(ip("127.0.0.1"), Some(header), Some("9.9.9.9"), &proxies);
        assert_eq!(
            client,
            ip("2001:db8:cafe::17"),
            "Forwarded wins over X-Forwarded-For"
        );
        assert_eq!(parse_hop("192.0.2.1:8080"), "192.0.2.1".parse().ok());
        assert_eq!(parse_hop("unknown"), None);
    }
}
