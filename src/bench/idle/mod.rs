//! `idle`: many mostly idle connections held open on one thread, messages sent open-loop.
//!
//! The connections are opened first ([`connect`]), then the [`open_loop`] sends: a Poisson
//! [`schedule`] says when each message is due and which open connection takes it. One thread
//! does everything with a readiness poller (`polling`, level-triggered) and non-blocking
//! sockets, whatever the number of connections. A message is written
//! when due whatever the state of earlier ones (open loop: the load does not wait for the
//! server), and its latency runs from the time it was *due*, so a stall of the server or of this
//! thread shows in the latency instead of postponing the measurement (no coordinated omission).
//! Every message ends in the [`messages::Ledger`]: answered, or unanswered after `--timeout`.

mod connect;
mod messages;
mod nofile;
mod open_loop;
mod schedule;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use polling::Poller;

use super::args::BenchArgs;
use super::progress::Progress;
use super::report::{Idle, SendLag};
use super::tally::Tally;
use messages::Ledger;
use open_loop::Run;

/// What an `idle` run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Answered messages, every scheduled message's latency, errors, connections opened.
    pub tally: Tally,
    /// The measuring window: from the end of the warmup to the end of the schedule.
    pub measured: Duration,
    /// The counts only this mode has.
    pub idle: Idle,
}

/// Runs `--mode idle` against `target`.
///
/// # Errors
/// A descriptor limit too low for `--connections` (and not raisable), or a failure of the
/// poller; failed connects, broken connections and unanswered messages are counted instead.
pub fn run(args: &BenchArgs, target: SocketAddr) -> anyhow::Result<Outcome> {
    let connections = args.connections.get();
    nofile::ensure(connections as libc::rlim_t + nofile::SPARE)
        .map_err(|err| anyhow::anyhow!("--connections {connections}: {err}"))?;
    reduce_timer_slack();
    let poller = Poller::new().context("creating the readiness poller")?;
    let mut ledger = Ledger::new(args.size, args.timeout);

    let plan = connect::Plan {
        target,
        connections,
        concurrency: args.connect_concurrency(),
        spread_sources: !args.one_source,
        timeout: args.connect_timeout,
    };
    let connecting = Instant::now();
    let progress = Progress::new(connections as u64, "connections");
    let streams = connect::open_all(&poller, &plan, &mut ledger.tally, &progress)
        .context("opening the connections")?;
    progress.finish();
    let connect_time = connecting.elapsed();
    let connect_failed = ledger.tally.errors.connect;

    let mut run = Run::new(&poller, streams, ledger, args.size);
    let held = run.open();
    let window = run.send(args)?;
    let (connections_at_end, mut ledger) = run.close();

    let rate = args.rate();
    let lag = &ledger.send_lag;
    let us = |nanos: u64| nanos as f64 / 1000.0;
    let idle = Idle {
        rate: rate.to_string(),
        rate_per_s: rate.total(connections),
        scheduled: ledger.sent + ledger.unsent,
        sent: ledger.sent,
        answered: ledger.tally.messages,
        unanswered: ledger.unanswered,
        unsent: ledger.unsent,
        connect_failed,
        connections_held: held,
        connections_at_end,
        connect_s: connect_time.as_secs_f64(),
        drain_s: window.drain.as_secs_f64(),
        send_lag_us: SendLag {
            p50: us(lag.value_at_quantile(0.5)),
            p99: us(lag.value_at_quantile(0.99)),
            max: us(lag.max()),
        },
    };
    Ok(Outcome {
        tally: std::mem::take(&mut ledger.tally),
        measured: window.measured,
        idle,
    })
}

/// Linux wakes a sleeping thread up to its timer slack (50 µs by default) late, to batch
/// wake-ups; here every microsecond late is a microsecond added to the measured latency, so
/// this thread asks for 1 ns. Elsewhere the send lag in the report shows what the OS does.
fn reduce_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}
