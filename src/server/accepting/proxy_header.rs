//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, v1 text and v2 binary): from the
//! bytes a load balancer sends first to the client address they carry.
//!
//! The framing is ours, so that a header can be read from a socket without taking a byte of the
//! data behind it: a v1 header is one line of at most 107 bytes ending in CRLF; a v2 header is a
//! 16-byte preamble whose last two bytes give the length of the rest. The parsing of a whole
//! header is `ppp`'s.

use std::net::SocketAddr;

/// The longest v1 header, CRLF included.
pub(crate) const V1_MAX_LEN: usize = 107;
/// The v2 header's fixed part: signature, version and command, family, length.
const V2_PREAMBLE_LEN: usize = 16;
/// A v1 header starts with this.
const V1_PREFIX: &[u8] = b"PROXY ";
/// A v2 header starts with this signature.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// What the first bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A whole header, `len` bytes long; `addresses` (source, destination) are the client's
    /// and the address it connected to, or `None` when the header says to use the
    /// connection's own (a `LOCAL` command, as in a load balancer's health check; `UNKNOWN`; an
    /// unspecified or Unix-socket family).
    Header {
        len: usize,
        addresses: Option<(SocketAddr, SocketAddr)>,
    },
    /// The beginning of a header: more bytes are needed.
    Incomplete,
    /// Not a header, or a broken one; says what is wrong.
    Invalid(&'static str),
}

/// Parses the header at the start of `bytes` (which may hold data after it, never read).
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    match bytes.first() {
        None => Parsed::Incomplete,
        Some(b'P') => parse_v1(bytes),
        Some(b'\r') => parse_v2(bytes),
        Some(_) => Parsed::Invalid("not a PROXY header"),
    }
}

fn parse_v1(bytes: &[u8]) -> Parsed {
    if let Some(incomplete) = check_prefix(bytes, V1_PREFIX) {
        return incomplete;
    }
    let window = &bytes[..bytes.len().min(V1_MAX_LEN)];
    let Some(cr) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return match bytes.len() >= V1_MAX_LEN {
            true => Parsed::Invalid("a v1 header longer than 107 bytes"),
            false => Parsed::Incomplete,
        };
    };
    let len = cr + 2;
    let Ok(header) = ppp::v1::Header::try_from(&bytes[..len]) else {
        return Parsed::Invalid("a malformed v1 header");
    };
    let addresses = match header.addresses {
        ppp::v1::Addresses::Tcp4(ip) => Some((
            SocketAddr::from((ip.source_address, ip.source_port)),
            SocketAddr::from((ip.destination_address, ip.destination_port)),
        )),
        ppp::v1::Addresses::Tcp6(ip) => Some((
            SocketAddr::from((ip.source_address, ip.source_port)),
            SocketAddr::from((ip.destination_address, ip.destination_port)),
        )),
        ppp::v1::Addresses::Unknown => None,
    };
    Parsed::Header { len, addresses }
}

fn parse_v2(bytes: &[u8]) -> Parsed {
    if let Some(incomplete) = check_prefix(bytes, V2_SIGNATURE) {
        return incomplete;
    }
    // Refused as soon as their byte comes, rather than after a length they may not mean.
    match bytes.get(12) {
        Some(byte) if byte >> 4 != 2 => return Parsed::Invalid("not a v2 header"),
        Some(byte) if byte & 0x0f > 1 => return Parsed::Invalid("an unknown v2 command"),
        _ => {}
    }
    if bytes
        .get(13)
        .is_some_and(|byte| byte >> 4 > 3 || byte & 0x0f > 2)
    {
        return Parsed::Invalid("an unknown v2 address family");
    }
    if bytes.len() < V2_PREAMBLE_LEN {
        return Parsed::Incomplete;
    }
    let rest = u16::from_be_bytes([bytes[14], bytes[15]]);
    let len = V2_PREAMBLE_LEN + usize::from(rest);
    if bytes.len() < len {
        return Parsed::Incomplete;
    }
    let header = match ppp::v2::Header::try_from(&bytes[..len]) {
        Ok(header) => header,
        Err(ppp::v2::ParseError::Version(_)) => return Parsed::Invalid("not a v2 header"),
        Err(ppp::v2::ParseError::Command(_)) => return Parsed::Invalid("an unknown v2 command"),
        Err(_) => return Parsed::Invalid("a malformed v2 header"),
    };
    let addresses = match (header.command, header.addresses) {
        (ppp::v2::Command::Local, _) => None,
        (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(ip)) => Some((
            SocketAddr::from((ip.source_address, ip.source_port)),
            SocketAddr::from((ip.destination_address, ip.destination_port)),
        )),
        (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(ip)) => Some((
            SocketAddr::from((ip.source_address, ip.source_port)),
            SocketAddr::from((ip.destination_address, ip.destination_port)),
        )),
        (ppp::v2::Command::Proxy, _) => None,
    };
    Parsed::Header { len, addresses }
}

