//! What the driving thread and the connection threads share: the phase of the run, the target,
//! and one live message counter per connection for the progress bar.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::thread;
use std::time::Duration;

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

    /// Opens a connection to the target with TCP_NODELAY and the I/O timeouts set, or counts
    /// the failure and sleeps a little (`backoff`, doubled up to 100 ms, reset on success) so
    /// that a dead server is not hammered in a busy loop.
    pub fn connect(&self, tally: &mut Tally, backoff: &mut Duration) -> Option<TcpStream> {
        let opened =
            TcpStream::connect_timeout(&self.target, self.connect_timeout).and_then(|stream| {
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
