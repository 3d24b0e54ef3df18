//! The flags of `echopool bench`.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::rate::{parse_rate, Rate, MAX_RATE};
use crate::client::addr::parse_host_port;
use crate::client::DEFAULT_ADDR;
use crate::duration_arg::{parse_duration, parse_positive_duration};
use crate::size_arg::size_in;

/// The most connections one `rr`, `oneshot` or `stream` run opens: each costs a thread and a
/// latency histogram (about 220 KiB at three significant digits).
pub const MAX_CONNECTIONS: usize = 4096;

/// The most connections one `idle` run holds: they cost a descriptor and about a hundred bytes
/// each, on one poller thread.
pub const MAX_IDLE_CONNECTIONS: usize = 100_000;

/// Connects in flight at once while `idle` opens its connections, unless
/// `--connect-concurrency` says otherwise: well under the listen backlog of common servers
/// (echopool's is 1024, Linux's default cap 4096), so a server that accepts keeps up.
pub const DEFAULT_CONNECT_CONCURRENCY: usize = 64;

/// The largest `rr`/`oneshot` message: the whole echo must fit in the socket buffers while the
/// client is still writing, since one thread writes the message before it reads any of it.
pub const MAX_MESSAGE: usize = 64 << 10;

/// How long a `--requests` run may take when `--duration` does not say.
pub const REQUESTS_TIME_CAP: Duration = Duration::from_secs(300);

/// Flags of `echopool bench`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = bench_examples())]
pub struct BenchArgs {
    /// The server, as HOST:PORT (`localhost:7007`, `[::1]:7007`).
    #[arg(short, long, value_name = "HOST:PORT", default_value = DEFAULT_ADDR,
          value_parser = parse_host_port)]
    pub addr: String,

    /// The load pattern.
    #[arg(short, long, value_enum, default_value_t = Mode::Rr)]
    pub mode: Mode,

    /// Concurrent connections (`rr`, `stream`) or connect-send-receive-close loops (`oneshot`),
    /// each on its own thread, up to 4096; in `idle`, connections held open, up to 100,000, all
    /// on one poller thread.
    #[arg(short, long, value_name = "C", default_value = "8",
          value_parser = connections_in_range)]
    pub connections: NonZeroUsize,

    /// Bytes per message (`64`, `4KiB`); in `stream` mode, the size of each chunk written. At
    /// most 64 KiB in `rr`, `oneshot` and `idle`.
    #[arg(short, long, value_name = "BYTES", default_value = "64", value_parser = size_in(1, 16 << 20))]
    pub size: usize,

    /// How long to measure (after the warmup) [default: 10s, or with --requests a 5m cap]; in
    /// `idle`, how long messages are scheduled (the last echoes then have up to --timeout).
    #[arg(short, long, value_name = "DUR", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many messages in all (round trips in `rr`, connections in `oneshot`,
    /// chunks in `stream`, messages scheduled in `idle`), shared evenly among the connections;
    /// `--duration` still caps the time.
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<NonZeroU64>,

    /// Run the load this long before measuring, so that the server's threads, caches and the
    /// TCP windows are warm; nothing from the warmup is counted except errors.
    #[arg(short, long, value_name = "DUR", default_value = "0", value_parser = parse_duration)]
    pub warmup: Duration,

    /// How long each connect may take before it counts as a `connect` error.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,

    /// How long a read or write may stall before it counts as a `timeout` error (the
    /// connection is then replaced); also bounds how long stopping can take. In `idle`, how
    /// long after its scheduled send time a message may go without its whole echo before it
    /// counts as unanswered (and a `timeout` error).
    #[arg(short, long, value_name = "DUR", default_value = "5s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// In `oneshot` and `idle` modes against a 127.0.0.0/8 address, connect from one source
    /// address (the kernel's choice). By default connections take turns among the source
    /// addresses 127.0.0.2–254: Linux reuses the port of a closed connection only about a
    /// second later, which caps a single source address at roughly the ephemeral port range per
    /// second (~14k connections/s), and one source address holds at most about 28,000 open
    /// connections to one server, whatever the server.
    #[arg(long)]
    pub one_source: bool,

    /// `idle` only: messages per second in all (`100/s`), or the percent of the connections
    /// that speak each second (`1%`, the default: 100 messages/s on 10,000 connections).
    #[arg(short, long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<Rate>,

    /// `idle` only: connects in flight at once while the connections are opened [default: 64].
    #[arg(long, value_name = "N")]
    pub connect_concurrency: Option<NonZeroUsize>,

    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// The load pattern of `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Request-response: each connection writes a message, reads the whole echo, repeats.
    Rr,
    /// The textbook client in a loop: connect, send, receive the echo, close.
    Oneshot,
    /// Each connection writes continuously while a second thread reads the echo back.
    Stream,
    /// Many mostly idle connections held open; messages sent open-loop at --rate, each to a
    /// random connection at a random (Poisson) instant, latency from the scheduled send time.
    Idle,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Rr => "rr",
            Mode::Oneshot => "oneshot",
            Mode::Stream => "stream",
            Mode::Idle => "idle",
        }
    }
}

