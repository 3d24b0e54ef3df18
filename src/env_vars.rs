//! `ECHOPOOL_<FLAG>`: every flag of `echopool serve` can also come from the environment, the way
//! a container passes its settings.
//!
//! The variables are not written beside each flag: [`add`] derives them from the clap
//! definition (`--idle-timeout` gives `ECHOPOOL_IDLE_TIMEOUT`), so a new flag gets its variable
//! without anyone remembering to add it. clap then reads them itself: a flag on the command line
//! wins over its variable, and `--help` and the man page show each one.
//!
//! Two things clap does not do the way we want, handled here:
//! - A repeatable flag takes a comma list from its variable. clap splits on a delimiter for
//!   every source or none, so the command line takes comma lists too (`--allow a,b`). That is
//!   harmless: no address or range contains a comma, so no value that worked before changes
//!   meaning.
//! - A bad value in a variable would be reported under the flag's name, sending the operator
//!   to a command line that does not have it. [`blame`] finds out whether the value came from
//!   the variable and names the variable instead.
//!
//! `-v`/`-q` have no variable: clap would count a value from the environment as given, so
//! `ECHOPOOL_VERBOSE=1` with `-q` would be a conflict instead of the command line winning.
//! `RUST_LOG` already sets the log level from the environment.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

/// The subcommand whose flags have variables.
const SUBCOMMAND: &str = "serve";

/// What `echopool serve --help` says about the variables, after its examples.
const HELP: &str = "\
Environment:
  Every flag but -v/-q can also be set with ECHOPOOL_<FLAG>,
  e.g. ECHOPOOL_IDLE_TIMEOUT=30s for --idle-timeout 30s.
  A repeatable flag takes a comma list there (on the command line too):
  ECHOPOOL_LISTEN=0.0.0.0:7007,[::]:7007.
  A flag on the command line wins over its variable.
  RUST_LOG sets the log level from the environment (over -v and -q).";

/// The variable for a flag's long name: `idle-timeout` → `ECHOPOOL_IDLE_TIMEOUT`.
pub fn variable_for(long: &str) -> String {
    format!("ECHOPOOL_{}", long.to_uppercase().replace('-', "_"))
}

/// Gives every flag of `echopool serve` its `ECHOPOOL_<FLAG>` variable, lets repeatable flags
/// take comma lists, and says so in `--help`.
pub fn add(cmd: Command) -> Command {
    cmd.mut_subcommands(|sub| {
        if sub.get_name() != SUBCOMMAND {
            return sub;
        }
        let help = match sub.get_after_long_help() {
            Some(examples) => format!("{examples}\n\n{HELP}"),
            None => HELP.to_string(),
        };
        sub.mut_args(with_variable).after_long_help(help)
    })
}

fn with_variable(arg: Arg) -> Arg {
    let Some(variable) = arg.get_long().map(variable_for) else {
        return arg;
    };
    match arg.get_action() {
        ArgAction::Append => arg.env(variable).value_delimiter(','),
        ArgAction::Set | ArgAction::SetTrue | ArgAction::SetFalse => arg.env(variable),
        // Counts (see the module doc), help and version.
        _ => arg,
    }
}

