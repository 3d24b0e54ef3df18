//! Counters of what the server did, kept in atomics and shown as a one-line summary.
//!
//! One rule keeps them right on every path, including a panic: a count of connections in some
//! state (`queued`, `active`, `parked`) changes only through a guard that the connection holds
//! while it is in that state ([`Stats::enter`]), and every accepted connection holds a [`Ticket`]
//! that is spent exactly once, as one rejection or one close. So `accepted` always equals the
//! sum of `rejected[...]` and `closed[...]` once the connections have ended, and `open`
//! (accepted, not yet ended) is exact at every moment.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use echopool_handlers::CloseReason;
use tracing::error;

use super::histogram::{Histogram, HistogramSnapshot, DURATION_BOUNDS_US, QUEUE_WAIT_BOUNDS_US};

/// Why a connection was refused before its handler saw it: on the accept thread, or, with the
/// PROXY protocol, on a worker once its header told who the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The queue was full and `--overflow reject` is set.
    QueueFull,
    /// The address is outside `--allow` or inside `--deny`.
    Denied,
    /// The address holds `--max-per-ip` connections already.
    PerIpLimit,
    /// The server holds `--max-connections` already and `--overflow reject` is set.
    MaxConnections,
    /// With `--proxy-protocol`: the connection does not come from a `--proxy-from` address.
    NotAProxy,
    /// With `--proxy-protocol`: the PROXY header was missing, malformed, cut short, or did not
    /// arrive within `--idle-timeout`.
    ProxyHeader,
}

impl RejectReason {
    /// Every reason, in the order of [`StatsSnapshot::rejected`].
    pub const ALL: [RejectReason; 6] = [
        RejectReason::QueueFull,
        RejectReason::Denied,
        RejectReason::PerIpLimit,
        RejectReason::MaxConnections,
        RejectReason::NotAProxy,
        RejectReason::ProxyHeader,
    ];

    /// A short lowercase name for logs and counters, e.g. `queue-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::QueueFull => "queue-full",
            RejectReason::Denied => "denied",
            RejectReason::PerIpLimit => "per-ip-limit",
            RejectReason::MaxConnections => "max-connections",
            RejectReason::NotAProxy => "not-a-proxy",
            RejectReason::ProxyHeader => "proxy-header",
        }
    }

    /// This reason's position in [`RejectReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A count of connections in one state, changed only by the guard [`Stats::enter`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gauge {
    /// Accepted and waiting in the queue for a worker.
    Queued,
    /// Being served by a worker.
    Active,
    /// Quiet (or its client not reading), waiting in the parking lot for its socket.
    Parked,
}

/// Server-wide counters. Relaxed atomics: each number is exact, their sum at one instant is not.
/// Cheap to clone: the clones share the counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats(Arc<Counters>);

struct Counters {
    accepted: AtomicU64,
    /// Errors `accept` returned (other than its timeout and the shutdown's wake-up).
    accept_errors: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Accepted and not yet ended: tickets not yet spent.
    open: AtomicU64,
    queued: AtomicU64,
    active: AtomicU64,
    parked: AtomicU64,
    parks: AtomicU64,
    resumes: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    /// Of `closed`, those that ended in the parking lot (their deadline passed there).
    closed_parked: [AtomicU64; CloseReason::ALL.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// How long connections waited in the queue for a worker.
    queue_wait: Histogram,
    /// How long workers served connections, from the worker's first look to the close.
    served_for: Histogram,
    /// Told how many connections are open whenever one ends (see [`Stats::on_end`]).
    on_end: OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: AtomicU64::default(),
            accept_errors: AtomicU64::default(),
            rejected: Default::default(),
            open: AtomicU64::default(),
            queued: AtomicU64::default(),
            active: AtomicU64::default(),
            parked: AtomicU64::default(),
            parks: AtomicU64::default(),
            resumes: AtomicU64::default(),
            closed: Default::default(),
            closed_parked: Default::default(),
            bytes_in: AtomicU64::default(),
            bytes_out: AtomicU64::default(),
            queue_wait: Histogram::new(QUEUE_WAIT_BOUNDS_US),
            served_for: Histogram::new(DURATION_BOUNDS_US),
            on_end: OnceLock::new(),
        }
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Counters {
    fn gauge(&self, gauge: Gauge) -> &AtomicU64 {
        match gauge {
            Gauge::Queued => &self.queued,
            Gauge::Active => &self.active,
            Gauge::Parked => &self.parked,
        }
    }

    /// One connection ended: it is no longer open.
    fn ended(&self) {
        let open = self.open.fetch_sub(1, SeqCst) - 1;
        if let Some(on_end) = self.on_end.get() {
            on_end(open);
        }
    }
}

/// A copy of the counters at one moment.
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
    /// Connections waiting in the parking lot for their client.
    pub parked: u64,
    /// How many times a connection was parked.
    pub parks: u64,
    /// How many times a parked connection went back to the workers.
    pub resumes: u64,
    /// Closed connections, by reason.
    pub closed: Vec<(CloseReason, u64)>,
    /// Of the closed connections, those closed in the parking lot, by reason.
    pub closed_parked: Vec<(CloseReason, u64)>,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
}

