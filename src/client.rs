//! `echopool client`: the textbook echo client. (Being built: see issue 4.)

use std::process::ExitCode;

use clap::Args;

/// Flags of `echopool client`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {}

/// Runs `echopool client`.
pub fn run(_args: ClientArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("echopool client is not built yet")
}
