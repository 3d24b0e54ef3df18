//! `echopool client`: the textbook echo client (connect, send, receive, close), with what a user
//! of `nc` expects besides: stdin or arguments as input, streaming output, and a clear error
//! when the server cannot be reached, stalls, or sends back a different number of bytes.

pub mod addr;
mod exchange;

use std::io::{self, Cursor, Read};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use crate::duration_arg::{nonzero, parse_duration, parse_positive_duration};
pub use exchange::exchange;

/// The address `client` and `bench` use when `--addr` is not given (the server's default).
pub const DEFAULT_ADDR: &str = "127.0.0.1:7007";

/// Flags of `echopool client`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = client_examples())]
pub struct ClientArgs {
    /// The server, as HOST:PORT; names resolve (`localhost:7007`), IPv6 goes in brackets
    /// (`[::1]:7007`). Every resolved address is tried in turn.
    #[arg(short, long, value_name = "HOST:PORT", default_value = DEFAULT_ADDR,
          value_parser = addr::parse_host_port)]
    pub addr: String,

    /// How long to wait for each address to accept the connection.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,

    /// Fail when the server owes reply bytes and sends nothing for this long (`0` = wait
    /// forever). Time spent waiting for your own input does not count.
    #[arg(short, long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// The server transforms what it echoes (e.g. `serve -H uppercase`, which can change the
    /// byte length of non-ASCII text): do not fail when the reply's length differs.
    #[arg(long, visible_alias = "any-length")]
    pub expect_transform: bool,

    /// With a MESSAGE, do not add the trailing newline (as `echo -n`).
    #[arg(short = 'n', long)]
    pub no_newline: bool,

    /// The message, words joined by single spaces plus a newline, as `echo` prints them;
    /// without any, stdin is sent as it is (binary-safe, any size).
    #[arg(value_name = "MESSAGE")]
    pub message: Vec<String>,
}

fn client_examples() -> &'static str {
    "Examples:
  echopool client hello world                      # prints \"hello world\"
  echopool client --addr [::1]:7007 -n ping        # IPv6, no trailing newline
  echopool client --addr localhost:7007 < photo.jpg > copy.jpg
  echopool client --expect-transform --addr 127.0.0.1:7008 straße   # an uppercase server
  head -c 100M /dev/urandom | echopool client --timeout 30s | wc -c

Exit status: 0 when the whole reply arrived and (without --expect-transform) is as long as
what was sent; 1 with a message on stderr otherwise; 2 for a usage error."
}

/// Runs `echopool client`: resolves and connects, then sends the input while streaming the
/// reply to stdout.
///
/// # Errors
/// When the address does not resolve or no address accepts within `--connect-timeout`, when the
/// server owes bytes and sends none for `--timeout`, when the connection fails, when the server
/// closes before the input ends, and (without `--expect-transform`) when the reply's length
/// differs from what was sent: "received N bytes, sent M".
pub fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let addrs = addr::resolve(&args.addr)?;
    let stream = addr::connect_any(&args.addr, &addrs, args.connect_timeout)?;
    // Interactive use sends small pieces; Nagle would hold each one for the previous ACK.
    stream.set_nodelay(true).ok();
    let input: Box<dyn Read + Send> = if args.message.is_empty() {
        Box::new(io::stdin())
    } else {
        let mut text = args.message.join(" ");
        if !args.no_newline {
            text.push('\n');
        }
        Box::new(Cursor::new(text.into_bytes()))
    };
    let stdout = io::stdout();
    let totals = exchange(stream, input, &mut stdout.lock(), nonzero(args.timeout))?;
    if !args.expect_transform && totals.received != totals.sent {
        bail!(
            "received {} bytes, sent {} (from {}; use --expect-transform if the server changes \
             what it echoes)",
            totals.received,
            totals.sent,
            args.addr
        );
    }
    Ok(ExitCode::SUCCESS)
}
