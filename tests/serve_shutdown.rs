//! SIGTERM and SIGINT: stop accepting at once, drain live connections, exit 0.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{read_exact, Server, TIMEOUT};

/// Waits up to `TIMEOUT` until connecting to the server is refused; returns how long it took.
fn until_refused(server: &Server) -> Duration {
    let started = Instant::now();
    while TcpStream::connect_timeout(&server.addr(), Duration::from_millis(200)).is_ok() {
        assert!(
            started.elapsed() < TIMEOUT,
            "still accepting after the signal"
        );
        thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

#[test]
fn sigterm_with_no_clients_exits_zero() {
    let mut server = Server::start(&[]);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
    assert!(server.stderr().contains("stopped"), "{}", server.stderr());
}

#[test]
fn sigint_stops_accepting_while_a_live_client_finishes_its_conversation() {
    let mut server = Server::start(&["--handler", "logging"]);
    let mut live = server.connect();
    live.write_all(b"before").unwrap();
    assert_eq!(read_exact(&mut live, 6), b"before");
    server.signal(libc::SIGINT);
    let refused_after = until_refused(&server);
    eprintln!("new connects refused {refused_after:?} after SIGINT");
    // The live connection is still served.
    live.write_all(b"after the signal").unwrap();
    assert_eq!(read_exact(&mut live, 16), b"after the signal");
    live.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(live.read(&mut [0; 8]).unwrap(), 0);
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
    let logs = server.stderr();
    assert!(logs.contains("reason=eof"), "{logs}");
}

#[test]
fn the_shutdown_timeout_closes_connections_that_do_not_end() {
    let mut server = Server::start(&["--shutdown-timeout", "300ms", "--idle-timeout", "0"]);
    let mut silent = server.connect();
    silent.write_all(b"x").unwrap();
    assert_eq!(read_exact(&mut silent, 1), b"x");
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    // The server closes the connection at the deadline: our read sees the end.
    assert_eq!(silent.read(&mut [0; 8]).unwrap(), 0);
    assert!(signalled.elapsed() >= Duration::from_millis(250));
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
    let logs = server.stderr();
    assert!(logs.contains("shutdown timeout passed"), "{logs}");
    assert!(
        logs.contains("shutdown=1"),
        "closed for shutdown is counted: {logs}"
    );
}

#[test]
fn queued_connections_are_still_served_during_the_drain() {
    let mut server = Server::start(&["--workers", "1", "--queue", "4"]);
    let mut first = server.connect();
    first.write_all(b"1").unwrap();
    assert_eq!(read_exact(&mut first, 1), b"1");
    let mut queued = server.connect();
    queued.write_all(b"queued").unwrap();
    thread::sleep(Duration::from_millis(100));
    server.signal(libc::SIGTERM);
    until_refused(&server);
    drop(first);
    assert_eq!(read_exact(&mut queued, 6), b"queued");
    drop(queued);
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Server::start(&["--shutdown-timeout", "1m"]);
    let mut live = server.connect();
    live.write_all(b"x").unwrap();
    assert_eq!(read_exact(&mut live, 1), b"x");
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down gracefully");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn sigusr1_logs_the_counters_and_keeps_serving() {
    let server = Server::start(&[]);
    assert_eq!(
        common::round_trip(server.connect(), b"count me"),
        b"count me"
    );
    server.signal(libc::SIGUSR1);
    let logs = server.wait_for_log("stats=");
    assert!(logs.contains("accepted=1"), "{logs}");
    assert_eq!(common::round_trip(server.connect(), b"still"), b"still");
}
