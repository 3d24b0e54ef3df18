//! SIGTERM with a full accept queue: the connections the kernel had already accepted (their
//! clients connected and sent their request) are served like live ones, not reset.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{read_exact, Server, TIMEOUT};
use crate::report;

/// Clients left waiting in the kernel's accept queue when the signal comes.
const QUEUED: usize = 40;

/// A client's request: 300 bytes of its own.
fn request(n: usize) -> Vec<u8> {
    (0..300).map(|i| (n * 7 + i) as u8).collect()
}

/// A connection that holds its place (a worker, or room under `--max-connections`) after one
/// echo, until it half-closes; with the echo still to come (`""` when it came already).
fn hold(server: &Server) -> (TcpStream, &'static [u8]) {
    let mut stream = server.connect();
    stream.write_all(b"hold").unwrap();
    assert_eq!(read_exact(&mut stream, 4), b"hold");
    (stream, b"")
}

fn release((mut stream, echo): (TcpStream, &[u8])) {
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, echo);
}

/// The outcome of a drain.
struct Drained {
    /// Connections the server had accepted before the signal.
    before: u64,
    /// Queued clients echoed in full.
    echoed: usize,
    /// Connects tried after the signal that the kernel still completed (before the server
    /// closed its door), then served like the queued ones; and when the first failed.
    late: u64,
    refused_after: Duration,
}

/// Fills the accept queue, signals, then frees the server: every queued client must get its
/// whole echo.
fn drain_a_full_queue(server: &mut Server, holders: Vec<(TcpStream, &[u8])>) -> Drained {
    // Each connects (the kernel completes the handshake), sends its request and half-closes,
    // as a client behind a load balancer would: it believes it is being served.
    let queued: Vec<TcpStream> = (0..QUEUED)
        .map(|n| {
            let mut stream = server.connect();
            stream.write_all(&request(n)).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            stream
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let before = server.counters_now().get("accepted");
    assert!(
        before < (holders.len() + QUEUED) as u64 - 10,
        "the queue was not full: {before} accepted"
    );
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    // New connects get no answer, or a refusal, once the signal is handled (a moment).
    let mut late = 0;
    let refused_after = loop {
        match TcpStream::connect_timeout(&server.addr(), Duration::from_millis(200)) {
            Err(_) => break signalled.elapsed(),
            Ok(_) => late += 1,
        }
        assert!(signalled.elapsed() < TIMEOUT, "still accepting");
    };
    for holder in holders {
        release(holder);
    }
    let mut echoed = 0;
    for (n, mut stream) in queued.into_iter().enumerate() {
        let mut reply = Vec::new();
        match stream.read_to_end(&mut reply) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {
                panic!("client {n} was reset after {} bytes", reply.len())
            }
            Err(err) => panic!("client {n}: {err}"),
        }
        assert_eq!(reply, request(n), "client {n}'s echo");
        echoed += 1;
    }
    assert_eq!(
        server.wait_exit(TIMEOUT).code(),
        Some(0),
        "{}",
        server.stderr()
    );
    Drained {
        before,
        echoed,
        late,
        refused_after,
    }
}

#[test]
fn sigterm_with_a_full_accept_queue_serves_every_queued_connection() {
    // The textbook pool, its one worker and its queue's one slot held: the accept loop waits
    // with a connection in hand, and the rest wait in the kernel's queue.
    let mut server = Server::start(&["--park", "off", "--workers", "1", "--queue", "1"]);
    let holders = vec![hold(&server), {
        let mut queued = server.connect();
        queued.write_all(b"in our queue").unwrap();
        (queued, &b"in our queue"[..])
    }];
    let Drained {
        before,
        echoed,
        late,
        refused_after,
    } = drain_a_full_queue(&mut server, holders);
    let counters = server.final_counters();
    let all = QUEUED as u64 + 2 + late;
    assert_eq!(counters.get("accepted"), all, "{}", counters.line());
    assert_eq!(counters.get("closed.eof"), all, "{}", counters.line());
    assert!(server
        .stderr()
        .contains("took the connections the kernel had queued"));
    report(
        "SIGTERM, full accept queue",
        format_args!(
            "--park off -w 1 --queue 1, worker and queue held, {QUEUED} clients connected and \
             sent (only {before} accepted by the server): after SIGTERM new connects failed \
             within {refused_after:.0?} ({late} completed before that, and were served), all \
             {echoed} queued clients were echoed in full, none reset; closed[eof={all}]; exit 0"
        ),
    );
}

#[test]
fn sigterm_at_max_connections_serves_every_queued_connection() {
    // With parking on, workers are not the limit; the room is: two held connections fill
    // --max-connections and the accept loop waits for room, the rest in the kernel's queue.
    let mut server = Server::start(&["--max-connections", "2", "--workers", "4"]);
    let holders = vec![hold(&server), hold(&server)];
    let Drained {
        before,
        echoed,
        late,
        refused_after,
    } = drain_a_full_queue(&mut server, holders);
    let counters = server.final_counters();
    let all = QUEUED as u64 + 2 + late;
    assert_eq!(counters.get("accepted"), all, "{}", counters.line());
    assert_eq!(counters.get("closed.eof"), all, "{}", counters.line());
    report(
        "SIGTERM at --max-connections",
        format_args!(
            "--max-connections 2, both held, {QUEUED} clients connected and sent ({before} \
             accepted): new connects failed within {refused_after:.0?} ({late} completed \
             before); all {echoed} queued clients echoed as room came, none reset; exit 0"
        ),
    );
}
