//! What the `logging` decorator writes, read from a subscriber installed for this whole test
//! process. (A test-local subscriber races with other tests over tracing's cache of which call
//! sites anyone listens to; a process of its own has no such neighbours.)

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echopool_handlers::{CloseReason, CloseSummary, ConnInfo, Handler, Logging, Uppercase};

/// Collects formatted log lines so the test can read them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_open_chunks_and_close_and_passes_output_through() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();
    let mut out = Vec::new();
    let mut session = Logging::new(Uppercase)
        .open(&ConnInfo::example())
        .into_session()
        .expect("a byte session");
    session.data(b"hello\n", &mut out).unwrap();
    session.eof(&mut out).unwrap();
    session.closed(&CloseSummary {
        bytes_in: 6,
        bytes_out: 6,
        duration: Duration::from_millis(3),
        reason: CloseReason::Eof,
    });
    assert_eq!(out, b"HELLO\n");
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("connection opened peer=127.0.0.1:40000"),
        "{logs}"
    );
    assert!(logs.contains("bytes=6 wrote=6 preview=hello\\n"), "{logs}");
    assert!(
        logs.contains("bytes_in=6 bytes_out=6 elapsed_ms=3 reason=eof"),
        "{logs}"
    );
}
