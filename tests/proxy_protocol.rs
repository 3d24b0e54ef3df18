//! `--proxy-protocol`: behind a load balancer, the PROXY header's address is the peer for the
//! logs, the access rules, the per-address limit and the handler; a bad header is refused on a
//! worker, counted, and never holds the accept thread.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::clients::{connect_from, exchange, is_closed_by_peer};
use common::{read_exact, Server, TIMEOUT};

/// A v1 (text) header.
fn v1(source: &str, destination: &str) -> Vec<u8> {
    let (source, destination): (SocketAddr, SocketAddr) =
        (source.parse().unwrap(), destination.parse().unwrap());
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

/// A v2 (binary) header, as HAProxy's `send-proxy-v2` writes it: `PROXY` with the addresses, or
/// `LOCAL` (a health check) with none.
fn v2(addresses: Option<(&str, &str)>) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let Some((source, destination)) = addresses else {
        header.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return header;
    };
    let (source, destination): (SocketAddr, SocketAddr) =
        (source.parse().unwrap(), destination.parse().unwrap());
    let mut body = Vec::new();
    for addr in [source, destination] {
        match addr.ip() {
            IpAddr::V4(ip) => body.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => body.extend_from_slice(&ip.octets()),
        }
    }
    body.extend_from_slice(&source.port().to_be_bytes());
    body.extend_from_slice(&destination.port().to_be_bytes());
    header.push(0x21);
    header.push(if source.is_ipv4() { 0x11 } else { 0x21 });
    header.extend_from_slice(&(body.len() as u16).to_be_bytes());
    header.extend_from_slice(&body);
    header
}

/// Sends `header` then `message`, half-closes, and returns the reply (empty when refused).
fn through_proxy(server: &Server, header: &[u8], message: &[u8]) -> Vec<u8> {
    exchange(server.connect(), &[header, message].concat())
}

#[test]
fn v1_and_v2_headers_from_ipv4_and_ipv6_clients_are_the_peer_everywhere() {
    let server = Server::start(&["--proxy-protocol", "--access-log", "-H", "logging"]);
    let cases = [
        (
            v1("203.0.113.7:40001", "192.0.2.1:7007"),
            "203.0.113.7:40001",
            "192.0.2.1:7007",
        ),
        (
            v1("[2001:db8::7]:40002", "[2001:db8::1]:7007"),
            "[2001:db8::7]:40002",
            "[2001:db8::1]:7007",
        ),
        (
            v2(Some(("198.51.100.9:40003", "192.0.2.1:7007"))),
            "198.51.100.9:40003",
            "192.0.2.1:7007",
        ),
        (
            v2(Some(("[2001:db8:9::9]:40004", "[2001:db8::1]:7007"))),
            "[2001:db8:9::9]:40004",
            "[2001:db8::1]:7007",
        ),
    ];
    for (header, peer, local) in &cases {
        // The header is taken, and not a byte of what follows it.
        assert_eq!(through_proxy(&server, header, b"hello"), b"hello", "{peer}");
        let logs = server.wait_for_log(&format!("peer={peer} local={local} handler=logging"));
        // The handler's ConnInfo (the logging handler prints it) and the connection's span.
        assert!(
            logs.contains(&format!(
                "peer={peer}}}: connection opened peer={peer} local={local}"
            )),
            "{logs}"
        );
    }
}

