//! A zero-downtime upgrade on one host: with `--reuse-port` a second process takes the port
//! over while clients keep connecting, then the first is told to stop; no client sees a
//! refused connect, a reset, or a lost byte.

use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::churn::Churn;
use crate::common::{Server, TIMEOUT};
use crate::report;

/// Client threads, each from its own 127.0.0.x address.
const CLIENTS: u8 = 40;

#[test]
fn a_second_process_takes_the_port_over_and_nothing_is_lost() {
    let args = ["--reuse-port", "--workers", "16", "--access-log"];
    let mut old = Server::start(&args);
    let addr = old.addr();
    let churn = Churn::start(addr, (2..2 + CLIENTS).map(|n| IpAddr::from([127, 0, 0, n])));
    thread::sleep(Duration::from_millis(500));
    // The new process binds the same port beside the old one, then the old one is stopped.
    let listen = addr.to_string();
    let mut new = Server::start(&[&args[..], &["--listen", &listen]].concat());
    assert_eq!(new.addr(), addr);
    thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    old.signal(libc::SIGTERM);
    assert_eq!(old.wait_exit(TIMEOUT).code(), Some(0), "{}", old.stderr());
    let old_done = signalled.elapsed();
    // Connects the old process dropped while it closed are retried by the clients' kernels a
    // second later: keep the load on past that.
    thread::sleep(Duration::from_millis(1500));
    let outcome = churn.stop();
    assert!(
        outcome.failures.is_empty(),
        "{} failures, e.g. {:?}",
        outcome.failures.len(),
        &outcome.failures[..outcome.failures.len().min(5)]
    );
    let before = old.final_counters();
    assert_eq!(
        before.get("closed.eof"),
        before.get("accepted"),
        "the old process ended a connection itself: {}",
        before.line()
    );
    let served_by_new = new.counters_now().get("accepted");
    assert!(served_by_new > 0, "the new process served nobody");
    new.signal(libc::SIGTERM);
    assert_eq!(new.wait_exit(TIMEOUT).code(), Some(0));
    report(
        "upgrade with --reuse-port",
        format_args!(
            "{CLIENTS} clients in short conversations on one port; a second process started \
             on it, then SIGTERM to the first (exited after {old_done:.1?}, every connection it \
             took ended by its client: {} of {}): {} conversations, 0 refused, reset or short; \
             slowest connect {:.1?} (a SYN the old one dropped, retried by the client's kernel); \
             the new process served {served_by_new}",
            before.get("closed.eof"),
            before.get("accepted"),
            outcome.conversations,
            outcome.slowest_connect
        ),
    );
}
