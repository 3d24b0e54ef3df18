//! Setting up `tracing` for the binary: to stderr, text or JSON, filtered by `-v`/`-q` or
//! `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{ConfigError, LogFormat};

/// The target of the access log's lines (`--access-log`).
const ACCESS_LOG: &str = "echopool::access";

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `-v`/`-q` and
/// `--access-log`; without it, `--access-log` shows its lines at any `-q`.
///
/// # Errors
///
/// A [`ConfigError`] when `RUST_LOG` is not a valid filter.
pub fn init(format: LogFormat, verbose: u8, quiet: u8, access_log: bool) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|err| ConfigError(format!("invalid RUST_LOG filter '{spec}': {err}")))?,
        _ if access_log => {
            EnvFilter::new(format!("{},{ACCESS_LOG}=info", level_for(verbose, quiet)))
        }
        _ => EnvFilter::new(level_for(verbose, quiet)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_thread_names(true)
        .with_target(false);
    // If a subscriber is installed already, it stays: one process, one subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// The level that `-v` and `-q` counts ask for, `info` by default.
fn level_for(verbose: u8, quiet: u8) -> &'static str {
    match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (_, 0) => "trace",
        (_, 1) => "warn",
        _ => "error",
    }
}

/// Routes panic messages through `tracing`, so they carry the connection's span (its peer) and
/// keep `--log-format json` output parseable.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%location, "panic: {message}");
    }));
}

#[cfg(test)]
mod tests {
    use super::level_for;

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(level_for(0, 0), "info");
        assert_eq!(level_for(1, 0), "debug");
        assert_eq!(level_for(2, 0), "trace");
        assert_eq!(level_for(0, 1), "warn");
        assert_eq!(level_for(0, 3), "error");
    }
}
