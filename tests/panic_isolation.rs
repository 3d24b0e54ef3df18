//! A handler that panics costs only its own connection; the pool keeps its size.
//!
//! The stock handlers do not panic, so this embeds the real server with one that does, on a
//! real socket, as a library user would.

mod common;

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::Arc;

use echopool::handlers::{ConnInfo, Handler, Opened, Session};
use echopool::server::{Config, Server};

/// Echoes, but panics on any chunk that contains `panic`.
struct PanicOnWord;

struct PanicOnWordSession;

impl Handler for PanicOnWord {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        Opened::session(PanicOnWordSession)
    }
}

impl Session for PanicOnWordSession {
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
        if input.windows(5).any(|w| w == b"panic") {
            panic!("asked to panic");
        }
        out.write_all(input)
    }
}

#[test]
fn panics_close_only_their_connection_and_every_worker_survives() {
    let workers = 2;
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        workers: NonZeroUsize::new(workers).unwrap(),
        ..Config::default()
    };
    let server = Server::bind(config, Arc::new(PanicOnWord))
        .unwrap()
        .spawn()
        .unwrap();
    let addr = server.local_addrs()[0];

    // A live neighbour on the other worker is not disturbed by the panics.
    let mut neighbour = common::connect(addr);
    neighbour.write_all(b"hi").unwrap();
    assert_eq!(common::read_exact(&mut neighbour, 2), b"hi");

    // More panics than workers: if a panic cost a worker, later connections would hang.
    for _ in 0..workers * 3 {
        assert_eq!(
            common::round_trip(common::connect(addr), b"please panic"),
            b""
        );
    }
    neighbour.write_all(b"still here").unwrap();
    assert_eq!(common::read_exact(&mut neighbour, 10), b"still here");
    drop(neighbour);

    // Both workers still serve: two connections held open at once both get their echo.
    let mut a = common::connect(addr);
    let mut b = common::connect(addr);
    a.write_all(b"a").unwrap();
    b.write_all(b"b").unwrap();
    assert_eq!(common::read_exact(&mut a, 1), b"a");
    assert_eq!(common::read_exact(&mut b, 1), b"b");
    drop((a, b));

    let stats = server.stop();
    assert_eq!(
        stats.closed_for(echopool::handlers::CloseReason::Panic),
        workers as u64 * 3
    );
}
