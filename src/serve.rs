//! `echopool serve`: the command-line edge of the server.

use std::io::Write;
use std::num::NonZeroUsize;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ServeArgs;
use crate::handlers::Registry;
use crate::server::{AccessPolicy, Config, Server};
use crate::signals::SignalThread;
use crate::{duration_arg, logs};

/// Runs `echopool serve`: binds, prints one `listening on` line per listener, serves until
/// SIGTERM or SIGINT, drains, and exits 0.
///
/// # Errors
///
/// A bind failure (naming the address and the OS reason) or a broken log filter.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    logs::init(args.log_format, args.verbose, args.quiet)?;
    logs::log_panics();
    let handler = Registry::stock()
        .build(&args.handler)
        .context("--handler")?;
    let server = Server::bind(config_from(&args), handler)?;
    // Handlers first: whoever reads the `listening on` line may signal at once.
    let signals = SignalThread::start(server.shutdown_handle(), server.stats())
        .context("cannot install the signal handlers")?;
    announce(&server.local_addrs());
    tracing::info!(
        workers = args.workers.get(),
        handler = %args.handler,
        "serving"
    );
    server.run();
    signals.stop();
    Ok(ExitCode::SUCCESS)
}

/// Prints one `listening on IP:PORT` line per listener and flushes at once. A reader that has
/// gone away (a closed pipe) does not stop the server: it is serving already.
fn announce(addrs: &[std::net::SocketAddr]) {
    let mut stdout = std::io::stdout().lock();
    let written = addrs
        .iter()
        .try_for_each(|addr| writeln!(stdout, "listening on {addr}"))
        .and_then(|()| stdout.flush());
    if let Err(err) = written {
        tracing::warn!(error = %err, "cannot print the listening addresses to stdout");
    }
}

/// The server configuration that the flags describe.
pub fn config_from(args: &ServeArgs) -> Config {
    Config {
        listen: args.listen.clone(),
        workers: args.workers,
        queue: args.queue,
        overflow: args.overflow,
        idle_timeout: duration_arg::nonzero(args.idle_timeout),
        write_timeout: duration_arg::nonzero(args.write_timeout),
        max_duration: duration_arg::nonzero(args.max_duration),
        max_bytes: (args.max_bytes > 0).then_some(args.max_bytes),
        access: AccessPolicy {
            allow: args.allow.clone(),
            deny: args.deny.clone(),
        },
        max_per_ip: NonZeroUsize::new(args.max_per_ip),
        defer_accept: duration_arg::nonzero(args.defer_accept),
        shutdown_timeout: args.shutdown_timeout,
        buffer_size: args.buffer_size,
        stack_size: args.stack_size,
        read_spin: args.read_spin,
        ..Config::default()
    }
}
