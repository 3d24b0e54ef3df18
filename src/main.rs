//! The `echopool` binary: parses the command line and runs one subcommand.

mod bench;
mod cli;
mod client;
mod completions;
mod duration_arg;
mod env_vars;
mod logs;
mod manpages;
mod privileges;
mod serve_command;
mod size_arg;
mod systemd;

use std::process::ExitCode;

use cli::{Command, ConfigError};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2, as the contract asks.
    let cli = cli::parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit());
    let result = match cli.command {
        Command::Serve(args) => serve_command::run(*args),
        Command::Client(args) => client::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => manpages::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echopool: error: {err:#}");
            if err.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A closed stdout (`echopool client ... | head`) is the reader's choice, not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
