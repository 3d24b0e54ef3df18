//! The metrics in the Prometheus text format (0.0.4), read from the server's own counters at
//! each scrape: nothing is counted twice.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::server::histogram::HistogramSnapshot;
use crate::server::stats::Stats;

/// Every metric name starts with this.
const PREFIX: &str = "echopool";

/// The registry a scrape encodes: the server's counters and the build's version.
pub(crate) struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// The metrics of a server with these counters and `workers` workers.
    pub(crate) fn new(stats: Stats, workers: usize) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "build",
            "The echopool version serving (always 1)",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(ServerCounters { stats, workers }));
        Exposition { registry }
    }

    /// The text a scrape returns.
    pub(crate) fn render(&self) -> String {
        let mut text = String::with_capacity(8 << 10);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The server's counters, read at each scrape.
struct ServerCounters {
    stats: Stats,
    workers: usize,
}

impl fmt::Debug for ServerCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCounters").finish_non_exhaustive()
    }
}

impl Collector for ServerCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let now = self.stats.snapshot();
        let (queue_wait, served) = self.stats.histograms();
        let e = &mut encoder;
        counter(
            e,
            "connections_accepted",
            "Connections accepted.",
            now.accepted,
        )?;
        by_reason(
            e,
            "connections_rejected",
            "Connections refused before their handler saw them, by reason.",
            now.rejected.iter().map(|(r, n)| (r.as_str(), *n)),
        )?;
        by_reason(
            e,
            "connections_closed",
            "Connections closed after a worker took them, by reason.",
            now.closed.iter().map(|(r, n)| (r.as_str(), *n)),
        )?;
        gauge(
            e,
            "connections_active",
            "Connections a worker is serving.",
            now.active,
        )?;
        gauge(
            e,
            "connections_queued",
            "Connections waiting for a worker.",
            now.queued,
        )?;
        gauge(
            e,
            "connections_parked",
            "Quiet connections waiting in the parking lot.",
            now.parked,
        )?;
        counter(
            e,
            "bytes_received",
            "Bytes received from clients.",
            now.bytes_in,
        )?;
        counter(e, "bytes_sent", "Bytes sent to clients.", now.bytes_out)?;
        histogram(
            e,
            "connection_duration_seconds",
            "Time from a worker's first look at a connection to its close.",
            &served,
        )?;
        histogram(
            e,
            "queue_wait_seconds",
            "Time from a connection's accept to a worker taking it.",
            &queue_wait,
        )?;
        counter(
            e,
            "accept_errors",
            "Errors accept returned (a connection reset before it was taken, out of descriptors).",
            self.stats.accept_errors(),
        )?;
        gauge(e, "workers", "Worker threads.", self.workers as u64)
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter with a `reason` label, every reason present (zero or not), so that a rate over a
/// reason that first happens mid-way starts from a known zero.
fn by_reason<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: impl Iterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (reason, count) in counts {
        let labels = [("reason", reason)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(
        snapshot.sum_seconds,
        snapshot.count,
        &snapshot.buckets,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::stats::RejectReason;
    use echopool_handlers::CloseReason;
    use std::time::Duration;

    #[test]
    fn every_metric_is_named_and_typed_and_reads_the_counters() {
        let stats = Stats::default();
        stats.accept().reject(RejectReason::Denied);
        stats.accept().close(CloseReason::Eof, 5, 7);
        stats.waited_in_queue(Duration::from_micros(70));
        stats.served_for(Duration::from_millis(3));
        stats.accept_failed();
        let text = Exposition::new(stats, 4).render();
        for line in [
            "# TYPE echopool_connections_accepted_total counter",
            "echopool_connections_accepted_total 2",
            "echopool_connections_rejected_total{reason=\"denied\"} 1",
            "echopool_connections_rejected_total{reason=\"queue-full\"} 0",
            "echopool_connections_closed_total{reason=\"eof\"} 1",
            "echopool_connections_closed_total{reason=\"panic\"} 0",
            "echopool_connections_active 0",
            "echopool_connections_queued 0",
            "echopool_connections_parked 0",
            "echopool_bytes_received_total 5",
            "echopool_bytes_sent_total 7",
            "# TYPE echopool_connection_duration_seconds histogram",
            "echopool_connection_duration_seconds_bucket{le=\"0.001\"} 0",
            "echopool_connection_duration_seconds_bucket{le=\"0.005\"} 1",
            "echopool_connection_duration_seconds_bucket{le=\"+Inf\"} 1",
            "echopool_connection_duration_seconds_count 1",
            "echopool_queue_wait_seconds_bucket{le=\"0.0001\"} 1",
            "echopool_queue_wait_seconds_count 1",
            "echopool_accept_errors_total 1",
            "echopool_workers 4",
            &format!(
                "echopool_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} is missing:\n{text}"
            );
        }
    }
}
