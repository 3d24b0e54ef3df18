//! Silent connections: 300 clients from one address that connect and say nothing must not keep
//! a client from another address waiting.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{connect_from, is_closed_by_peer};
use crate::common::{round_trip, Server, TIMEOUT};
use crate::report;

const SILENT: usize = 300;
const HOG: [u8; 4] = [127, 0, 0, 2];
const OTHER: [u8; 4] = [127, 0, 0, 3];

/// Opens [`SILENT`] connections from [`HOG`] that never send a byte.
fn open_silent(server: &Server) -> Vec<TcpStream> {
    (0..SILENT)
        .map(|_| connect_from(IpAddr::from(HOG), server.addr()))
        .collect()
}

/// How long a client from [`OTHER`] waits for its echo; fails past `bound`.
fn other_client_round_trip(server: &Server, bound: Duration) -> Duration {
    let stream = connect_from(IpAddr::from(OTHER), server.addr());
    stream.set_read_timeout(Some(bound)).unwrap();
    let started = Instant::now();
    assert_eq!(round_trip(stream, b"from elsewhere"), b"from elsewhere");
    started.elapsed()
}

/// Waits until `count` of `streams` have been closed by the server; returns how many were.
fn wait_until_closed(streams: &[TcpStream], count: usize) -> usize {
    let mut closed = vec![false; streams.len()];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        for (stream, closed) in streams.iter().zip(closed.iter_mut()).filter(|(_, c)| !**c) {
            stream.set_nonblocking(true).unwrap();
            *closed = match (&*stream).read(&mut [0; 1]) {
                Ok(0) => true,
                Ok(_) => panic!("a silent connection got data"),
                Err(err) if err.kind() == ErrorKind::WouldBlock => false,
                Err(err) if is_closed_by_peer(&err) => true,
                Err(err) => panic!("{err}"),
            };
        }
        let total = closed.iter().filter(|c| **c).count();
        if total >= count || Instant::now() > deadline {
            return total;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn max_per_ip_keeps_silent_connections_from_one_address_off_the_pool() {
    let server = Server::start(&["--workers", "4", "--max-per-ip", "2"]);
    let silent = open_silent(&server);
    // Two are held until the idle timeout (parked: they are quiet); the rest are refused on
    // the accept thread.
    server.wait_for_counters("300 accepted, 2 held, 298 refused", |c| {
        c.get("accepted") == SILENT as u64
            && c.get("active") + c.get("parked") == 2
            && c.get("rejected.per-ip-limit") == SILENT as u64 - 2
    });
    assert_eq!(wait_until_closed(&silent, SILENT - 2), SILENT - 2);
    let waited = other_client_round_trip(&server, Duration::from_secs(2));
    let logged = server
        .stderr()
        .matches("connection rejected: too many connections from this address")
        .count();
    assert!(
        logged <= 3,
        "{logged} rejection lines: the log is not rate-limited"
    );
    report(
        "300 silent, --max-per-ip 2",
        format_args!(
            "4 workers: 2 silent held (parked), 298 refused at once (= rejected[per-ip-limit], \
             {logged} log line(s)); 127.0.0.3 echoed in {waited:.1?}"
        ),
    );
    drop(silent);
}

#[test]
fn defer_accept_keeps_silent_connections_from_reaching_the_server() {
    let server = Server::start(&["--workers", "4", "--defer-accept", "5s"]);
    let silent = open_silent(&server);
    let waited = other_client_round_trip(&server, Duration::from_secs(2));
    // The kernel held the silent ones: only the client that spoke was ever accepted.
    let counters = server.counters_now();
    assert_eq!(counters.get("accepted"), 1, "{}", counters.line());
    report(
        "300 silent, --defer-accept",
        format_args!(
            "4 workers, no per-IP cap: 0 of 300 silent connects accepted (the kernel holds \
             them); 127.0.0.3 echoed in {waited:.1?}"
        ),
    );
    drop(silent);
}
