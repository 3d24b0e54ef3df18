//! `echopool bench`: the load generator. (Being built: see issue 4.)

use std::process::ExitCode;

use clap::Args;

/// Flags of `echopool bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {}

/// Runs `echopool bench`.
pub fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("echopool bench is not built yet")
}
