//! `echopool man [--out DIR]`: man pages generated from the same clap definition as the
//! parser, one for `echopool` and one per subcommand (`echopool-serve.1`, ...).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use clap_mangen::Man;

/// Flags of `echopool man`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = "Examples:
  echopool man | man -l -                     # read the main page
  echopool man --out ~/.local/share/man/man1  # install every page for `man echopool-serve`")]
pub struct ManArgs {
    /// Write `echopool.1` and `echopool-SUBCOMMAND.1` into this directory (created if
    /// missing) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `echopool man`: prints the main page, or writes every page into `--out`.
///
/// # Errors
///
/// When stdout, the directory or a page cannot be written (naming the path).
pub fn run(args: ManArgs) -> anyhow::Result<ExitCode> {
    match args.out {
        None => {
            let page = render(&Man::new(command()))?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&page)
                .and_then(|()| stdout.flush())
                .context("cannot write the man page to stdout")?;
        }
        Some(dir) => {
            write_all(&dir)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every page: the main one first, then one per subcommand, named as `man` looks them up.
pub fn pages() -> Vec<Man> {
    let mut cmd = command();
    cmd.build();
    // Every page's footer names the program, not the subcommand ("echopool 0.1.0").
    let source = format!("echopool {}", env!("CARGO_PKG_VERSION"));
    let subcommands = cmd
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned();
    std::iter::once(cmd.clone())
        .chain(subcommands)
        .map(|page| Man::new(page).source(source.clone()))
        .collect()
}

/// Writes [`pages`] into `dir`, creating it if needed; returns the files written.
///
/// # Errors
///
/// When the directory or a file cannot be written; the message names the path.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    pages()
        .iter()
        .map(|page| {
            let path = dir.join(page.get_filename());
            std::fs::write(&path, render(page)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// The command the pages describe. `help` is a subcommand for the parser, not a page.
fn command() -> clap::Command {
    crate::cli::command().disable_help_subcommand(true)
}

fn render(page: &Man) -> anyhow::Result<Vec<u8>> {
    let mut roff = Vec::new();
    page.render(&mut roff).context("cannot render a man page")?;
    Ok(roff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_command_named_for_man() {
        let names: Vec<String> = pages().iter().map(Man::get_filename).collect();
        assert_eq!(
            names,
            [
                "echopool.1",
                "echopool-serve.1",
                "echopool-client.1",
                "echopool-bench.1",
                "echopool-completions.1",
                "echopool-man.1"
            ]
        );
    }

    #[test]
    fn the_serve_page_lists_flags_and_their_variables() {
        let page = &pages()[1];
        let roff = String::from_utf8(render(page).unwrap()).unwrap();
        assert!(roff.contains("idle\\-timeout"), "{roff}");
        assert!(roff.contains("ECHOPOOL_IDLE_TIMEOUT"), "{roff}");
    }
}
