//! Hostile clients: one that sends but never reads, and ones that reset mid-stream.

use std::io::{Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{is_closed_by_peer, send_without_reading, set_linger_zero, Pattern};
use crate::common::procfs::mib;
use crate::common::{round_trip, Server};
use crate::report;

#[test]
fn a_client_that_never_reads_is_closed_by_the_write_timeout() {
    let server = Server::start(&["--workers", "1", "--write-timeout", "300ms"]);
    let hog = server.connect();
    let started = Instant::now();
    // Sends until the server gives up on it; reads nothing, so the echo fills every buffer.
    let sender = send_without_reading(hog);
    server.wait_for_log("closing connection: the peer stopped reading");
    let closed_after = started.elapsed();
    // The only worker is free again.
    assert_eq!(round_trip(server.connect(), b"next client"), b"next client");
    let (sent, err) = sender.join().unwrap();
    assert!(is_closed_by_peer(&err), "the hog's send ended with {err}");
    // The next client's close is counted just after it sees the end: wait for both.
    server.wait_for_counters("write-timeout=1 eof=1", |c| {
        c.get("closed.write-timeout") == 1 && c.get("closed.eof") == 1
    });
    report(
        "client never reads",
        format_args!(
            "--write-timeout 300ms, 1 worker: closed after {closed_after:.1?} ({} sent, \
             send then failed: {}); logged, counted write-timeout=1; next client served",
            mib(sent),
            err.kind()
        ),
    );
}

/// Streams `send` bytes to the server, reads the echo only until `read` bytes came back (less
/// than was sent), waits for the writer to finish, then resets the connection with the rest
/// of the echo unread and in flight. Returns (bytes sent, bytes of echo read).
fn reset_mid_stream(server: &Server, send: u64, read: u64) -> (u64, u64) {
    let stream = server.connect();
    let pattern = Arc::new(Pattern::new(7));
    let mut writer = stream.try_clone().unwrap();
    let sending = Arc::clone(&pattern);
    let sender = thread::spawn(move || {
        let mut buf = vec![0; 16 << 10];
        let mut sent = 0;
        while sent < send {
            sending.fill(sent, &mut buf);
            writer.write_all(&buf).unwrap();
            sent += buf.len() as u64;
        }
        sent
        // `writer` closes here: only the reader's descriptor is left, so its close is the
        // connection's close.
    });
    let mut reader = stream;
    let mut buf = vec![0; 16 << 10];
    let mut echoed = 0;
    while echoed < read {
        let n = reader.read(&mut buf).expect("read the echo");
        assert_ne!(n, 0, "the server closed before the reset");
        assert!(pattern.matches(echoed, &buf[..n]), "wrong echo");
        echoed += n as u64;
    }
    // What is left (a few hundred KiB) fits in the socket buffers, so the writer finishes
    // although nobody reads.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sender.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the writer is stuck: buffers too small?"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let sent = sender.join().unwrap();
    set_linger_zero(&reader);
    drop(reader); // RST, with echo unread
    (sent, echoed)
}

#[test]
fn clients_that_reset_mid_stream_cost_only_their_connection() {
    const RESETS: u64 = 3;
    let server = Server::start(&["--workers", "2"]);
    let mut in_flight = Vec::new();
    for _ in 0..RESETS {
        let (sent, echoed) = reset_mid_stream(&server, (1 << 20) + (256 << 10), 1 << 20);
        in_flight.push(mib(sent - echoed));
    }
    let counters = server.wait_for_counters("error=3", |c| c.get("closed.error") == RESETS);
    assert_eq!(counters.get("closed.eof"), 0, "{}", counters.line());
    assert_eq!(round_trip(server.connect(), b"next client"), b"next client");
    assert!(!server.stderr().contains("panic"), "{}", server.stderr());
    report(
        "client resets mid-stream",
        format_args!(
            "{RESETS} clients reset (SO_LINGER 0) with {} of echo unread: server up, \
             counted error={RESETS}, next client served",
            in_flight.join(" / ")
        ),
    );
}