impl Stats {
    /// Counts a connection accepted; the ticket it returns must be spent on its end.
    pub(crate) fn accept(&self) -> Ticket {
        self.0.accepted.fetch_add(1, Relaxed);
        self.0.open.fetch_add(1, SeqCst);
        Ticket {
            stats: Some(self.clone()),
        }
    }

    /// Connections accepted and not yet ended (served, queued or parked).
    pub(crate) fn open_now(&self) -> u64 {
        self.0.open.load(SeqCst)
    }

    /// Calls `on_end` with the number of open connections each time one ends (after it is
    /// counted), on the thread that ended it. Set once.
    pub(crate) fn on_end(&self, on_end: impl Fn(u64) + Send + Sync + 'static) {
        let _ = self.0.on_end.set(Box::new(on_end));
    }

    /// Counts a connection parked.
    pub(crate) fn parked(&self) {
        self.0.parks.fetch_add(1, Relaxed);
    }

    /// Counts a parked connection going back to the workers.
    pub(crate) fn resumed(&self) {
        self.0.resumes.fetch_add(1, Relaxed);
    }

    /// Counts an error from `accept`.
    pub(crate) fn accept_failed(&self) {
        self.0.accept_errors.fetch_add(1, Relaxed);
    }

    /// Records how long a connection waited for a worker.
    pub(crate) fn waited_in_queue(&self, wait: Duration) {
        self.0.queue_wait.record(wait);
    }

    /// Records how long a worker served a connection that ended.
    pub(crate) fn served_for(&self, duration: Duration) {
        self.0.served_for.record(duration);
    }

    /// Errors `accept` returned so far.
    pub(crate) fn accept_errors(&self) -> u64 {
        self.0.accept_errors.load(Relaxed)
    }

    /// The queue-wait and time-served histograms now.
    pub(crate) fn histograms(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (self.0.queue_wait.snapshot(), self.0.served_for.snapshot())
    }

    /// Counts one more connection in `gauge` until the guard drops.
    pub(crate) fn enter(&self, gauge: Gauge) -> InGauge {
        self.0.gauge(gauge).fetch_add(1, Relaxed);
        InGauge {
            stats: self.clone(),
            gauge,
        }
    }

    /// How many connections are in `gauge` now.
    pub(crate) fn now_in(&self, gauge: Gauge) -> u64 {
        self.0.gauge(gauge).load(Relaxed)
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let c = &self.0;
        StatsSnapshot {
            accepted: c.accepted.load(Relaxed),
            rejected: load_each(&RejectReason::ALL, &c.rejected),
            queued: c.queued.load(Relaxed),
            active: c.active.load(Relaxed),
            parked: c.parked.load(Relaxed),
            parks: c.parks.load(Relaxed),
            resumes: c.resumes.load(Relaxed),
            closed: load_each(&CloseReason::ALL, &c.closed),
            closed_parked: load_each(&CloseReason::ALL, &c.closed_parked),
            bytes_in: c.bytes_in.load(Relaxed),
            bytes_out: c.bytes_out.load(Relaxed),
        }
    }
}

/// One accepted connection's entry in the books, spent once: by [`reject`](Ticket::reject) or
/// [`close`](Ticket::close). A ticket dropped unspent (a bug) is counted as an error and logged,
/// never lost.
#[derive(Debug)]
#[must_use = "a connection's end must be counted"]
pub(crate) struct Ticket {
    /// `None` once spent.
    stats: Option<Stats>,
}

