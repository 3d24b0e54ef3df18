//! The end of a run: the numbers as one serialisable summary, printed as text or JSON.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use super::args::Mode;
use super::tally::{Errors, Tally};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The slowest message.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

/// Everything a run found; `--json` prints exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The load pattern.
    pub mode: Mode,
    /// The address connected to.
    pub addr: String,
    /// Connections (or oneshot loops).
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// Seconds of warmup before measuring.
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
    /// Messages completed and verified while measuring.
    pub messages: u64,
    /// Connections opened while measuring.
    pub connections_opened: u64,
    /// Payload bytes echoed while measuring (one way).
    pub bytes: u64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Connections opened per second.
    pub conns_per_s: f64,
    /// Echoed payload in 10^6 bytes per second.
    pub mb_per_s: f64,
    /// Latency per message, in microseconds.
    pub latency_us: Latency,
    /// Errors by kind, warmup included.
    pub errors: Errors,
    /// The `--requests` goal, if one was set.
    pub requests: Option<u64>,
    /// False when `--requests` was set and the time limit came first.
    pub complete: bool,
    /// `idle` mode only (absent otherwise): the open-loop counts. There, `messages` are the
    /// answered messages and `latency_us` covers every message scheduled while measuring, the
    /// unanswered ones at `--timeout` or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Idle>,
}

/// What an `idle` run adds to the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    /// `--rate` as given (`1%`, `100/s`).
    pub rate: String,
    /// Messages scheduled per second in all.
    pub rate_per_s: f64,
    /// Messages due while measuring (= sent + unsent).
    pub scheduled: u64,
    /// Messages given to a connection (= answered + unanswered).
    pub sent: u64,
    /// Messages whose whole, correct echo came within `--timeout` of the scheduled time.
    pub answered: u64,
    /// Messages sent without their whole, correct echo within `--timeout` (or lost with their
    /// connection).
    pub unanswered: u64,
    /// Messages due while no connection was open.
    pub unsent: u64,
    /// Connects that failed or passed `--connect-timeout` (also in `errors.connect`).
    pub connect_failed: u64,
    /// Connections open when the schedule started.
    pub connections_held: usize,
    /// Connections still open when the run ended.
    pub connections_at_end: usize,
    /// Seconds the connect phase took.
    pub connect_s: f64,
    /// Seconds from the end of the schedule to the last echo (or give-up).
    pub drain_s: f64,
    /// From each message's scheduled time to the start of its write: the load generator's own
    /// lateness, already inside the latency, in microseconds.
    pub send_lag_us: SendLag,
}

/// Percentiles of the send lag, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SendLag {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The latest write.
    pub max: f64,
}

impl Summary {
    /// Builds the summary of a run that measured `tally` over `elapsed`.
    pub fn new(what: Setup, tally: &mut Tally, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let us = |nanos: u64| nanos as f64 / 1000.0;
        let (messages, bytes, connections, errors) =
            (tally.messages, tally.bytes, tally.connections, tally.errors);
        let h = tally.latency();
        Summary {
            mode: what.mode,
            addr: what.addr,
            connections: what.connections,
            size: what.size,
            warmup_s: what.warmup.as_secs_f64(),
            duration_s: elapsed.as_secs_f64(),
            messages,
            connections_opened: connections,
            bytes,
            msgs_per_s: messages as f64 / secs,
            conns_per_s: connections as f64 / secs,
            mb_per_s: bytes as f64 / secs / 1e6,
            latency_us: Latency {
                p50: us(h.value_at_quantile(0.50)),
                p90: us(h.value_at_quantile(0.90)),
                p99: us(h.value_at_quantile(0.99)),
                p999: us(h.value_at_quantile(0.999)),
                max: us(h.max()),
                mean: h.mean() / 1000.0,
            },
            errors,
            requests: what.requests,
            complete: !matches!(what.requests, Some(goal) if messages < goal),
            idle: None,
        }
    }

    /// Writes the human-readable summary.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let l = &self.latency_us;
        let latency_note = if self.idle.is_some() {
            "   (from the scheduled send time; unanswered count as >= --timeout)"
        } else {
            ""
        };
        writeln!(
            out,
            "{} · {} × {} B · {} · {:.2} s measured after {:.2} s warmup",
            self.mode.name(),
            self.connections,
            self.size,
            self.addr,
            self.duration_s,
            self.warmup_s,
        )?;
        if let Some(idle) = &self.idle {
            // The connections were all opened before measuring: no conn/s.
            idle.write_text(out, self.connections)?;
            writeln!(
                out,
                "throughput  {:.0} msg/s   {:.2} MB/s   ({} messages answered, {} bytes)",
                self.msgs_per_s, self.mb_per_s, self.messages, self.bytes
            )?;
        } else {
            writeln!(
                out,
                "throughput  {:.0} msg/s   {:.0} conn/s   {:.2} MB/s   ({} messages, {} bytes)",
                self.msgs_per_s, self.conns_per_s, self.mb_per_s, self.messages, self.bytes
            )?;
        }
        writeln!(
            out,
            "latency     p50 {}   p90 {}   p99 {}   p99.9 {}   max {}{latency_note}",
            micros(l.p50),
            micros(l.p90),
            micros(l.p99),
            micros(l.p999),
            micros(l.max)
        )?;
        if let Some(idle) = &self.idle {
            let lag = &idle.send_lag_us;
            writeln!(
                out,
                "send lag    p50 {}   p99 {}   max {}   (the load generator's own lateness)",
                micros(lag.p50),
                micros(lag.p99),
                micros(lag.max)
            )?;
        }
        let e = &self.errors;
        if e.total == 0 {
            writeln!(out, "errors      0")?;
        } else {
            writeln!(
                out,
                "errors      {} (connect {}, timeout {}, closed {}, reset {}, mismatch {})",
                e.total, e.connect, e.timeout, e.closed, e.reset, e.mismatch
            )?;
        }
        if let (Some(goal), false) = (self.requests, self.complete) {
            writeln!(
                out,
                "incomplete  {} of {goal} requests before the time limit",
                self.messages
            )?;
        }
        Ok(())
    }
}

impl Idle {
    fn write_text(&self, out: &mut dyn Write, asked: usize) -> std::io::Result<()> {
        writeln!(
            out,
            "connect     {} of {asked} held in {:.2} s, {} failed; {} open at the end",
            self.connections_held, self.connect_s, self.connect_failed, self.connections_at_end
        )?;
        writeln!(
            out,
            "open loop   {} = {:.1} msg/s: {} scheduled, {} sent, {} answered, {} unanswered, \
             {} unsent; drained in {:.2} s",
            self.rate,
            self.rate_per_s,
            self.scheduled,
            self.sent,
            self.answered,
            self.unanswered,
            self.unsent,
            self.drain_s
        )
    }
}

/// What was asked for, as the summary repeats it.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The load pattern.
    pub mode: Mode,
    /// The address connected to.
    pub addr: String,
    /// Connections.
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// The warmup.
    pub warmup: Duration,
    /// The `--requests` goal.
    pub requests: Option<u64>,
}

fn micros(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{us:.1}µs")
    }
}
