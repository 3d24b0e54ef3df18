//! A handler that serves the socket itself (`Opened::Stream`), run through the real server: the
//! limits apply to its reads and writes, its bytes are counted, its close reason is the limit
//! that ended it, and a graceful stop that runs out of time ends it too.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echopool::handlers::{
    CloseReason, CloseSummary, ConnInfo, Handler, Opened, StreamConnection, StreamSession,
};
use echopool::server::{Config, Running, Server, StatsSnapshot};

/// What the stream session does with its connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Reads and writes back until the end of input, through the connection.
    Echo,
    /// Writes forever, never reading.
    Flood,
}

/// Records what every session saw and how it ended.
#[derive(Default)]
struct Seen {
    summaries: Vec<CloseSummary>,
    deadlines: Vec<Option<Instant>>,
}

struct StreamHandler {
    behaviour: Behaviour,
    seen: Arc<Mutex<Seen>>,
}

struct StreamEcho {
    behaviour: Behaviour,
    seen: Arc<Mutex<Seen>>,
}

impl Handler for StreamHandler {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        Opened::stream(StreamEcho {
            behaviour: self.behaviour,
            seen: Arc::clone(&self.seen),
        })
    }
}

impl StreamSession for StreamEcho {
    fn serve(&mut self, conn: &mut dyn StreamConnection) -> io::Result<()> {
        self.seen.lock().unwrap().deadlines.push(conn.deadline());
        let mut buf = [0; 4096];
        match self.behaviour {
            Behaviour::Echo => loop {
                let read = conn.read(&mut buf)?;
                if read == 0 {
                    return Ok(());
                }
                conn.write_all(&buf[..read])?;
            },
            Behaviour::Flood => loop {
                conn.write_all(&buf)?;
            },
        }
    }

    fn closed(&mut self, summary: &CloseSummary) {
        self.seen.lock().unwrap().summaries.push(*summary);
    }
}

struct Embedded {
    server: Running,
    seen: Arc<Mutex<Seen>>,
}

impl Embedded {
    fn start(behaviour: Behaviour, config: Config) -> Embedded {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let handler = StreamHandler {
            behaviour,
            seen: Arc::clone(&seen),
        };
        let config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            workers: NonZeroUsize::new(2).unwrap(),
            ..config
        };
        let server = Server::bind(config, Arc::new(handler))
            .unwrap()
            .spawn()
            .unwrap();
        Embedded { server, seen }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    /// Waits (bounded) until `count` sessions have closed; returns their summaries.
    fn closed(&self, count: usize) -> Vec<CloseSummary> {
        let deadline = Instant::now() + common::TIMEOUT;
        loop {
            let summaries = self.seen.lock().unwrap().summaries.clone();
            if summaries.len() >= count {
                return summaries;
            }
            assert!(Instant::now() < deadline, "only {summaries:?} closed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(self) -> StatsSnapshot {
        self.server.stop()
    }
}

#[test]
fn a_stream_session_is_counted_and_closed_like_a_byte_session() {
    let server = Embedded::start(Behaviour::Echo, Config::default());
    let reply = common::round_trip(common::connect(server.addr()), b"hello stream");
    assert_eq!(reply, b"hello stream");
    let [summary] = server.closed(1)[..] else {
        panic!("one session")
    };
    assert_eq!(summary.reason, CloseReason::Eof);
    assert_eq!((summary.bytes_in, summary.bytes_out), (12, 12));
    assert_eq!(server.seen.lock().unwrap().deadlines, [None]);
    let stats = server.stop();
    assert_eq!(stats.closed_for(CloseReason::Eof), 1, "{stats}");
    assert_eq!((stats.bytes_in, stats.bytes_out), (12, 12), "{stats}");
}

#[test]
fn a_silent_client_is_an_idle_timeout_not_a_write_timeout() {
    let config = Config {
        idle_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let server = Embedded::start(Behaviour::Echo, config);
    let mut client = common::connect(server.addr());
    client.write_all(b"hi").unwrap();
    assert_eq!(common::read_exact(&mut client, 2), b"hi");
    // Then silence: the server closes the connection.
    assert_eq!(client.read(&mut [0; 8]).unwrap(), 0);
    let [summary] = server.closed(1)[..] else {
        panic!("one session")
    };
    assert_eq!(summary.reason, CloseReason::IdleTimeout);
    let stats = server.stop();
    assert_eq!(stats.closed_for(CloseReason::IdleTimeout), 1, "{stats}");
    assert_eq!(stats.closed_for(CloseReason::WriteTimeout), 0, "{stats}");
}

#[test]
fn a_client_that_does_not_read_is_a_write_timeout() {
    let config = Config {
        write_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let server = Embedded::start(Behaviour::Flood, config);
    let _client = common::connect(server.addr());
    let [summary] = server.closed(1)[..] else {
        panic!("one session")
    };
    assert_eq!(summary.reason, CloseReason::WriteTimeout);
    assert!(summary.bytes_out > 0, "{summary:?}");
    server.stop();
}

#[test]
fn max_bytes_lets_through_exactly_what_is_allowed() {
    let config = Config {
        max_bytes: Some(4),
        ..Config::default()
    };
    let server = Embedded::start(Behaviour::Echo, config);
    let reply = common::round_trip(common::connect(server.addr()), b"0123456789");
    assert_eq!(reply, b"0123");
    let [summary] = server.closed(1)[..] else {
        panic!("one session")
    };
    assert_eq!(summary.reason, CloseReason::MaxBytes);
    assert_eq!(summary.bytes_in, 4);
    server.stop();
}

#[test]
fn max_duration_ends_a_busy_connection_and_the_session_knows_its_deadline() {
    let config = Config {
        max_duration: Some(Duration::from_millis(300)),
        ..Config::default()
    };
    let server = Embedded::start(Behaviour::Echo, config);
    let mut client = common::connect(server.addr());
    let started = Instant::now();
    // Never idle: a ping every 50 ms until the server closes.
    let mut pings = 0;
    loop {
        if client.write_all(b"p").is_err() {
            break;
        }
        let mut one = [0; 1];
        match client.read(&mut one) {
            Ok(1) => pings += 1,
            _ => break,
        }
        assert!(started.elapsed() < common::TIMEOUT, "never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pings >= 2, "{pings} pings");
    let [summary] = server.closed(1)[..] else {
        panic!("one session")
    };
    assert_eq!(summary.reason, CloseReason::MaxDuration);
    assert!(server.seen.lock().unwrap().deadlines[0].is_some());
    server.stop();
}

#[test]
fn a_graceful_stop_that_runs_out_of_time_ends_a_blocked_stream_session() {
    let config = Config {
        shutdown_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let server = Embedded::start(Behaviour::Echo, config);
    let mut client = common::connect(server.addr());
    client.write_all(b"x").unwrap();
    assert_eq!(common::read_exact(&mut client, 1), b"x");
    let seen = Arc::clone(&server.seen);
    let stopping = Instant::now();
    let stats = server.stop();
    assert!(stopping.elapsed() < common::TIMEOUT);
    assert_eq!(stats.closed_for(CloseReason::Shutdown), 1, "{stats}");
    assert_eq!(
        seen.lock().unwrap().summaries[0].reason,
        CloseReason::Shutdown
    );
    let _ = client.shutdown(Shutdown::Both);
}
