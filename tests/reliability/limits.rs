//! Per-connection limits and access rules, through the binary: each closes or refuses exactly
//! what it names, and the next client is served.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{connect_from, exchange, is_closed_by_peer};
use crate::common::{round_trip, Server};
use crate::report;

#[test]
fn max_duration_closes_a_conversation_that_outlives_it() {
    let server = Server::start(&["--workers", "1", "--max-duration", "500ms"]);
    let mut stream = server.connect();
    let started = Instant::now();
    let mut exchanged = 0;
    // Talk every 50 ms (never idle) until the server closes.
    let closed_after = loop {
        assert!(started.elapsed() < Duration::from_secs(5), "never closed");
        if let Err(err) = stream.write_all(b"ping") {
            assert!(is_closed_by_peer(&err), "{err}");
            break started.elapsed();
        }
        let mut echo = [0; 4];
        match stream.read_exact(&mut echo) {
            Ok(()) => assert_eq!(&echo, b"ping"),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => break started.elapsed(),
            Err(err) if is_closed_by_peer(&err) => break started.elapsed(),
            Err(err) => panic!("{err}"),
        }
        exchanged += 1;
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        closed_after >= Duration::from_millis(450),
        "closed early: {closed_after:?}"
    );
    server.wait_for_log("it reached --max-duration");
    // The only worker serves the next client.
    assert_eq!(round_trip(server.connect(), b"next"), b"next");
    let counters = server.wait_for_counters("max-duration=1", |c| {
        c.get("closed.max-duration") == 1 && c.get("closed.eof") == 1
    });
    report(
        "--max-duration 500ms",
        format_args!(
            "a client talking every 50 ms: {exchanged} pings echoed, closed after \
             {closed_after:.1?}; counted ({}); next client served",
            counters.line()
        ),
    );
}

#[test]
fn max_bytes_echoes_exactly_the_allowed_bytes_then_closes() {
    let server = Server::start(&["--workers", "1", "--max-bytes", "1000"]);
    let message: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let reply = exchange(server.connect(), &message);
    assert_eq!(reply.len(), 1000, "echoed {} bytes", reply.len());
    assert_eq!(reply, message[..1000]);
    server.wait_for_log("it sent more than --max-bytes");
    assert_eq!(round_trip(server.connect(), b"next"), b"next");
    let counters = server.wait_for_counters("max-bytes=1", |c| {
        c.get("closed.max-bytes") == 1 && c.get("closed.eof") == 1
    });
    assert_eq!(counters.get("bytes_in"), 1000 + 4, "{}", counters.line());
    report(
        "--max-bytes 1000",
        "a client sending 3000 bytes got exactly the first 1000 back, then the close; \
         counted max-bytes=1, bytes_in=1004 (with the next client's 4); next client served",
    );
}

/// Whether a client from `source` is served (full echo) or refused (closed, nothing echoed).
fn served_from(server: &Server, source: [u8; 4]) -> bool {
    let reply = exchange(
        connect_from(IpAddr::from(source), server.addr()),
        b"who am I",
    );
    match reply.as_slice() {
        b"who am I" => true,
        b"" => false,
        other => panic!("partial echo {other:?}"),
    }
}

#[test]
fn deny_refuses_its_address_and_serves_the_rest() {
    let server = Server::start(&["--deny", "127.0.0.2"]);
    assert!(!served_from(&server, [127, 0, 0, 2]));
    assert!(served_from(&server, [127, 0, 0, 1]));
    server.wait_for_log("connection rejected: address not allowed");
    let counters = server.wait_for_counters("denied=1, eof=1", |c| c.get("closed.eof") == 1);
    assert_eq!(counters.get("rejected.denied"), 1, "{}", counters.line());
    assert_eq!(counters.get("accepted"), 2, "{}", counters.line());
    report(
        "--deny 127.0.0.2",
        "127.0.0.2 closed without echo, 127.0.0.1 served; SIGUSR1 shows rejected[denied=1]",
    );
}

#[test]
fn allow_admits_only_its_range_and_deny_wins_inside_it() {
    let server = Server::start(&["--allow", "127.0.0.0/30", "--deny", "127.0.0.2"]);
    let verdicts: Vec<(u8, bool)> = [1, 2, 3, 5]
        .into_iter()
        .map(|last| (last, served_from(&server, [127, 0, 0, last])))
        .collect();
    // .1 and .3 are in the allowed /30; .2 is in it too but denied; .5 is outside it.
    assert_eq!(verdicts, [(1, true), (2, false), (3, true), (5, false)]);
    let counters = server.wait_for_counters("eof=2", |c| c.get("closed.eof") == 2);
    assert_eq!(counters.get("rejected.denied"), 2, "{}", counters.line());
    report(
        "--allow /30 --deny .2",
        "127.0.0.1 and .3 served; .2 (denied inside the range) and .5 (outside) closed \
         without echo; rejected[denied=2]",
    );
}