impl Ticket {
    /// Counts the connection as refused on the accept thread.
    pub(crate) fn reject(self, reason: RejectReason) {
        let stats = self.spend();
        stats.0.rejected[reason.index()].fetch_add(1, Relaxed);
        stats.0.ended();
    }

    /// Counts the connection as closed for `reason`, with the bytes it moved.
    pub(crate) fn close(self, reason: CloseReason, bytes_in: u64, bytes_out: u64) {
        self.spend().count_close(reason, bytes_in, bytes_out, false);
    }

    /// Counts the connection as closed in the parking lot for `reason`.
    pub(crate) fn close_parked(self, reason: CloseReason, bytes_in: u64, bytes_out: u64) {
        self.spend().count_close(reason, bytes_in, bytes_out, true);
    }

    /// The counters; the ticket is spent and its `Drop` does nothing.
    fn spend(mut self) -> Stats {
        self.stats.take().expect("a ticket is spent once")
    }
}

impl Stats {
    fn count_close(&self, reason: CloseReason, bytes_in: u64, bytes_out: u64, parked: bool) {
        let c = &self.0;
        c.closed[reason.index()].fetch_add(1, Relaxed);
        if parked {
            c.closed_parked[reason.index()].fetch_add(1, Relaxed);
        }
        c.bytes_in.fetch_add(bytes_in, Relaxed);
        c.bytes_out.fetch_add(bytes_out, Relaxed);
        c.ended();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(stats) = self.stats.take() {
            error!("a connection ended without being counted; counting it as an error");
            stats.count_close(CloseReason::Error, 0, 0, false);
        }
    }
}

/// A connection's place in a [`Gauge`]; leaving the state is dropping this.
#[derive(Debug)]
pub(crate) struct InGauge {
    stats: Stats,
    gauge: Gauge,
}

impl Drop for InGauge {
    fn drop(&mut self) {
        self.stats.0.gauge(self.gauge).fetch_sub(1, Relaxed);
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
    /// `accepted=12 active=1 queued=0 parked=0 parks=3 resumes=3 rejected[queue-full=2]
    /// closed[eof=9 idle-timeout=1] closed_parked[idle-timeout=1] bytes_in=.. bytes_out=..`,
    /// leaving out zero counts in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} active={} queued={} parked={} parks={} resumes={} ",
            self.accepted, self.active, self.queued, self.parked, self.parks, self.resumes
        )?;
        write_counts(f, "rejected", &self.rejected)?;
        f.write_str(" ")?;
        write_counts(f, "closed", &self.closed)?;
        f.write_str(" ")?;
        write_counts(f, "closed_parked", &self.closed_parked)?;
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
        stats.accept().reject(RejectReason::QueueFull);
        let ticket = stats.accept();
        {
            let _active = stats.enter(Gauge::Active);
            assert_eq!(stats.snapshot().active, 1);
        }
        ticket.close(CloseReason::Eof, 10, 10);
        stats.accept().close(CloseReason::IdleTimeout, 0, 0);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.active, 0);
        assert_eq!(snapshot.closed_for(CloseReason::Eof), 1);
        assert_eq!(
            snapshot.to_string(),
            "accepted=3 active=0 queued=0 parked=0 parks=0 resumes=0 rejected[queue-full=1] \
             closed[eof=1 idle-timeout=1] closed_parked[] bytes_in=10 bytes_out=10"
        );
    }

    #[test]
    fn every_close_reason_has_its_own_counter() {
        let stats = Stats::default();
        for reason in CloseReason::ALL {
            stats.accept().close(reason, 0, 0);
        }
        for (reason, count) in stats.snapshot().closed {
            assert_eq!(count, 1, "{reason}");
        }
    }

    #[test]
    fn a_gauge_guard_moved_across_threads_leaves_on_drop_even_in_a_panic() {
        let stats = Stats::default();
        let queued = stats.enter(Gauge::Queued);
        assert_eq!(stats.now_in(Gauge::Queued), 1);
        let panicked = std::thread::spawn(move || {
            let _queued = queued;
            panic!("a worker panics holding the guard");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(stats.now_in(Gauge::Queued), 0);
    }

    #[test]
    fn an_unspent_ticket_counts_as_an_error_not_as_lost() {
        let stats = Stats::default();
        drop(stats.accept());
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.accepted, 1);
        assert_eq!(snapshot.closed_for(CloseReason::Error), 1);
    }
}
