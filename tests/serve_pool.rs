//! The textbook pool (`--park off`: a worker holds its connection to the end), the queue
//! between accept and the workers, and the idle timeout.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{read_exact, round_trip, Server};

/// Whether an echo of `probe` comes back within `wait`; the probe is sent either way.
fn echoed_within(stream: &mut TcpStream, probe: &[u8], wait: Duration) -> bool {
    stream.write_all(probe).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0; probe.len()];
    let echoed = match stream.read_exact(&mut buf) {
        Ok(()) => {
            assert_eq!(buf, probe);
            true
        }
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(err) => panic!("{err}"),
    };
    stream.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    echoed
}

#[test]
fn many_concurrent_clients_against_two_workers_are_all_served() {
    let server = Server::start(&["--park", "off", "--workers", "2"]);
    let addr = server.addr();
    let clients: Vec<_> = (0..40)
        .map(|i| {
            thread::spawn(move || {
                let message = format!("client {i} says hello").repeat(50);
                let reply = round_trip(common::connect(addr), message.as_bytes());
                assert_eq!(reply, message.as_bytes(), "client {i}");
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
}

#[test]
fn two_workers_serve_exactly_two_connections_at_once() {
    let server = Server::start(&["--park", "off", "--workers", "2", "--queue", "4"]);
    let mut first = server.connect();
    let mut second = server.connect();
    assert!(echoed_within(&mut first, b"one", common::TIMEOUT));
    assert!(echoed_within(&mut second, b"two", common::TIMEOUT));
    // Both workers are held by open connections: the third waits in the queue.
    let mut third = server.connect();
    assert!(!echoed_within(
        &mut third,
        b"three",
        Duration::from_millis(300)
    ));
    // Closing one frees a worker, which takes the third and echoes what it had sent.
    drop(first);
    assert_eq!(read_exact(&mut third, 5), b"three");
}

#[test]
fn an_idle_timeout_frees_the_worker_for_the_next_client() {
    let server = Server::start(&["--park", "off", "--workers", "1", "--idle-timeout", "300ms"]);
    let mut silent = server.connect();
    thread::sleep(Duration::from_millis(50)); // let the worker take the silent client first
    let waiting = server.connect();
    let started = Instant::now();
    assert_eq!(
        round_trip(waiting, b"after the idle one"),
        b"after the idle one"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "served before the timeout?"
    );
    // The silent client was closed: its read ends.
    assert_eq!(silent.read(&mut [0; 16]).unwrap(), 0);
    server.wait_for_log("closing idle connection");
}

#[test]
fn overflow_reject_closes_what_the_queue_cannot_hold() {
    let server = Server::start(&[
        "--park",
        "off",
        "--workers",
        "1",
        "--queue",
        "1",
        "--overflow",
        "reject",
    ]);
    let mut busy = server.connect();
    assert!(echoed_within(&mut busy, b"busy", common::TIMEOUT));
    let mut queued = server.connect();
    queued.write_all(b"queued").unwrap();
    thread::sleep(Duration::from_millis(100)); // the accept loop queues it
    let mut rejected = server.connect();
    // Closed at once, without an echo: end of stream or a reset.
    let _ = rejected.write_all(b"rejected");
    match rejected.read(&mut [0; 16]) {
        Ok(0) => {}
        Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("a rejected connection read {other:?}"),
    }
    server.wait_for_log("connection rejected: queue full");
    // The queued one is served once the worker is free: nothing accepted into the queue is lost.
    drop(busy);
    assert_eq!(read_exact(&mut queued, 6), b"queued");
}

#[test]
fn overflow_block_keeps_later_clients_waiting_until_served() {
    let server = Server::start(&["--park", "off", "--workers", "1", "--queue", "1"]);
    let mut busy = server.connect();
    assert!(echoed_within(&mut busy, b"busy", common::TIMEOUT));
    let mut queued = server.connect();
    let mut in_backlog = server.connect();
    assert!(!echoed_within(
        &mut queued,
        b"q",
        Duration::from_millis(200)
    ));
    assert!(!echoed_within(
        &mut in_backlog,
        b"b",
        Duration::from_millis(200)
    ));
    drop(busy);
    assert_eq!(read_exact(&mut queued, 1), b"q");
    drop(queued);
    assert_eq!(read_exact(&mut in_backlog, 1), b"b");
    assert!(!server.stderr().contains("rejected"));
}
