//! Parking: quiet connections (and clients that stop reading) leave their worker, resume on any
//! worker where they stopped, keep their limits while parked, and are drained like the rest.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{connect_from, exchange, is_closed_by_peer, send_without_reading};
use crate::common::procfs::{mib, rss_bytes};
use crate::common::{binary, read_exact, round_trip, Server, TIMEOUT};
use crate::report;

/// Waits (bounded) until the server shows `parked` connections in the lot.
fn wait_parked(server: &Server, parked: u64) {
    server.wait_for_counters(&format!("parked={parked}"), |c| c.get("parked") == parked);
}

#[test]
fn every_stock_handler_resumes_where_it_stopped_on_another_turn() {
    // The handler, the bytes before the park, the bytes after, and the whole answer.
    type Case = (&'static str, &'static [u8], &'static [u8], &'static [u8]);
    let cases: [Case; 3] = [
        ("echo", b"hello ", b"world", b"hello world"),
        // 'ß' is C3 9F: the first byte arrives, the connection is parked, then the second.
        ("uppercase", b"stra\xC3", b"\x9Fe", b"STRASSE"),
        (
            "logging:uppercase",
            b"gr\xC3\xBC",
            b"\xC3\x9F",
            "GRÜSS".as_bytes(),
        ),
    ];
    for (handler, first, second, whole) in cases {
        let server = Server::start(&["--workers", "2", "--park-after", "5ms", "-H", handler]);
        let mut client = server.connect();
        client.write_all(first).unwrap();
        wait_parked(&server, 1);
        client.write_all(second).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, whole, "{handler}");
        let counters = server.wait_for_counters("closed", |c| c.get("closed.eof") == 1);
        assert!(
            counters.get("resumes") >= 1,
            "{handler}: {}",
            counters.line()
        );
    }
    report(
        "park and resume",
        "echo, uppercase (a character split across the park), logging:uppercase: parked after \
         5 ms quiet, resumed by the next bytes, answer whole and right",
    );
}

#[test]
fn silent_connections_leave_the_workers_to_a_new_client() {
    const SILENT: usize = 300;
    let server = Server::start(&["--workers", "4", "--idle-timeout", "60s"]);
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|_| connect_from(IpAddr::from([127, 0, 0, 2]), server.addr()))
        .collect();
    server.wait_for_counters("300 held", |c| {
        c.get("accepted") == SILENT as u64 && c.get("queued") == 0
    });
    let started = Instant::now();
    let stream = connect_from(IpAddr::from([127, 0, 0, 3]), server.addr());
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(round_trip(stream, b"not starved"), b"not starved");
    let waited = started.elapsed();
    // A worker may still be waiting out --park-after on the last one it took.
    server.wait_for_counters("300 parked", |c| c.get("parked") == SILENT as u64);
    report(
        "300 silent, 4 workers",
        format_args!(
            "no per-IP cap: all 300 parked (none holds a worker); a new client echoed in \
             {waited:.1?}; server RSS {}",
            mib(rss_bytes(server.pid()))
        ),
    );
    drop(silent);
}

#[test]
fn a_parked_connection_is_closed_at_its_idle_timeout() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--idle-timeout",
        "300ms",
        "--park-after",
        "0",
    ]);
    let mut quiet = server.connect();
    quiet.write_all(b"hi").unwrap();
    assert_eq!(read_exact(&mut quiet, 2), b"hi");
    let started = Instant::now();
    assert_eq!(quiet.read(&mut [0; 8]).unwrap(), 0, "closed by the server");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
    let counters = server.wait_for_counters("closed in the lot", |c| {
        c.get("closed_parked.idle-timeout") == 1
    });
    assert_eq!(
        counters.get("closed.idle-timeout"),
        1,
        "{}",
        counters.line()
    );
    report(
        "parked, idle timeout",
        format_args!(
            "--idle-timeout 300ms, parked at once: closed after {after:.0?} from its last \
             byte, in the lot (closed_parked[idle-timeout=1])"
        ),
    );
}

#[test]
fn a_client_that_stops_reading_is_parked_and_closed_by_the_write_timeout() {
    let server = Server::start(&["--workers", "1", "--write-timeout", "500ms"]);
    let hog = server.connect();
    let started = Instant::now();
    let sender = send_without_reading(hog);
    // While its output waits, the only worker serves another client.
    wait_parked(&server, 1);
    let served_meanwhile = Instant::now();
    assert_eq!(round_trip(server.connect(), b"meanwhile"), b"meanwhile");
    let meanwhile = served_meanwhile.elapsed();
    server.wait_for_log("closing connection: the peer stopped reading");
    let closed_after = started.elapsed();
    let (sent, err) = sender.join().unwrap();
    assert!(is_closed_by_peer(&err), "the hog's send ended with {err}");
    let counters = server.wait_for_counters("write-timeout in the lot", |c| {
        c.get("closed_parked.write-timeout") == 1 && c.get("closed.eof") == 1
    });
    assert_eq!(
        counters.get("closed.write-timeout"),
        1,
        "{}",
        counters.line()
    );
    report(
        "client stops reading",
        format_args!(
            "--write-timeout 500ms, 1 worker: parked with its output; another client served \
             meanwhile in {meanwhile:.1?}; closed after {closed_after:.1?} ({} sent), in the lot",
            mib(sent)
        ),
    );
}

