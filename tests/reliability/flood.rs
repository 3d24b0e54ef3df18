//! Floods: 2,000 connects against 16 workers, under both queue-full policies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::exchange;
use crate::common::{connect, round_trip, Server, TIMEOUT};
use crate::report;

const CONNECTS: usize = 2_000;
/// Client threads at once: enough to keep every worker and the queue full, few enough for a
/// 2-core machine.
const CLIENTS: usize = 64;

/// What the clients of a flood saw.
struct Seen {
    echoed: usize,
    refused: usize,
    elapsed: Duration,
}

/// Runs [`CONNECTS`] connections from [`CLIENTS`] threads, each sending a message of its own
/// and reading until the server closes. Every reply must be the whole echo or nothing (a
/// refused connection); a partial or wrong echo fails the test.
fn flood(server: &Server) -> Seen {
    let addr = server.addr();
    let next = AtomicUsize::new(0);
    let echoed = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CONNECTS {
                    break;
                }
                let message = format!("flood connection {i:04};").repeat(16);
                let reply = exchange(connect(addr), message.as_bytes());
                if reply == message.as_bytes() {
                    echoed.fetch_add(1, Ordering::Relaxed);
                } else if reply.is_empty() {
                    refused.fetch_add(1, Ordering::Relaxed);
                } else {
                    panic!(
                        "connection {i}: partial or wrong echo ({} bytes)",
                        reply.len()
                    );
                }
            });
        }
    });
    Seen {
        echoed: echoed.into_inner(),
        refused: refused.into_inner(),
        elapsed: started.elapsed(),
    }
}

/// Stops the server with SIGTERM and checks that it exits 0.
fn stop(server: &mut Server) {
    server.signal(libc::SIGTERM);
    assert_eq!(
        server.wait_exit(TIMEOUT).code(),
        Some(0),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_flood_with_overflow_block_serves_every_connection() {
    let mut server = Server::start(&["--workers", "16", "--overflow", "block"]);
    let seen = flood(&server);
    // With `block`, the listen backlog absorbs the burst: nobody is turned away.
    assert_eq!(seen.echoed, CONNECTS, "refused {}", seen.refused);
    assert_eq!(round_trip(server.connect(), b"after"), b"after");
    stop(&mut server);
    let counters = server.final_counters();
    assert_eq!(counters.get("accepted"), CONNECTS as u64 + 1);
    assert_eq!(counters.get("closed.eof"), CONNECTS as u64 + 1);
    assert_eq!(counters.get("bytes_in"), counters.get("bytes_out"));
    report(
        "flood, overflow block",
        format_args!(
            "{CONNECTS} connects from {CLIENTS} threads vs 16 workers: {} echoed in full, 0 \
             refused, in {:.1?}; served afterwards; exit 0",
            seen.echoed, seen.elapsed
        ),
    );
}

#[test]
fn a_flood_with_overflow_reject_echoes_all_it_accepts_and_counts_the_rest() {
    let mut server = Server::start(&["--workers", "16", "--queue", "16", "--overflow", "reject"]);
    let seen = flood(&server);
    assert_eq!(seen.echoed + seen.refused, CONNECTS);
    assert!(seen.echoed >= 16, "only {} echoed", seen.echoed);
    assert_eq!(round_trip(server.connect(), b"after"), b"after");
    stop(&mut server);
    let counters = server.final_counters();
    // What clients saw and what the server counted agree exactly.
    assert_eq!(counters.get("accepted"), CONNECTS as u64 + 1);
    assert_eq!(counters.get("rejected.queue-full"), seen.refused as u64);
    assert_eq!(counters.get("closed.eof"), seen.echoed as u64 + 1);
    // One rejection line per second at most, however many were refused.
    let logged = server.stderr().matches("connection rejected").count();
    assert!(
        logged as u64 <= seen.elapsed.as_secs() + 2,
        "{logged} rejection lines in {:?}",
        seen.elapsed
    );
    report(
        "flood, overflow reject",
        format_args!(
            "{CONNECTS} connects vs 16 workers + queue 16: {} echoed in full, {} refused \
             (= rejected[queue-full]), {logged} log lines, in {:.1?}; served afterwards",
            seen.echoed, seen.refused, seen.elapsed
        ),
    );
}
