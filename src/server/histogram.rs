//! A histogram of durations in fixed buckets of atomics, for the metrics endpoint.
//!
//! Recording is on every connection's path (its queue wait, its time served), so it takes no
//! lock: a search over a dozen bounds and two relaxed adds. A scrape reads the buckets one by
//! one; the count it reports is the sum of the buckets it read, so the buckets and the count
//! always agree, while the sum of durations may be a few observations ahead or behind.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the connection-duration buckets, in microseconds: a millisecond to half an
/// hour (an echo connection lasts from one round trip to a whole session).
pub(crate) const DURATION_BOUNDS_US: &[u64] = &[
    1_000,
    5_000,
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    60_000_000,
    300_000_000,
    1_800_000_000,
];

/// Upper bounds of the queue-wait buckets, in microseconds: from a worker that was free (tens
/// of microseconds) to a queue that held a connection for seconds.
pub(crate) const QUEUE_WAIT_BOUNDS_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000,
];

/// Counts of durations by bucket, and their sum.
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Ascending upper bounds (inclusive), in microseconds.
    bounds_us: &'static [u64],
    /// One count per bound, and the last for what is above them all.
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// (upper bound in seconds, observations in that bucket, not cumulative); the last bound
    /// is infinity.
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) count: u64,
    pub(crate) sum_seconds: f64,
}

impl Histogram {
    /// An empty histogram with these bucket bounds (microseconds, ascending).
    pub(crate) fn new(bounds_us: &'static [u64]) -> Self {
        debug_assert!(bounds_us.windows(2).all(|pair| pair[0] < pair[1]));
        Histogram {
            bounds_us,
            buckets: (0..=bounds_us.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub(crate) fn record(&self, duration: Duration) {
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let bucket = self.bounds_us.partition_point(|&bound| bound < us);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The buckets, count and sum now.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let bounds = self
            .bounds_us
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(self.buckets.iter())
            .map(|(bound, count)| (bound, count.load(Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, count)| count).sum(),
            buckets,
            sum_seconds: self.sum_us.load(Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let histogram = Histogram::new(&[10, 100]);
        for us in [0, 10, 11, 100, 101, 5_000] {
            histogram.record(Duration::from_micros(us));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(
            snapshot.buckets,
            vec![(0.00001, 2), (0.0001, 2), (f64::INFINITY, 2)]
        );
        assert_eq!(snapshot.count, 6);
        assert!((snapshot.sum_seconds - 0.005222).abs() < 1e-9);
    }

    #[test]
    fn the_stock_bounds_ascend() {
        for bounds in [DURATION_BOUNDS_US, QUEUE_WAIT_BOUNDS_US] {
            assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }
}