/// If `err` is about a value that came from a variable rather than the command line, rewrites
/// it to name the variable instead of the flag; any other error is returned as it is.
///
/// `cmd` and `argv` are what was parsed. clap reads a variable only when its flag is absent
/// from the command line, so parsing again with that one variable switched off tells the two
/// apart: if the same complaint comes back, the command line made it. A value that is not
/// UTF-8 gets an error that names nothing at all; the same test finds its variable.
pub fn blame(mut err: clap::Error, cmd: &Command, argv: &[OsString]) -> clap::Error {
    let shown = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(shown)) => Some(shown.clone()),
        _ if err.kind() == ErrorKind::InvalidUtf8 => None,
        _ => return err,
    };
    // An argument shows itself (`--listen <ADDR>`) only once its command is built.
    let mut built = cmd.clone();
    built.build();
    for sub in built.get_subcommands() {
        for arg in sub.get_arguments() {
            let Some(variable) = arg.get_env().filter(|v| std::env::var_os(v).is_some()) else {
                continue;
            };
            if shown
                .as_ref()
                .is_some_and(|shown| *shown != arg.to_string())
            {
                continue;
            }
            let again = without_variable(cmd, sub.get_name(), arg.get_id())
                .try_get_matches_from(argv)
                .err();
            let same = again.is_some_and(|again| {
                again.kind() == err.kind()
                    && again.get(ContextKind::InvalidArg) == err.get(ContextKind::InvalidArg)
            });
            if same {
                continue;
            }
            let variable = variable.to_string_lossy().into_owned();
            if shown.is_some() {
                err.insert(ContextKind::InvalidArg, ContextValue::String(variable));
                return err;
            }
            let message = format!("the value of {variable} is not valid UTF-8");
            return sub.clone().error(ErrorKind::InvalidUtf8, message);
        }
    }
    err
}

/// `cmd` with the variable of one argument of one subcommand switched off.
fn without_variable(cmd: &Command, subcommand: &str, id: &clap::Id) -> Command {
    cmd.clone().mut_subcommands(|sub| {
        if sub.get_name() != subcommand {
            return sub;
        }
        sub.mut_args(|arg| {
            if arg.get_id() == id {
                arg.env(None)
            } else {
                arg
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    fn serve() -> Command {
        let mut cmd = cli::command();
        cmd.build();
        cmd.find_subcommand(SUBCOMMAND).unwrap().clone()
    }

    #[test]
    fn variables_are_named_after_their_flags() {
        assert_eq!(variable_for("idle-timeout"), "ECHOPOOL_IDLE_TIMEOUT");
        assert_eq!(variable_for("listen"), "ECHOPOOL_LISTEN");
    }

    #[test]
    fn every_serve_flag_with_a_value_has_its_variable() {
        let mut seen = 0;
        for arg in serve().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let expected = match arg.get_action() {
                ArgAction::Count | ArgAction::Help | ArgAction::Version => None,
                _ => Some(variable_for(long)),
            };
            let actual = arg.get_env().map(|v| v.to_string_lossy().into_owned());
            assert_eq!(actual, expected, "--{long}");
            seen += usize::from(actual.is_some());
        }
        assert!(seen >= 15, "only {seen} variables");
    }

    #[test]
    fn only_repeatable_flags_split_on_commas() {
        for arg in serve().get_arguments() {
            let repeatable = matches!(arg.get_action(), ArgAction::Append);
            let delimiter = arg.get_value_delimiter();
            assert_eq!(delimiter, repeatable.then_some(','), "{arg}");
        }
    }

    #[test]
    fn other_subcommands_have_no_variables() {
        let cmd = cli::command();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != SUBCOMMAND) {
            for arg in sub.get_arguments() {
                assert_eq!(arg.get_env(), None, "{} {arg}", sub.get_name());
            }
        }
    }

    #[test]
    fn serve_help_explains_the_variables() {
        let help = serve().render_long_help().to_string();
        assert!(help.contains("[env: ECHOPOOL_IDLE_TIMEOUT="), "{help}");
        assert!(help.contains("ECHOPOOL_<FLAG>"), "{help}");
        assert!(help.contains("Examples:"), "the examples are kept: {help}");
    }

    #[test]
    fn a_bad_flag_is_still_blamed_on_the_flag() {
        let argv: Vec<OsString> = ["echopool", "serve", "--idle-timeout", "soon"]
            .map(OsString::from)
            .to_vec();
        let cmd = cli::command();
        let err = cmd.clone().try_get_matches_from(&argv).unwrap_err();
        let err = blame(err, &cmd, &argv).to_string();
        assert!(err.contains("--idle-timeout"), "{err}");
        assert!(!err.contains("ECHOPOOL_"), "{err}");
    }
}