#[test]
fn sigterm_drains_parked_connections_and_closes_the_rest_at_the_deadline() {
    let mut server = Server::start(&["--workers", "2", "--shutdown-timeout", "700ms"]);
    // One finishes after the signal, within the deadline; one never does.
    let mut finisher = server.connect();
    let mut lingerer = server.connect();
    finisher.write_all(b"first ").unwrap();
    lingerer.write_all(b"x").unwrap();
    assert_eq!(read_exact(&mut finisher, 6), b"first ");
    assert_eq!(read_exact(&mut lingerer, 1), b"x");
    wait_parked(&server, 2);
    server.signal(libc::SIGTERM);
    thread::sleep(Duration::from_millis(200));
    finisher.write_all(b"and last").unwrap();
    finisher.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    finisher.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"and last");
    assert_eq!(
        lingerer.read(&mut [0; 8]).unwrap(),
        0,
        "closed at the deadline"
    );
    let status = server.wait_exit(TIMEOUT);
    assert!(status.success(), "{status}");
    let counters = server.final_counters();
    assert_eq!(counters.get("closed.eof"), 1, "{}", counters.line());
    assert_eq!(counters.get("closed.shutdown"), 1, "{}", counters.line());
    assert_eq!(counters.get("accepted"), 2, "{}", counters.line());
    assert_eq!(counters.get("parked") + counters.get("active"), 0);
    report(
        "SIGTERM, parked",
        "2 parked at the signal: the one that spoke again was served to its end, the other \
         closed at --shutdown-timeout (shutdown=1); accepted = closed; exit 0",
    );
}

#[test]
fn at_max_connections_reject_refuses_and_block_holds_back() {
    let server = Server::start(&["--max-connections", "2", "--overflow", "reject"]);
    let held: Vec<TcpStream> = (0..2).map(|_| server.connect()).collect();
    server.wait_for_counters("2 held", |c| c.get("accepted") == 2);
    let refused = exchange(server.connect(), b"over the cap");
    assert_eq!(refused, b"", "refused at the cap");
    let counters = server.wait_for_counters("rejected", |c| c.get("rejected.max-connections") == 1);
    assert_eq!(counters.get("accepted"), 3, "{}", counters.line());
    drop(held);
    server.wait_for_counters("room", |c| c.get("closed.eof") == 2);
    assert_eq!(round_trip(server.connect(), b"room again"), b"room again");

    let server = Server::start(&["--max-connections", "1", "--overflow", "block"]);
    let mut first = server.connect();
    first.write_all(b"1").unwrap();
    assert_eq!(read_exact(&mut first, 1), b"1");
    let mut second = server.connect();
    second.write_all(b"2").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(second.read(&mut [0; 1]).is_err(), "served over the cap");
    drop(first);
    second.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(
        read_exact(&mut second, 1),
        b"2",
        "served once there was room"
    );
    report(
        "--max-connections",
        "cap 2, reject: the third is closed at once (rejected[max-connections]); cap 1, \
         block: the second waits in the backlog and is served when the first closes",
    );
}

#[test]
fn ten_thousand_held_connections_on_sixteen_workers_answer_every_message() {
    const HELD: usize = 10_000;
    let Some(limit) = descriptor_hard_limit() else {
        panic!("cannot read the descriptor limit");
    };
    // The server and the load generator each hold one descriptor a connection, and each
    // raises its own soft limit to this hard limit.
    let needed = HELD as u64 + 200;
    if limit < needed {
        let why = format!("the hard descriptor limit is {limit}; this case needs {needed}");
        assert!(
            std::env::var_os("CI").is_none(),
            "{why} (raise it: ulimit -Hn)"
        );
        eprintln!("reliability | 10,000 held connections | skipped: {why}");
        return;
    }
    let server = Server::start(&["--workers", "16", "-q"]);
    // `echopool bench --mode idle` holds them from one thread and sends open-loop.
    let output = Command::new(binary())
        .args(["bench", "--mode", "idle", "--json", "--addr"])
        .arg(server.addr().to_string())
        .args([
            "-c",
            "10000",
            "--rate",
            "300/s",
            "-n",
            "600",
            "--timeout",
            "5s",
        ])
        .args(["--connect-timeout", "5s", "-d", "60s"])
        .output()
        .expect("run echopool bench");
    let json = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{json}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| -> u64 {
        let at = json
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name}: {json}"));
        json[at + name.len() + 3..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {json}"))
    };
    assert_eq!(field("connections_held"), HELD as u64, "{json}");
    assert_eq!(field("answered"), 600, "{json}");
    assert_eq!(field("unanswered"), 0, "{json}");
    let threads = crate::common::procfs::threads(server.pid());
    report(
        "10,000 held connections",
        format_args!(
            "16 workers ({threads} threads in all), 600 messages open-loop at 300/s to random \
             connections: all answered; server RSS {}",
            mib(rss_bytes(server.pid()))
        ),
    );
}

/// The hard `RLIMIT_NOFILE` of this process (the server and `echopool bench` raise their soft
/// limits to it themselves).
fn descriptor_hard_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an `rlimit` for the duration of the call.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_max)
}

#[test]
fn one_worker_parking_at_once_answers_every_message_without_stalling() {
    // Every message goes through the lot and back to the only worker: a hand-back that no one
    // notices would stall the conversation until some other event.
    let server = Server::start(&["--workers", "1", "--park-after", "0"]);
    let mut client = server.connect();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let started = Instant::now();
    for round in 0..500u32 {
        let message = round.to_be_bytes();
        client.write_all(&message).unwrap();
        assert_eq!(read_exact(&mut client, 4), message, "round {round}");
    }
    let took = started.elapsed();
    let counters = server.counters_now();
    assert!(counters.get("resumes") >= 400, "{}", counters.line());
    report(
        "one worker, parks at once",
        format_args!(
            "--workers 1 --park-after 0: 500 round trips, each through the lot ({} resumes), \
             none waited 2 s; {took:.1?} in all",
            counters.get("resumes")
        ),
    );
}
