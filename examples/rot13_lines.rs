//! A custom handler in its own crate's terms: ROT13 each line, holding a partial line across
//! reads, then served by the echopool server with its own registry entry.
//!
//! ```text
//! cargo run --example rot13_lines            # listens on 127.0.0.1:7008
//! printf 'Hello\nWorld' | cargo run -- client --addr 127.0.0.1:7008
//! ```
//! Stop it with Ctrl-C (the server drains live connections first).

use std::io::{self, Write};
use std::sync::Arc;

use echopool::handlers::{ConnInfo, Handler, Opened, Registry, Session};
use echopool::server::{Config, Server};

/// ROT13 of every complete line; an unterminated last line is answered at end of input.
struct Rot13Lines;

/// One connection's partial line: the bytes since the last newline.
#[derive(Default)]
struct Rot13Session {
    line: Vec<u8>,
}

impl Handler for Rot13Lines {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        Opened::session(Rot13Session::default())
    }
}

impl Session for Rot13Session {
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
        for &byte in input {
            self.line.push(rot13(byte));
            if byte == b'\n' {
                out.write_all(&self.line)?;
                self.line.clear();
            }
        }
        Ok(())
    }

    fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&std::mem::take(&mut self.line))
    }
}

fn rot13(byte: u8) -> u8 {
    match byte {
        b'a'..=b'z' => (byte - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (byte - b'A' + 13) % 26 + b'A',
        _ => byte,
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(io::stderr).init();
    // A registry that knows the stock handlers and ours, so `logging:rot13` works too.
    let mut registry = Registry::stock();
    registry.add_handler("rot13", "ROT13 each line", || Arc::new(Rot13Lines));
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "logging:rot13".into());
    let handler = registry.build(&spec)?;

    let config = Config {
        listen: vec!["127.0.0.1:7008".parse()?],
        ..Config::default()
    };
    let server = Server::bind(config, handler)?;
    println!("listening on {}", server.local_addrs()[0]);
    let stop = server.shutdown_handle();
    let signals = echopool::signals::SignalThread::start(stop, server.stats())?;
    server.run();
    signals.stop();
    Ok(())
}
