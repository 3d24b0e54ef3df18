//! All of it at once: a flood, silent connections, a client that never reads and live
//! conversations, then SIGTERM in the middle. Every connection the server accepted ends
//! accounted for, and every byte a client sent before its own close comes back.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{connect_from, exchange, try_connect_from};
use crate::common::talker::Talker;
use crate::common::{Server, TIMEOUT};
use crate::report;

const SILENT: usize = 50;
const PER_IP: u64 = 4;
const TALKERS: u64 = 4;
const FLOODERS: u8 = 8;

fn from(last: [u8; 2]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, last[0], last[1]))
}

#[test]
fn sigterm_in_the_middle_of_everything_loses_nothing_and_leaves_nothing_uncounted() {
    let mut server = Server::start(&[
        "--workers",
        "16",
        "--max-per-ip",
        "4",
        "--write-timeout",
        "300ms",
        "--shutdown-timeout",
        "2s",
    ]);
    let addr = server.addr();
    // Silent connections from one address: PER_IP of them hold a worker, the rest are refused.
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|_| connect_from(from([0, 2]), addr))
        .collect();
    // A client that never reads.
    let mut hog = connect_from(from([0, 4]), addr);
    let hog_sender = thread::spawn(move || {
        let chunk = vec![b'h'; 64 << 10];
        while hog.write_all(&chunk).is_ok() {}
    });
    // Conversations, each from an address of its own.
    let talkers: Vec<Talker> = (0..TALKERS)
        .map(|i| Talker::start(connect_from(from([0, 5 + i as u8]), addr), i))
        .collect();
    // A flood from several addresses, until connects are refused.
    let stop_flood = AtomicBool::new(false);
    let (flood_echoed, flood_cut) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let signalled = thread::scope(|scope| {
        for t in 0..FLOODERS {
            let (stop_flood, flood_echoed, flood_cut) = (&stop_flood, &flood_echoed, &flood_cut);
            scope.spawn(move || {
                while !stop_flood.load(Ordering::SeqCst) {
                    let Ok(stream) = try_connect_from(from([1, t + 1]), addr) else {
                        break; // refused: the server has stopped accepting
                    };
                    match exchange(stream, b"flood").as_slice() {
                        b"flood" => flood_echoed.fetch_add(1, Ordering::SeqCst),
                        // Waiting in the backlog when the listener closed: never accepted.
                        b"" => flood_cut.fetch_add(1, Ordering::SeqCst),
                        other => panic!("partial echo {other:?}"),
                    };
                }
            });
        }
        let going = Instant::now() + TIMEOUT;
        while talkers.iter().any(|t| t.echoed() < 64 << 10)
            || flood_echoed.load(Ordering::SeqCst) < 200
        {
            assert!(Instant::now() < going, "the load never got going");
            thread::sleep(Duration::from_millis(10));
        }
        server.signal(libc::SIGTERM);
        let signalled = Instant::now();
        thread::sleep(Duration::from_millis(300));
        // Floods that still connect after this would be a server that never stops accepting.
        stop_flood.store(true, Ordering::SeqCst);
        signalled
    });
    let mut talked = 0;
    for talker in talkers {
        let (sent, echoed) = talker.finish();
        assert_eq!(echoed, sent, "a conversation lost bytes");
        talked += sent;
    }
    assert_eq!(
        server.wait_exit(TIMEOUT).code(),
        Some(0),
        "{}",
        server.stderr()
    );
    let exited = signalled.elapsed();
    hog_sender.join().unwrap();
    drop(silent);

    let c = server.final_counters();
    let (flood_echoed, flood_cut) = (flood_echoed.into_inner(), flood_cut.into_inner());
    let closed: u64 = [
        "eof",
        "idle-timeout",
        "write-timeout",
        "max-duration",
        "max-bytes",
        "shutdown",
        "error",
        "panic",
    ]
    .iter()
    .map(|reason| c.get(&format!("closed.{reason}")))
    .sum();
    let rejected = c.get("rejected.queue-full") + c.get("rejected.denied");
    let rejected = rejected + c.get("rejected.per-ip-limit");
    assert_eq!((c.get("active"), c.get("queued")), (0, 0), "{}", c.line());
    assert_eq!(
        c.get("accepted"),
        closed + rejected,
        "unaccounted: {}",
        c.line()
    );
    assert_eq!(
        c.get("rejected.per-ip-limit"),
        SILENT as u64 - PER_IP,
        "{}",
        c.line()
    );
    assert_eq!(
        c.get("closed.eof"),
        flood_echoed as u64 + TALKERS,
        "{}",
        c.line()
    );
    // The silent ones last until the deadline; the hog is ended by the write timeout, or by
    // the deadline on a machine slow enough that it had not filled its buffers.
    assert!(c.get("closed.shutdown") >= PER_IP, "{}", c.line());
    assert_eq!(
        c.get("closed.write-timeout") + c.get("closed.shutdown"),
        PER_IP + 1,
        "{}",
        c.line()
    );
    report(
        "SIGTERM amid everything",
        format_args!(
            "flood ({flood_echoed} echoed, {flood_cut} cut in the backlog), {SILENT} silent, a \
             non-reader and {TALKERS} conversations ({} KiB, all echoed): exit 0 after \
             {exited:.1?}; accepted = closed + rejected ({})",
            talked >> 10,
            c.line()
        ),
    );
}
