//! SIGTERM in the middle of live conversations: what was sent before the close is echoed.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::talker::Talker;
use crate::common::{Server, TIMEOUT};
use crate::report;

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
        .any(|t| t.echoed() < 64 << 10)
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
