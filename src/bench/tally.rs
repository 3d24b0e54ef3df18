//! One connection thread's results, kept on that thread while it runs (no sharing, no
//! allocation per message) and merged at the end.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency told apart from longer ones (about 69 s); slower messages are recorded
/// as this.
const HIGHEST_NANOS: u64 = 1 << 36;

/// What went wrong with one message or connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be opened (refused, unreachable, `--connect-timeout`).
    Connect,
    /// A read or write stalled for `--timeout`.
    Timeout,
    /// The server closed the connection before the whole echo arrived.
    Closed,
    /// The connection was reset or another I/O error ended it.
    Reset,
    /// The echo arrived but some byte differs from what was sent.
    Mismatch,
}

impl ErrorKind {
    /// Sorts an I/O error from a read or write into a kind.
    pub fn of(err: &io::Error) -> ErrorKind {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ErrorKind::Timeout,
            io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            _ => ErrorKind::Reset,
        }
    }
}

/// Error counts by kind.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Errors {
    /// All errors.
    pub total: u64,
    /// See [`ErrorKind::Connect`].
    pub connect: u64,
    /// See [`ErrorKind::Timeout`].
    pub timeout: u64,
    /// See [`ErrorKind::Closed`].
    pub closed: u64,
    /// See [`ErrorKind::Reset`].
    pub reset: u64,
    /// See [`ErrorKind::Mismatch`].
    pub mismatch: u64,
}

/// Latencies held back before they go into the histogram: recording them in a batch keeps
/// the histogram's counters in cache, where one at a time (between the kernel's network work)
/// each record missed it. It measurably slowed the load generator down.
const BATCH: usize = 256;

/// One thread's counts and latencies (or, after [`Tally::merge`], a whole run's).
#[derive(Debug, Clone)]
pub struct Tally {
    /// Messages completed and verified while measuring.
    pub messages: u64,
    /// Payload bytes echoed back while measuring (one way).
    pub bytes: u64,
    /// Connections opened while measuring.
    pub connections: u64,
    /// Errors during the whole run, warmup included.
    pub errors: Errors,
    /// Latency of each recorded message, in nanoseconds (see [`Tally::latency`]).
    latency: Histogram<u64>,
    /// Latencies not yet in `latency`, in nanoseconds.
    pending: [u64; BATCH],
    pending_len: usize,
    /// When this thread reached its `--requests` share, if it did.
    pub finished: Option<Instant>,
}

impl Tally {
    /// An empty tally; allocates the histogram once, up front.
    pub fn new() -> Tally {
        Tally {
            messages: 0,
            bytes: 0,
            connections: 0,
            errors: Errors::default(),
            latency: Histogram::new_with_bounds(1, HIGHEST_NANOS, 3)
                .expect("valid histogram bounds"),
            pending: [0; BATCH],
            pending_len: 0,
            finished: None,
        }
    }

    /// Latency of each recorded message, in nanoseconds.
    pub fn latency(&mut self) -> &Histogram<u64> {
        self.flush();
        &self.latency
    }

    fn flush(&mut self) {
        for &nanos in &self.pending[..self.pending_len] {
            self.latency.saturating_record(nanos);
        }
        self.pending_len = 0;
    }

    /// Records one completed message of `bytes` bytes that took `latency`.
    pub fn message(&mut self, latency: Duration, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
        self.record(latency);
    }

    /// Records the latency of a message that never completed (`idle` mode counts every message
    /// it scheduled in the percentiles, so that the ones given up on are not hidden) without
    /// counting it as a message.
    pub fn unanswered(&mut self, waited: Duration) {
        self.record(waited);
    }

    fn record(&mut self, latency: Duration) {
        if self.pending_len == BATCH {
            self.flush();
        }
        self.pending[self.pending_len] =
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.pending_len += 1;
    }

    /// Counts one error.
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors.total += 1;
        let count = match kind {
            ErrorKind::Connect => &mut self.errors.connect,
            ErrorKind::Timeout => &mut self.errors.timeout,
            ErrorKind::Closed => &mut self.errors.closed,
            ErrorKind::Reset => &mut self.errors.reset,
            ErrorKind::Mismatch => &mut self.errors.mismatch,
        };
        *count += 1;
    }

    /// Adds `other` into this tally; the finish time is the later one.
    pub fn merge(&mut self, mut other: Tally) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.connections += other.connections;
        let (a, b) = (&mut self.errors, &other.errors);
        a.total += b.total;
        a.connect += b.connect;
        a.timeout += b.timeout;
        a.closed += b.closed;
        a.reset += b.reset;
        a.mismatch += b.mismatch;
        self.flush();
        self.latency
            .add(other.latency())
            .expect("histograms with the same bounds add");
        self.finished = self.finished.max(other.finished);
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut a = Tally::new();
        a.message(Duration::from_micros(10), 64);
        a.error(ErrorKind::Connect);
        let mut b = Tally::new();
        b.message(Duration::from_micros(30), 64);
        b.error(ErrorKind::Mismatch);
        b.error(ErrorKind::of(&io::Error::from(
            io::ErrorKind::ConnectionReset,
        )));
        a.merge(b);
        assert_eq!((a.messages, a.bytes), (2, 128));
        assert_eq!(
            (
                a.errors.total,
                a.errors.connect,
                a.errors.mismatch,
                a.errors.reset
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(a.latency.len(), 2);
        assert!(a.latency.max() >= 29_000 && a.latency.max() <= 31_000);
    }

    #[test]
    fn batches_reach_the_histogram() {
        let mut t = Tally::new();
        let n = 3 * BATCH as u64 + 7;
        for i in 1..=n {
            t.message(Duration::from_nanos(i * 1000), 1);
        }
        assert_eq!(t.messages, n);
        assert_eq!(t.latency().len(), n);
        let mut total = Tally::new();
        total.merge(t);
        assert_eq!(total.latency().len(), n);
    }

    #[test]
    fn io_errors_sort_into_kinds() {
        let kind = |k| ErrorKind::of(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::WouldBlock), ErrorKind::Timeout);
        assert_eq!(kind(io::ErrorKind::UnexpectedEof), ErrorKind::Closed);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), ErrorKind::Reset);
    }
}