impl BenchArgs {
    /// Checks what clap cannot check flag by flag.
    ///
    /// # Errors
    /// A message naming the flag, for a `--size` over [`MAX_MESSAGE`] outside `stream` mode, more
    /// than [`MAX_CONNECTIONS`] outside `idle` mode, an idle-only flag in another mode, or a
    /// `--rate` over [`MAX_RATE`].
    pub fn validate(&self) -> Result<(), String> {
        let connections = self.connections.get();
        if self.mode != Mode::Idle {
            if connections > MAX_CONNECTIONS {
                return Err(format!(
                    "--connections {connections} is over {MAX_CONNECTIONS}, the most a {} run \
                     opens (a thread each); --mode idle holds up to {MAX_IDLE_CONNECTIONS}",
                    self.mode.name()
                ));
            }
            for (given, flag) in [
                (self.rate.is_some(), "--rate"),
                (self.connect_concurrency.is_some(), "--connect-concurrency"),
            ] {
                if given {
                    return Err(format!(
                        "{flag} applies to --mode idle only, not --mode {}",
                        self.mode.name()
                    ));
                }
            }
        }
        let rate = self.rate();
        if self.mode == Mode::Idle && rate.total(connections) > MAX_RATE {
            return Err(format!(
                "--rate {rate} on {connections} connections is {} messages per second, over \
                 the {MAX_RATE} one run can send",
                rate.total(connections)
            ));
        }
        if self.mode != Mode::Stream && self.size > MAX_MESSAGE {
            return Err(format!(
                "--size {} is over {MAX_MESSAGE} bytes, the most a {} message may be; use \
                 --mode stream for larger transfers",
                self.size,
                self.mode.name()
            ));
        }
        Ok(())
    }

    /// `--rate`, or its default.
    pub fn rate(&self) -> Rate {
        self.rate.unwrap_or_default()
    }

    /// `--connect-concurrency`, or its default.
    pub fn connect_concurrency(&self) -> usize {
        self.connect_concurrency
            .map_or(DEFAULT_CONNECT_CONCURRENCY, NonZeroUsize::get)
    }

    /// The measuring time limit: `--duration`, else 10 s, else with `--requests` a generous cap.
    pub fn time_limit(&self) -> Duration {
        match (self.duration, self.requests) {
            (Some(duration), _) => duration,
            (None, None) => Duration::from_secs(10),
            (None, Some(_)) => REQUESTS_TIME_CAP,
        }
    }
}

fn connections_in_range(text: &str) -> Result<NonZeroUsize, String> {
    let hint = format!(
        "expected a number from 1 to {MAX_CONNECTIONS} (to {MAX_IDLE_CONNECTIONS} with --mode idle)"
    );
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_IDLE_CONNECTIONS).contains(&n) => {
            Ok(NonZeroUsize::new(n).expect("n >= 1"))
        }
        _ => Err(hint),
    }
}

fn bench_examples() -> &'static str {
    "Examples:
  echopool bench                                      # rr, 8 connections x 64 B, 10 s
  echopool bench -m rr -c 64 -s 4KiB -d 30s -w 2s     # 64 connections, 4 KiB messages
  echopool bench -m oneshot -c 8 -n 100000            # 100k connect-send-receive-close
  echopool bench -m stream -c 4 -s 64KiB --json | jq .mb_per_s
  echopool bench -m idle -c 10000 --rate 1% -d 10s    # 10k held, 100 msg/s at random

`idle` holds --connections open on one thread (a readiness poller, no thread per connection)
and sends open-loop: each message goes to a random open connection at a random instant (Poisson
arrivals at --rate, the same schedule in every run), whether or not earlier ones were answered.
A message for a connection still waiting for an echo is written at once behind the first (the
echoes come back in order); its latency still counts from its own scheduled time. Latency runs
from the scheduled send time, so a stall of the server or of the load generator shows in it (no
coordinated omission). A message without its whole, correct echo within --timeout of that time
is unanswered and enters the percentiles as at least --timeout. After --duration the run waits
up to --timeout for the last echoes. The connections are opened first, at most
--connect-concurrency at a time, from 127.0.0.2-254 on a loopback target; the soft descriptor
limit is raised toward the hard one (exit 1 if even that is too low).

Every echoed byte is checked; a wrong byte counts as a `mismatch` error. Connect failures,
resets, early closes and stalls are counted and the connection is replaced (in idle it is not:
later messages go to the connections still open); they never stop the run. Latency is measured
per message (per connection in oneshot: connect to last byte) into an HDR histogram. MB/s counts
echoed payload one way, in 10^6 bytes. Exit status: 0 when at least one message completed, 1
otherwise (the summary is printed either way), 2 for a usage error."
}