#[test]
fn access_rules_and_per_address_limits_apply_to_the_header_address() {
    let server = Server::start(&[
        "--proxy-protocol",
        "--deny",
        "203.0.113.0/24",
        "--max-per-ip",
        "1",
    ]);
    let denied = through_proxy(&server, &v1("203.0.113.7:4000", "192.0.2.1:7007"), b"hi");
    assert!(denied.is_empty(), "a denied client was served");
    // Every socket comes from 127.0.0.1; the per-address count is the header's address.
    let mut held = server.connect();
    held.write_all(
        &[
            v2(Some(("198.51.100.1:4001", "192.0.2.1:7007"))),
            b"one".to_vec(),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(read_exact(&mut held, 3), b"one");
    let second = through_proxy(
        &server,
        &v2(Some(("198.51.100.1:4002", "192.0.2.1:7007"))),
        b"two",
    );
    assert!(
        second.is_empty(),
        "the address's second connection was served"
    );
    let other = through_proxy(
        &server,
        &v2(Some(("198.51.100.2:4003", "192.0.2.1:7007"))),
        b"three",
    );
    assert_eq!(other, b"three");
    let counters = server.counters_now();
    assert_eq!(counters.get("rejected.denied"), 1, "{}", counters.line());
    assert_eq!(
        counters.get("rejected.per-ip-limit"),
        1,
        "{}",
        counters.line()
    );
    let logs = server.stderr();
    assert!(
        logs.contains("peer=203.0.113.7:4000}: connection rejected: address not allowed"),
        "{logs}"
    );
    held.shutdown(Shutdown::Write).unwrap();
    assert_eq!(held.read(&mut [0; 8]).unwrap(), 0);
}

#[test]
fn only_proxy_from_addresses_may_send_a_header() {
    let server = Server::start(&["--proxy-protocol", "--proxy-from", "127.0.0.2"]);
    let header = v1("203.0.113.7:4000", "192.0.2.1:7007");
    let stranger = connect_from(IpAddr::from([127, 0, 0, 1]), server.addr());
    assert!(exchange(stranger, &[&header[..], b"hi"].concat()).is_empty());
    let balancer = connect_from(IpAddr::from([127, 0, 0, 2]), server.addr());
    assert_eq!(exchange(balancer, &[&header[..], b"hi"].concat()), b"hi");
    // The client sees its close a moment before the server counts it.
    let counters = server.wait_for_counters("the close", |c| c.get("closed.eof") == 1);
    assert_eq!(
        counters.get("rejected.not-a-proxy"),
        1,
        "{}",
        counters.line()
    );
    assert!(server.stderr().contains("not from a --proxy-from address"));
}

#[test]
fn garbage_cut_and_slow_headers_are_refused_on_a_worker_and_counted() {
    let server = Server::start(&[
        "--proxy-protocol",
        "--workers",
        "2",
        "--idle-timeout",
        "500ms",
    ]);
    // Garbage, and a header cut short by the client's close.
    assert!(through_proxy(&server, b"GET / HTTP/1.0\r\n\r\n", b"").is_empty());
    assert!(through_proxy(&server, b"PROXY TCP4 203.0.113.7", b"").is_empty());
    // A header that never finishes holds its worker until the idle timeout, not the accept
    // thread: meanwhile another client is accepted and served.
    let mut slow = server.connect();
    slow.write_all(b"PROXY TCP4 203.0").unwrap();
    let started = Instant::now();
    let header = v1("198.51.100.1:4000", "192.0.2.1:7007");
    assert_eq!(through_proxy(&server, &header, b"meanwhile"), b"meanwhile");
    // ...while the slow one is still waiting for the rest of its header.
    slow.set_nonblocking(true).unwrap();
    let pending = slow.peek(&mut [0; 1]);
    assert!(
        pending.is_err_and(|err| err.kind() == std::io::ErrorKind::WouldBlock),
        "the slow one was closed before the other was served"
    );
    slow.set_nonblocking(false).unwrap();
    let mut rest = Vec::new();
    match slow.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty()),
        Err(err) => assert!(is_closed_by_peer(&err), "{err}"),
    }
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(450),
        "closed after {closed_after:?}"
    );
    assert!(closed_after < TIMEOUT);
    let counters = server.wait_for_counters("the close", |c| c.get("closed.eof") == 1);
    assert_eq!(
        counters.get("rejected.proxy-header"),
        3,
        "{}",
        counters.line()
    );
    assert_eq!(counters.get("accepted"), 4, "{}", counters.line());
    // One line a second for a reason: the first says what was wrong.
    let logs = server.stderr();
    assert!(
        logs.contains(
            "connection rejected: no valid PROXY header (--proxy-protocol) \
             reason=proxy-header detail=\"not a PROXY header\""
        ),
        "{logs}"
    );
}

#[test]
fn a_local_header_is_served_as_the_proxy_itself() {
    let server = Server::start(&["--proxy-protocol", "--access-log"]);
    let health_check: TcpStream = server.connect();
    let checker = health_check.local_addr().unwrap();
    assert_eq!(
        exchange(health_check, &[v2(None), b"ping\n".to_vec()].concat()),
        b"ping\n"
    );
    server.wait_for_log(&format!("peer={checker} local={}", server.addr()));
    let unknown = through_proxy(&server, b"PROXY UNKNOWN\r\n", b"pong\n");
    assert_eq!(unknown, b"pong\n");
}

#[test]
fn an_exec_program_sees_the_client_and_reads_what_follows_the_header() {
    let server = Server::start(&[
        "--proxy-protocol",
        "-H",
        r#"exec:sh -c 'echo "$TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT"; cat'"#,
    ]);
    let header = v2(Some(("[2001:db8::7]:40001", "[2001:db8::1]:7007")));
    let reply = through_proxy(&server, &header, b"after the header");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "2001:db8::7 40001 2001:db8::1 7007\nafter the header"
    );
}