/// `None` when `bytes` starts with `prefix`; else whether they may still become it.
fn check_prefix(bytes: &[u8], prefix: &[u8]) -> Option<Parsed> {
    if bytes.starts_with(prefix) {
        None
    } else if prefix.starts_with(bytes) {
        Some(Parsed::Incomplete)
    } else {
        Some(Parsed::Invalid("not a PROXY header"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
        let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes()
    }

    /// A v2 header built from the specification, not from the parser's own builder.
    fn v2(command: u8, addresses: Option<(SocketAddr, SocketAddr)>, tlvs: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        let family = match addresses {
            None => 0x00,
            Some((source, destination)) => {
                for addr in [source, destination] {
                    match addr.ip() {
                        IpAddr::V4(ip) => body.extend_from_slice(&ip.octets()),
                        IpAddr::V6(ip) => body.extend_from_slice(&ip.octets()),
                    }
                }
                body.extend_from_slice(&source.port().to_be_bytes());
                body.extend_from_slice(&destination.port().to_be_bytes());
                if source.is_ipv4() {
                    0x11
                } else {
                    0x21
                }
            }
        };
        body.extend_from_slice(tlvs);
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend_from_slice(&body);
        header
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_examples_of_the_specification() {
        let tcp4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(tcp4),
            Parsed::Header {
                len: 47,
                addresses: Some((addr("192.168.0.1:56324"), addr("192.168.0.11:443")))
            }
        );
        let tcp6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 7007\r\n";
        assert_eq!(
            parse(tcp6),
            Parsed::Header {
                len: tcp6.len(),
                addresses: Some((addr("[2001:db8::7]:40000"), addr("[2001:db8::1]:7007")))
            }
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(unknown),
            Parsed::Header {
                len: 15,
                addresses: None
            }
        );
        let local = v2(0x0, None, &[]);
        assert_eq!(
            parse(&local),
            Parsed::Header {
                len: 16,
                addresses: None
            }
        );
    }

    #[test]
    fn garbage_and_broken_headers_are_invalid() {
        for bytes in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"hello",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x10\x11\0\x0c",
            b"\r\n\r\n\0\r\nQUIT\n\x2f\x11\0\x0c",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x04abcd",
        ] {
            assert!(
                matches!(parse(bytes), Parsed::Invalid(_)),
                "{:?}: {:?}",
                String::from_utf8_lossy(bytes),
                parse(bytes)
            );
        }
        let endless = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(
            parse(&endless),
            Parsed::Invalid("a v1 header longer than 107 bytes")
        );
    }

    fn any_addresses() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(s, d, sp, dp)| {
                (
                    SocketAddr::from((Ipv4Addr::from(s), sp)),
                    SocketAddr::from((Ipv4Addr::from(d), dp)),
                )
            }),
            (any::<u128>(), any::<u128>(), any::<u16>(), any::<u16>()).prop_map(
                |(s, d, sp, dp)| {
                    (
                        SocketAddr::from((Ipv6Addr::from(s), sp)),
                        SocketAddr::from((Ipv6Addr::from(d), dp)),
                    )
                }
            ),
        ]
    }

    /// A valid header of either version, and the addresses it carries.
    fn any_header() -> impl Strategy<Value = (Vec<u8>, Option<(SocketAddr, SocketAddr)>)> {
        (
            any_addresses(),
            0u8..4,
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(addresses, kind, tlvs)| match kind {
                0 => (v1(addresses.0, addresses.1), Some(addresses)),
                1 => (v2(0x1, Some(addresses), &tlvs), Some(addresses)),
                2 => (v2(0x0, Some(addresses), &tlvs), None),
                _ => (b"PROXY UNKNOWN\r\n".to_vec(), None),
            })
    }

    proptest! {
        // Every header, of either version and family, gives back the addresses it was made
        // with, and its own length, whatever data follows it.
        #[test]
        fn headers_give_their_addresses_and_length(
            (header, addresses) in any_header(),
            data in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes = [header.as_slice(), &data].concat();
            prop_assert_eq!(parse(&bytes), Parsed::Header { len: header.len(), addresses });
        }

        // A header cut anywhere is incomplete, never invalid and never a header: a reader
        // that waits for more must get the same answer as one that had it all at once.
        #[test]
        fn every_cut_of_a_header_is_incomplete((header, _) in any_header(), at in any::<usize>()) {
            let cut = at % header.len();
            prop_assert_eq!(parse(&header[..cut]), Parsed::Incomplete);
        }

        // Any bytes at all: an answer, never a panic, and a header never longer than them.
        #[test]
        fn any_bytes_get_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Parsed::Header { len, .. } = parse(&bytes) {
                prop_assert!(len <= bytes.len());
            }
        }

        // Valid headers with one byte changed, inserted or removed: where a parser's edge
        // cases are. Never a panic; a header found is no longer than the bytes.
        #[test]
        fn near_misses_get_an_answer(
            (header, _) in any_header(),
            at in any::<usize>(),
            edit in 0u8..3,
            with in any::<u8>(),
        ) {
            let mut bytes = header;
            let at = at % bytes.len();
            match edit {
                0 => bytes.insert(at, with),
                1 => { bytes.remove(at); }
                _ => bytes[at] = with,
            }
            if let Parsed::Header { len, .. } = parse(&bytes) {
                prop_assert!(len <= bytes.len());
            }
        }
    }
}
