//! `echopool bench`: a load generator worth trusting. One blocking thread per connection (two in
//! `stream` mode), buffers made once per connection, every echoed byte checked, latency into an
//! HDR histogram per thread, merged at the end. `idle` mode is the exception: thousands of
//! connections on one thread with a readiness poller, messages sent open-loop.

mod args;
mod control;
mod idle;
mod oneshot;
mod payload;
mod progress;
mod rate;
mod report;
mod rr;
mod stream;
mod tally;

use std::io::{self, Write};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub use args::{BenchArgs, Mode};
pub use report::Summary;

use crate::client::addr::{connect_any, resolve};
use control::{Control, Phase};
use progress::Progress;
use report::Setup;
use tally::Tally;

/// How often the driving thread looks at the clock, the counters and the progress bar.
const TICK: Duration = Duration::from_millis(50);

/// Runs `echopool bench` and prints its summary (text, or JSON with `--json`).
///
/// # Errors
/// A usage error found after parsing (`--size` too large for the mode), an address that does not
/// resolve, or a failure to start a thread. Connect failures and broken connections are not
/// errors of the run: they are counted and reported.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Err(message) = args.validate() {
        eprintln!("echopool: error: {message}");
        return Ok(ExitCode::from(2));
    }
    let addrs = resolve(&args.addr)?;
    // When a name has several addresses (`localhost` may be `::1` first), one probe connection
    // picks the one that answers; if none does, the run still goes ahead and counts the connect
    // errors. A single address is used as it is, so that the server sees only the load.
    let target = match addrs[..] {
        [only] => only,
        _ => connect_any(&args.addr, &addrs, args.connect_timeout)
            .ok()
            .and_then(|probe| probe.peer_addr().ok())
            .unwrap_or(addrs[0]),
    };
    let connections = args.connections.get();
    let (mut tally, elapsed, idle) = if args.mode == Mode::Idle {
        let outcome = idle::run(&args, target)?;
        (outcome.tally, outcome.measured, Some(outcome.idle))
    } else {
        let mut ctl = Control::new(
            target,
            args.size,
            connections,
            args.connect_timeout,
            args.timeout,
        );
        ctl.spread_sources = args.mode == Mode::Oneshot && !args.one_source;
        let (tally, elapsed) = drive(&args, &ctl)?;
        (tally, elapsed, None)
    };
    let mut summary = Summary::new(
        Setup {
            mode: args.mode,
            addr: target.to_string(),
            connections,
            size: args.size,
            warmup: args.warmup,
            requests: args.requests.map(|n| n.get()),
        },
        &mut tally,
        elapsed,
    );
    summary.idle = idle;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &summary).context("writing the JSON summary")?;
        writeln!(out).context("writing the JSON summary")?;
    } else {
        summary
            .write_text(&mut out)
            .context("writing the summary")?;
    }
    out.flush().context("writing the summary")?;
    if summary.messages == 0 {
        eprintln!(
            "echopool: error: no message completed against {}",
            args.addr
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts one thread per connection, moves the run through its phases, and returns the merged
/// tally with the measured time.
fn drive(args: &BenchArgs, ctl: &Control) -> anyhow::Result<(Tally, Duration)> {
    let connections = args.connections.get();
    let quotas: Vec<Option<u64>> = (0..connections as u64)
        .map(|i| {
            args.requests.map(|n| {
                let (n, c) = (n.get(), connections as u64);
                n / c + u64::from(i < n % c)
            })
        })
        .collect();
    let limit = args.time_limit();
    let progress = match args.requests {
        Some(n) => Progress::new(n.get(), "messages"),
        None => Progress::new(limit.as_millis() as u64, "ms"),
    };
    let started = Instant::now();
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(connections);
        for (index, quota) in quotas.into_iter().enumerate() {
            if quota == Some(0) {
                continue;
            }
            let mode = args.mode;
            let handle = thread::Builder::new()
                .name(format!("bench-{index}"))
                .spawn_scoped(scope, move || match mode {
                    Mode::Rr => rr::run(ctl, index, quota),
                    Mode::Oneshot => oneshot::run(ctl, index, quota),
                    Mode::Stream => stream::run(ctl, index, quota),
                    Mode::Idle => unreachable!("idle mode runs on its own poller thread"),
                });
            match handle {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    ctl.set_phase(Phase::Stop);
                    bail!("starting connection thread {index} of {connections}: {err}");
                }
            }
        }

        while started.elapsed() < args.warmup {
            progress.update("warmup", 0, 0, started.elapsed());
            thread::sleep(TICK.min(args.warmup.saturating_sub(started.elapsed())));
        }
        let measuring = Instant::now();
        ctl.set_phase(Phase::Measure);
        loop {
            let elapsed = measuring.elapsed();
            let recorded = ctl.recorded();
            let all_done = handles.iter().all(|h| h.is_finished());
            if elapsed >= limit || all_done {
                break;
            }
            let position = match args.requests {
                Some(_) => recorded,
                None => elapsed.as_millis() as u64,
            };
            progress.update(args.mode.name(), position, recorded, elapsed);
            thread::sleep(TICK.min(limit - elapsed));
        }
        let stopped = Instant::now();
        ctl.set_phase(Phase::Stop);
        progress.finish();

        let mut total = Tally::new();
        for handle in handles {
            let tally = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a connection thread panicked"))?;
            total.merge(tally);
        }
        // With --requests, the run ends when the last connection meets its share.
        let end = match (args.requests, total.finished) {
            (Some(_), Some(last)) if total.messages >= args.requests.map_or(0, |n| n.get()) => last,
            _ => stopped,
        };
        Ok((total, end.saturating_duration_since(measuring)))
    })
}
