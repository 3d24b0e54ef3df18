//! A handler that panics on every tenth connection, embedded as a library (the stock handlers
//! never panic): only those connections are lost, and the pool keeps its size.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::thread;

use echopool::handlers::{CloseReason, ConnInfo, Handler, Opened, Session};
use echopool::server::{Config, Server};

use crate::common::clients::exchange;
use crate::common::{connect, read_exact};
use crate::report;

const PANIC_MESSAGE: &str = "panicking on a tenth connection, as the test asks";

/// Echoes, but every tenth connection it opens panics at its first chunk.
#[derive(Default)]
struct PanicEveryTenth {
    opened: AtomicU64,
}

struct MaybePanic {
    panics: bool,
}

impl Handler for PanicEveryTenth {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        let n = self.opened.fetch_add(1, Ordering::SeqCst) + 1;
        Opened::session(MaybePanic {
            panics: n.is_multiple_of(10),
        })
    }
}

impl Session for MaybePanic {
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
        if self.panics {
            panic!("{PANIC_MESSAGE}");
        }
        out.write_all(input)
    }
}

/// Keeps the expected panics' messages off the test output; any other panic is printed.
fn hide_expected_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if message != Some(PANIC_MESSAGE) {
                previous(info);
            }
        }));
    });
}

#[test]
fn a_handler_panicking_on_every_tenth_connection_loses_only_those() {
    const CONNECTIONS: usize = 100;
    const WORKERS: usize = 4;
    hide_expected_panics();
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        workers: NonZeroUsize::new(WORKERS).unwrap(),
        ..Config::default()
    };
    let server = Server::bind(config, Arc::new(PanicEveryTenth::default()))
        .unwrap()
        .spawn()
        .unwrap();
    let addr = server.local_addrs()[0];

    let (next, echoed, lost) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < CONNECTIONS {
                    let reply = exchange(connect(addr), b"echo me unless I am tenth");
                    match reply.as_slice() {
                        b"echo me unless I am tenth" => echoed.fetch_add(1, Ordering::SeqCst),
                        b"" => lost.fetch_add(1, Ordering::SeqCst),
                        other => panic!("partial echo {other:?}"),
                    };
                }
            });
        }
    });
    let (echoed, lost) = (echoed.into_inner(), lost.into_inner());
    assert_eq!((echoed, lost), (90, 10));

    // The pool kept its size: as many connections as workers are served at once.
    let mut held: Vec<_> = (0..WORKERS).map(|_| connect(addr)).collect();
    for (i, stream) in held.iter_mut().enumerate() {
        stream.write_all(&[b'0' + i as u8]).unwrap();
        assert_eq!(read_exact(stream, 1), [b'0' + i as u8]);
    }
    drop(held);

    let stats = server.stop();
    assert_eq!(stats.closed_for(CloseReason::Panic), 10, "{stats}");
    assert_eq!(
        stats.closed_for(CloseReason::Eof),
        90 + WORKERS as u64,
        "{stats}"
    );
    report(
        "handler panics every 10th",
        format_args!(
            "{CONNECTIONS} connections from 8 threads vs {WORKERS} workers: {echoed} echoed, \
             {lost} closed without echo (= closed[panic]); all {WORKERS} workers still serve"
        ),
    );
}
