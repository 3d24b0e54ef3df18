//! SIGTERM in the middle of live conversations: what was sent before the close is echoed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{is_closed_by_peer, Pattern};
use crate::common::{Server, TIMEOUT};
use crate::report;

/// A client in mid-conversation: sends 4 KiB messages of its pattern a millisecond apart
/// until told to stop (then half-closes), while a reader checks the echo until the server
/// closes.
struct Talker {
    echoed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    writer: thread::JoinHandle<u64>,
    reader: thread::JoinHandle<u64>,
}

impl Talker {
    fn start(stream: TcpStream, seed: u64) -> Talker {
        let pattern = Arc::new(Pattern::new(seed));
        let (echoed, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut out = stream.try_clone().unwrap();
        let (sending, stopping) = (Arc::clone(&pattern), Arc::clone(&stop));
        let writer = thread::spawn(move || {
            let mut buf = [0; 4096];
            let mut sent = 0;
            while !stopping.load(Ordering::SeqCst) {
                sending.fill(sent, &mut buf);
                match out.write_all(&buf) {
                    Ok(()) => sent += buf.len() as u64,
                    // Closed by the server at the shutdown deadline (only the stubborn one).
                    Err(err) if is_closed_by_peer(&err) => return sent,
                    Err(err) => panic!("send: {err}"),
                }
                thread::sleep(Duration::from_millis(1));
            }
            let _ = out.shutdown(Shutdown::Write);
            sent
        });
        let counter = Arc::clone(&echoed);
        let reader = thread::spawn(move || {
            let mut stream = stream;
            let mut buf = vec![0; 64 << 10];
            let mut at = 0;
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(n) => n,
                    Err(err) if is_closed_by_peer(&err) => 0,
                    Err(err) => panic!("read the echo: {err}"),
                };
                if n == 0 {
                    return at;
                }
                assert!(pattern.matches(at, &buf[..n]), "wrong echo at byte {at}");
                at += n as u64;
                counter.store(at, Ordering::SeqCst);
            }
        });
        Talker {
            echoed,
            stop,
            writer,
            reader,
        }
    }

    /// Stops sending; returns (bytes sent, bytes echoed) once the server has closed.
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        (self.writer.join().unwrap(), self.reader.join().unwrap())
    }

    /// Keeps sending until the server closes the connection; returns (bytes sent, bytes
    /// echoed).
    fn talk_until_closed(self) -> (u64, u64) {
        let echoed = self.reader.join().unwrap();
        self.stop.store(true, Ordering::SeqCst);
        (self.writer.join().unwrap(), echoed)
    }
}

#[test]
fn sigterm_mid_conversation_echoes_every_byte_sent_before_close() {
    const POLITE: u64 = 6;
    let mut server = Server::start(&["--workers", "8", "--shutdown-timeout", "1500ms"]);
    let polite: Vec<Talker> = (0..POLITE)
        .map(|seed| Talker::start(server.connect(), seed))
        .collect();
    // One more that never stops talking: the shutdown timeout has to end it.
    let stubborn = Talker::start(server.connect(), 99);
    let all_talking = Instant::now() + TIMEOUT;
    while polite
        .iter()
        .chain([&stubborn])
        .any(|t| t.echoed.load(Ordering::SeqCst) < 64 << 10)
    {
        assert!(
            Instant::now() < all_talking,
            "the conversations never got going"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    // The conversations go on after the signal; new clients are refused meanwhile.
    while TcpStream::connect_timeout(&server.addr(), Duration::from_millis(200)).is_ok() {
        assert!(
            signalled.elapsed() < TIMEOUT,
            "still accepting after SIGTERM"
        );
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(300).saturating_sub(signalled.elapsed()));
    let mut totals = Vec::new();
    for talker in polite {
        let (sent, echoed) = talker.finish();
        assert_eq!(echoed, sent, "a polite client lost bytes");
        totals.push(sent);
    }
    let polite_done = signalled.elapsed();
    let (stubborn_sent, stubborn_echoed) = stubborn.talk_until_closed();
    let stubborn_closed = signalled.elapsed();
    assert!(stubborn_echoed <= stubborn_sent);
    assert!(
        stubborn_closed >= Duration::from_millis(1400),
        "closed early: {stubborn_closed:?}"
    );
    assert_eq!(
        server.wait_exit(TIMEOUT).code(),
        Some(0),
        "{}",
        server.stderr()
    );
    let counters = server.final_counters();
    // Everything but the stubborn one ended on the client's own half-close: the polite six,
    // and any probe connect accepted just before the listener closed.
    assert!(counters.get("accepted") > POLITE, "{}", counters.line());
    assert_eq!(
        counters.get("closed.eof"),
        counters.get("accepted") - 1,
        "{}",
        counters.line()
    );
    assert_eq!(counters.get("closed.shutdown"), 1, "{}", counters.line());
    let polite_bytes: u64 = totals.iter().sum();
    report(
        "SIGTERM mid-conversation",
        format_args!(
            "{POLITE} clients talking through SIGTERM: all {} KiB they sent echoed before \
             their close ({polite_done:.1?} after the signal); a 7th still talking at the \
             1.5 s deadline was closed with {} of {} KiB echoed byte-exact (closed[shutdown=1]); \
             exit 0",
            polite_bytes >> 10,
            stubborn_echoed >> 10,
            stubborn_sent >> 10
        ),
    );
}
