//! `echopool completions SHELL`: a completion script generated from the same clap definition
//! as the parser, so it cannot drift from the flags.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use clap_complete::Shell;

/// Flags of `echopool completions`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = install_help())]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Runs `echopool completions`: prints the script for the shell to stdout.
///
/// # Errors
///
/// When stdout cannot be written.
pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let script = script(args.shell);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .context("cannot write the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The completion script for `shell`. Generated into memory first: clap_complete panics on a
/// failed write, and a closed pipe is not worth a panic.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = crate::cli::command();
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    script
}

fn install_help() -> &'static str {
    "Install:
  bash  echopool completions bash > ~/.local/share/bash-completion/completions/echopool
  zsh   echopool completions zsh > ~/.zfunc/_echopool   # with fpath+=~/.zfunc in ~/.zshrc
  fish  echopool completions fish > ~/.config/fish/completions/echopool.fish"
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_shell_gets_a_script_that_knows_the_subcommands_and_flags() {
        for shell in Shell::value_variants() {
            let script = String::from_utf8(script(*shell)).unwrap();
            for word in ["serve", "completions", "idle-timeout"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
    }
}
