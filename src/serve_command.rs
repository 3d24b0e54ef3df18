//! `echopool serve`: the command-line edge of the server library. It turns the flags into a
//! `Config`, starts logging and signal handling, prints the `listening on` lines, and runs.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use echopool::server::{
    raise_descriptor_limit, AccessPolicy, Config, Server, RESERVED_DESCRIPTORS,
};
use echopool::signals::SignalThread;

use crate::cli::{ConfigError, HandlerArg, ServeArgs, Switch};
use crate::logs;
use crate::privileges::{self, UserArg};
use crate::systemd::activation;
use crate::systemd::notify::{status_line, Notifier, StatusThread};

/// Runs `echopool serve`: takes the sockets a service manager passed, binds, drops root
/// (`--user`), starts the workers, prints one `listening on` line per listener, tells the
/// service manager it is ready, serves until SIGTERM or SIGINT, drains, and exits 0.
///
/// # Errors
///
/// A bad passed socket or `NOTIFY_SOCKET` ([`ConfigError`], exit 2), a bind failure (naming the
/// address and the OS reason), a pool the system cannot start (naming `--workers`), a failed
/// privilege drop (naming `--user`), or a broken log filter.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Both change the environment, so they come before any other thread starts.
    let passed = activation::take_passed_listeners()?;
    let notifier = Notifier::from_env()?.map(Arc::new);
    logs::init(args.log_format, args.verbose, args.quiet, args.access_log)?;
    logs::log_panics();
    let user = args.user.clone();
    let listen_is_default = args.listen_is_default;
    let (mut config, handler) = config_from(args);
    if !passed.is_empty() && listen_is_default {
        config.listen.clear();
    }
    check_descriptors(&config);
    let workers = config.workers.get();
    let names: Vec<_> = passed.iter().map(|p| (p.fd, p.name.clone())).collect();
    let listeners = passed.into_iter().map(|p| p.listener).collect();
    let server = Server::bind_with(config, listeners, handler.handler.clone())?;
    let addrs = server.local_addrs();
    for ((fd, name), addr) in names.iter().zip(&addrs) {
        let name = name.as_deref().unwrap_or("");
        tracing::info!(fd, name, %addr, "serving a socket passed by the service manager");
    }
    drop_privileges(user.as_ref(), &handler)?;
    // Handlers first: whoever reads the `listening on` line may signal at once.
    let signals = SignalThread::start(server.shutdown_handle(), server.stats())
        .context("cannot install the signal handlers")?;
    announce(&addrs, server.metrics_addr());
    let status = match notifier {
        Some(notifier) => {
            notifier.send(&format!(
                "READY=1\n{}",
                status_line(&server.stats().snapshot(), false)
            ));
            Some(
                StatusThread::start(notifier, server.shutdown_handle(), server.stats())
                    .context("cannot start the service-manager status thread")?,
            )
        }
        None => None,
    };
    tracing::info!(workers, handler = %handler.spec, "serving");
    server.run();
    if let Some(status) = status {
        status.stop();
    }
    signals.stop();
    Ok(ExitCode::SUCCESS)
}

/// With `--user`, becomes that user and checks that the handler can still run (an `exec:`
/// program the user may not execute is refused now, before any connection). Without it, warns
/// when `exec:` programs would run as root.
fn drop_privileges(user: Option<&UserArg>, handler: &HandlerArg) -> anyhow::Result<()> {
    let registry = crate::cli::registry();
    let runs_programs = registry.handler_name(&handler.spec) == Some("exec");
    let Some(user) = user else {
        // SAFETY: geteuid cannot fail and touches no memory.
        #[allow(unsafe_code)]
        let root = unsafe { libc::geteuid() } == 0;
        if root && runs_programs {
            tracing::warn!(
                "exec: programs will run as root; give --user NAME to drop root once the \
                 listeners are bound"
            );
        }
        return Ok(());
    };
    privileges::drop_to(user)?;
    if runs_programs {
        registry.build(&handler.spec).map_err(|err| {
            ConfigError(format!(
                "invalid value '{}' for '--handler' as --user {user}: {err}",
                handler.spec
            ))
        })?;
    }
    Ok(())
}

/// Raises the descriptor limit as far as the hard limit allows (each connection holds one),
/// and warns when it is still below what `--max-connections` asks for.
fn check_descriptors(config: &Config) {
    let limit = match raise_descriptor_limit() {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot raise the descriptor limit");
            return;
        }
    };
    if let Some(max) = config.max_connections {
        let room = limit.saturating_sub(RESERVED_DESCRIPTORS);
        if max.get() as u64 > room {
            tracing::warn!(
                max_connections = max.get(),
                descriptor_limit = limit,
                "--max-connections is above what the descriptor limit leaves for connections \
                 ({room}); past that, accepting fails until connections close (raise `ulimit -n`)"
            );
        }
    }
}

/// Prints one `listening on IP:PORT` line per listener, then `metrics on IP:PORT` when there
/// is a metrics endpoint, and flushes at once. A reader that has gone away (a closed pipe)
/// does not stop the server: it is serving already.
fn announce(addrs: &[std::net::SocketAddr], metrics: Option<std::net::SocketAddr>) {
    let mut stdout = std::io::stdout().lock();
    let written = addrs
        .iter()
        .try_for_each(|addr| writeln!(stdout, "listening on {addr}"))
        .and_then(|()| match metrics {
            Some(addr) => writeln!(stdout, "metrics on {addr}"),
            None => Ok(()),
        })
        .and_then(|()| stdout.flush());
    if let Err(err) = written {
        tracing::warn!(error = %err, "cannot print the listening addresses to stdout");
    }
}

/// The server configuration that the flags describe, and the handler they name.
pub fn config_from(args: ServeArgs) -> (Config, HandlerArg) {
    let handler = args.handler.unwrap_or_else(default_handler);
    let config = Config {
        listen: args.listen.into_iter().flat_map(|l| l.addrs).collect(),
        workers: args.workers,
        queue: args.queue,
        overflow: args.overflow,
        idle_timeout: args.idle_timeout.duration(),
        write_timeout: args.write_timeout.duration(),
        max_duration: args.max_duration.duration(),
        max_bytes: args.max_bytes.0.map(|size| size.0),
        access: AccessPolicy {
            allow: args.allow,
            deny: args.deny,
        },
        max_per_ip: args.max_per_ip.0,
        park: args.park == Switch::On,
        park_after: args.park_after.0,
        max_connections: args.max_connections.0,
        defer_accept: args.defer_accept.duration(),
        shutdown_timeout: args.shutdown_timeout.0,
        buffer_size: args.buffer_size.get(),
        stack_size: args.stack_size.get(),
        read_spin: args.read_spin,
        metrics: args.metrics,
        access_log: args.access_log,
        handler_name: handler.spec.clone(),
        proxy_protocol: args.proxy_protocol,
        proxy_from: args.proxy_from,
        reuse_port: args.reuse_port,
        ..Config::default()
    };
    (config, handler)
}

/// The registry's default handler (`echo`).
fn default_handler() -> HandlerArg {
    let registry = crate::cli::registry();
    let spec = registry
        .default_name()
        .expect("the stock registry has handlers");
    HandlerArg {
        spec: spec.to_string(),
        handler: registry.build(spec).expect("the default handler builds"),
    }
}
