//! What the driving thread and the connection threads share: the phase of the run, the target,
//! and one live message counter per connection for the progress bar.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::thread;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::tally::{ErrorKind, Tally};

/// The phase of a run; threads read it once or twice per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Load runs, nothing is recorded.
    Warmup = 0,
    /// Load runs and every completed message is recorded.
    Measure = 1,
    /// Threads finish the message in hand and return.
    Stop = 2,
}

/// A counter on its own cache line, so that threads bumping neighbouring counters do not
/// slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct PaddedCounter(pub AtomicU64);

/// Shared by every thread of a run.
#[derive(Debug)]
pub struct Control {
    phase: AtomicU8,
    /// Where to connect.
    pub target: SocketAddr,
    /// Bytes per message.
    pub size: usize,
    /// Limit on each connect.
    pub connect_timeout: Duration,
    /// Limit on each read and write.
    pub io_timeout: Duration,
    /// Messages recorded so far, per connection.
    pub progress: Box<[PaddedCounter]>,
    /// Whether `oneshot` connections take turns among loopback source addresses
    /// (see [`loopback_source`]).
    pub spread_sources: bool,
}

impl Control {
    /// A run in its warmup phase, with one progress counter per connection.
    pub fn new(
        target: SocketAddr,
        size: usize,
        connections: usize,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Self {
        Control {
            phase: AtomicU8::new(Phase::Warmup as u8),
            target,
            size,
            connect_timeout,
            io_timeout,
            progress: (0..connections).map(|_| PaddedCounter::default()).collect(),
            spread_sources: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Warmup,
            1 => Phase::Measure,
            _ => Phase::Stop,
        }
    }

    /// Moves the run to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Messages recorded so far by every connection.
    pub fn recorded(&self) -> u64 {
        self.progress
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }

    /// Opens a connection to the target (from `source`, if given) with TCP_NODELAY and the I/O
    /// timeouts set, or counts the failure and sleeps a little (`backoff`, doubled up to
    /// 100 ms, reset on success) so that a dead server is not hammered in a busy loop.
    pub fn connect(
        &self,
        source: Option<SocketAddr>,
        tally: &mut Tally,
        backoff: &mut Duration,
    ) -> Option<TcpStream> {
        let opened = open(self.target, source, self.connect_timeout).and_then(|stream| {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(self.io_timeout))?;
            stream.set_write_timeout(Some(self.io_timeout))?;
            Ok(stream)
        });
        match opened {
            Ok(stream) => {
                *backoff = Duration::ZERO;
                Some(stream)
            }
            Err(_) => {
                tally.error(ErrorKind::Connect);
                *backoff =
                    (*backoff * 2).clamp(Duration::from_millis(1), Duration::from_millis(100));
                if self.phase() != Phase::Stop {
                    thread::sleep(*backoff);
                }
                None
            }
        }
    }
}

/// The source address for the `n`th short connection to `target`: on a 127.0.0.0/8 target, one
/// of 127.0.0.2–127.0.0.254 in turn; otherwise `None` (the kernel chooses).
///
/// Linux reuses the port of a connection this side closed (in TIME_WAIT) only about a second
/// later, so one source address caps a connect-close loop at roughly the port range per
/// second (about 14,000 connections/s here), whatever the server. Spreading the sources lifts
/// that cap; on loopback every 127/8 address is local.
pub fn loopback_source(target: SocketAddr, n: u64) -> Option<SocketAddr> {
    match target {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            let last = 2 + (n % 253) as u8;
            Some(SocketAddr::from(([127, 0, 0, last], 0)))
        }
        _ => None,
    }
}

fn open(
    target: SocketAddr,
    source: Option<SocketAddr>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect_timeout(&target, timeout);
    };
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&source.into())?;
    socket.connect_timeout(&target.into(), timeout)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spread_only_on_ipv4_loopback() {
        let local: SocketAddr = "127.0.0.1:7007".parse().unwrap();
        assert_eq!(
            loopback_source(local, 0),
            Some("127.0.0.2:0".parse().unwrap())
        );
        assert_eq!(
            loopback_source(local, 252),
            Some("127.0.0.254:0".parse().unwrap())
        );
        assert_eq!(
            loopback_source(local, 253),
            Some("127.0.0.2:0".parse().unwrap())
        );
        assert_eq!(loopback_source("[::1]:7007".parse().unwrap(), 0), None);
        assert_eq!(loopback_source("10.0.0.1:7007".parse().unwrap(), 0), None);
    }
}
