//! The plugin API as a handler author outside this crate uses it, and the invariant every
//! stock handler keeps: its output does not depend on how the input was split into reads.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use echopool_handlers::{
    CloseReason, CloseSummary, ConnInfo, Handler, Opened, Registry, Session, StreamConnection,
    StreamSession,
};
use proptest::prelude::*;

/// Counts the bytes of a connection and answers with the count at end of input; records the
/// summary it was closed with.
#[derive(Default)]
struct CountBytes {
    summaries: Arc<Mutex<Vec<CloseSummary>>>,
}

struct CountSession {
    seen: usize,
    summaries: Arc<Mutex<Vec<CloseSummary>>>,
}

impl Handler for CountBytes {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        Opened::session(CountSession {
            seen: 0,
            summaries: Arc::clone(&self.summaries),
        })
    }
}

impl Session for CountSession {
    fn data(&mut self, input: &[u8], _out: &mut dyn Write) -> io::Result<()> {
        self.seen += input.len();
        Ok(())
    }

    fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
        write!(out, "{}", self.seen)
    }

    fn closed(&mut self, summary: &CloseSummary) {
        self.summaries.lock().unwrap().push(*summary);
    }
}

#[test]
fn an_outside_session_is_driven_with_plain_buffers() {
    let handler = CountBytes::default();
    let mut session = handler
        .open(&ConnInfo::example())
        .into_session()
        .expect("a byte session");
    let mut out = Vec::new();
    session.data(b"abc", &mut out).unwrap();
    session.data(b"de", &mut out).unwrap();
    assert!(out.is_empty());
    session.eof(&mut out).unwrap();
    assert_eq!(out, b"5");
    let summary = CloseSummary {
        bytes_in: 5,
        bytes_out: 1,
        duration: Default::default(),
        reason: CloseReason::Eof,
    };
    session.closed(&summary);
    assert_eq!(*handler.summaries.lock().unwrap(), vec![summary]);
}

/// A handler that owns the raw socket: it greets, then echoes one read.
struct Greeter;

struct GreeterStream;

impl Handler for Greeter {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        Opened::stream(GreeterStream)
    }
}

impl StreamSession for GreeterStream {
    fn serve(&mut self, conn: &mut dyn StreamConnection) -> io::Result<()> {
        conn.write_all(b"hello ")?;
        let mut buf = [0; 64];
        let read = conn.read(&mut buf)?;
        conn.write_all(&buf[..read])
    }
}

#[test]
fn a_stream_session_serves_a_plain_socket() {
    let timeout = Some(std::time::Duration::from_secs(10));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_read_timeout(timeout).unwrap();
    let (mut served, _) = listener.accept().unwrap();
    served.set_read_timeout(timeout).unwrap();
    served.set_write_timeout(timeout).unwrap();
    let mut session = Greeter
        .open(&ConnInfo::example())
        .into_stream()
        .expect("a stream session");
    client.write_all(b"world").unwrap();
    session.serve(&mut served).unwrap();
    drop(served);
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "hello world");
}

#[test]
fn an_outside_handler_joins_the_registry_and_its_decorators() {
    let mut registry = Registry::stock();
    registry.add_handler("count", "count the bytes", || {
        Arc::new(CountBytes::default())
    });
    assert!(registry.names().contains(&"count".to_string()));
    let handler = registry.build("logging:count").unwrap();
    assert_eq!(feed(&*handler, &[b"1234"]), b"4");
}

/// Runs `handler` over `chunks` as the server would and returns what it wrote.
fn feed(handler: &dyn Handler, chunks: &[&[u8]]) -> Vec<u8> {
    let mut session = handler
        .open(&ConnInfo::example())
        .into_session()
        .expect("a byte session");
    let mut out = Vec::new();
    for chunk in chunks {
        session.data(chunk, &mut out).unwrap();
    }
    session.eof(&mut out).unwrap();
    out
}

fn split_at_cuts(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([input.len()]) {
        pieces.push(input[start..cut].to_vec());
        start = cut;
    }
    pieces
}

proptest! {
    #[test]
    fn every_stock_handler_gives_the_same_output_for_every_split(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,64}".prop_map(String::into_bytes),
        ],
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let registry = Registry::stock();
        for (spec, expected) in [
            ("echo", input.clone()),
            ("uppercase", uppercase_reference(&input)),
            ("logging", input.clone()),
            ("logging:uppercase", uppercase_reference(&input)),
        ] {
            let handler = registry.build(spec).unwrap();
            let whole = feed(&*handler, &[&input]);
            prop_assert_eq!(&whole, &expected, "{}", spec);
            let pieces = split_at_cuts(&input, &cuts);
            let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(feed(&*handler, &pieces), whole, "{}", spec);
        }
    }
}

/// What `uppercase` must answer: `str::to_uppercase` of each valid run, invalid bytes unchanged.
fn uppercase_reference(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in input.utf8_chunks() {
        out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}
