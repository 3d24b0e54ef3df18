//! `echopool serve`. (Being built.)

use std::process::ExitCode;

use crate::cli::ServeArgs;

/// Runs `echopool serve`.
pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
