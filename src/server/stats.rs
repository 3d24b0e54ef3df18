//! Counters of what the server did, kept in atomics and shown as a one-line summary.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use echopool_handlers::CloseReason;

/// Every `CloseReason`, in the order of [`Stats::closed`].
const REASONS: [CloseReason; 8] = [
    CloseReason::Eof,
    CloseReason::IdleTimeout,
    CloseReason::WriteTimeout,
    CloseReason::MaxDuration,
    CloseReason::MaxBytes,
    CloseReason::Shutdown,
    CloseReason::Error,
    CloseReason::Panic,
];

/// Why a connection was closed on the accept thread, before any worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The queue was full and `--overflow reject` is set.
    QueueFull,
    /// The address is outside `--allow` or inside `--deny`.
    Denied,
    /// The address holds `--max-per-ip` connections already.
    PerIpLimit,
}

impl RejectReason {
    /// Every reason, in the order of [`StatsSnapshot::rejected`].
    pub const ALL: [RejectReason; 3] = [
        RejectReason::QueueFull,
        RejectReason::Denied,
        RejectReason::PerIpLimit,
    ];

    /// A short lowercase name for logs and counters, e.g. `queue-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::QueueFull => "queue-full",
            RejectReason::Denied => "denied",
            RejectReason::PerIpLimit => "per-ip-limit",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Server-wide counters. Relaxed atomics: each number is exact, their sum at one instant is not.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    queued: AtomicU64,
    active: AtomicU64,
    closed: [AtomicU64; REASONS.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections accepted from the listeners.
    pub accepted: u64,
    /// Connections closed on the accept thread, by reason.
    pub rejected: Vec<(RejectReason, u64)>,
    /// Connections waiting in the queue for a worker.
    pub queued: u64,
    /// Connections a worker is serving.
    pub active: u64,
    /// Closed connections, by reason.
    pub closed: Vec<(CloseReason, u64)>,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
}

impl Stats {
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn enqueued(&self) {
        self.queued.fetch_add(1, Relaxed);
    }

    pub(crate) fn dequeued(&self) {
        self.queued.fetch_sub(1, Relaxed);
    }

    /// Counts a connection as active until the guard drops; a panic cannot leave it counted.
    pub(crate) fn active(&self) -> ActiveGuard<'_> {
        self.active.fetch_add(1, Relaxed);
        ActiveGuard(self)
    }

    /// Connections being served now.
    pub(crate) fn active_now(&self) -> u64 {
        self.active.load(Relaxed)
    }

    pub(crate) fn closed(&self, reason: CloseReason, bytes_in: u64, bytes_out: u64) {
        let index = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.closed[index].fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes_in, Relaxed);
        self.bytes_out.fetch_add(bytes_out, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            accepted: self.accepted.load(Relaxed),
            rejected: load_each(&RejectReason::ALL, &self.rejected),
            queued: self.queued.load(Relaxed),
            active: self.active.load(Relaxed),
            closed: load_each(&REASONS, &self.closed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}

/// Pairs each reason with its counter's value now.
fn load_each<R: Copy>(reasons: &[R], counters: &[AtomicU64]) -> Vec<(R, u64)> {
    reasons
        .iter()
        .zip(counters)
        .map(|(reason, count)| (*reason, count.load(Relaxed)))
        .collect()
}

/// Decrements the active count when dropped.
pub(crate) struct ActiveGuard<'a>(&'a Stats);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

impl StatsSnapshot {
    /// How many connections closed for `reason`.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        count_of(&self.closed, reason)
    }

    /// How many connections were rejected for `reason`.
    pub fn rejected_for(&self, reason: RejectReason) -> u64 {
        count_of(&self.rejected, reason)
    }
}

fn count_of<R: PartialEq>(counts: &[(R, u64)], reason: R) -> u64 {
    counts
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, count)| *count)
}

/// Writes `name[a=1 b=2]`, leaving out zero counts.
fn write_counts<R: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    counts: &[(R, u64)],
) -> fmt::Result {
    write!(f, "{name}[")?;
    let mut sep = "";
    for (reason, count) in counts.iter().filter(|(_, count)| *count > 0) {
        write!(f, "{sep}{reason}={count}")?;
        sep = " ";
    }
    f.write_str("]")
}

impl fmt::Display for StatsSnapshot {
    /// `accepted=12 active=1 queued=0 rejected[queue-full=2] closed[eof=9 idle-timeout=1]
    /// bytes_in=.. bytes_out=..`, leaving out zero counts in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} active={} queued={} ",
            self.accepted, self.active, self.queued
        )?;
        write_counts(f, "rejected", &self.rejected)?;
        f.write_str(" ")?;
        write_counts(f, "closed", &self.closed)?;
        write!(
            f,
            " bytes_in={} bytes_out={}",
            self.bytes_in, self.bytes_out
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_formats() {
        let stats = Stats::default();
        stats.accepted();
        stats.accepted();
        stats.rejected(RejectReason::QueueFull);
        {
            let _active = stats.active();
            assert_eq!(stats.snapshot().active, 1);
        }
        stats.closed(CloseReason::Eof, 10, 10);
        stats.closed(CloseReason::IdleTimeout, 0, 0);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.active, 0);
        assert_eq!(snapshot.closed_for(CloseReason::Eof), 1);
        assert_eq!(
            snapshot.to_string(),
            "accepted=2 active=0 queued=0 rejected[queue-full=1] \
             closed[eof=1 idle-timeout=1] bytes_in=10 bytes_out=10"
        );
    }
}
