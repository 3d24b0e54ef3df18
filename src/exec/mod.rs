//! The `exec` handler: any program serves a connection, the way inetd, tcpserver (ucspi-tcp) and
//! systemd's `Accept=yes` sockets run one, with echopool's pool, limits and drain around it.
//!
//! `-H 'exec:PROGRAM [ARG...]'` runs PROGRAM once per connection:
//!
//! - its standard input and output are the connection's socket itself (no copying thread in
//!   between), so it reads what the client sends and writes the reply;
//! - its environment is the server's, plus what tcpserver sets: `PROTO=TCP`, `TCPREMOTEIP`,
//!   `TCPREMOTEPORT`, `TCPLOCALIP`, `TCPLOCALPORT` (`TCPREMOTEHOST`, `TCPLOCALHOST` and
//!   `TCPREMOTEINFO` are removed: finding them would take a DNS or ident lookup on the worker);
//! - its standard error is logged line by line inside the connection's span;
//! - it runs in a process group of its own, which the server ends (SIGTERM, then SIGKILL one
//!   second later) when the connection reaches `--max-duration` or the graceful stop reaches
//!   `--shutdown-timeout`, and kills (SIGKILL) when the program exits, so that its background
//!   jobs neither hold the connection open nor outlive it;
//! - the worker waits for it (a pidfd, polled with the deadline and the server's forced stop),
//!   reaps it, and logs its exit status; it counts as `closed[eof]` when it exited 0, as
//!   `closed[error]` when it failed, as `closed[max-duration]` or `closed[shutdown]` when the
//!   server ended it.
//!
//! The words of `PROGRAM [ARG...]` are split like a shell splits them, without a shell
//! (`exec:sh -c '...'` runs one). The program is looked up on `PATH` once, when the handler is
//! built: a missing or non-executable program is an error then, not on every connection.
//!
//! Nothing the program reads or writes passes through the server, so its bytes are not counted
//! (`bytes_in`/`bytes_out` stay 0), and `--max-bytes` does not apply. The socket keeps the
//! server's `--idle-timeout` and `--write-timeout`: a read or write of the program's that waits
//! longer fails with `EAGAIN` ("Resource temporarily unavailable").
//!
//! A process that leaves the group (`setsid`, a daemon) is beyond the server's reach.

mod child;
mod poll;
mod program;
mod session;
mod stderr;
mod words;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use echopool_handlers::{ConnInfo, Handler, Opened, Registry};

use session::ExecSession;

/// What `--help` says about `exec:PROGRAM [ARG...]`.
const SUMMARY: &str = "run PROGRAM per connection with the socket as its stdin and stdout \
                       (tcpserver's environment; words split like a shell, without one)";

/// Environment variables a program must not inherit from the server: tcpserver's names for
/// what is not looked up here, and systemd's socket-activation and readiness variables, which
/// were meant for the server.
const REMOVED_FROM_ENV: [&str; 7] = [
    "TCPREMOTEHOST",
    "TCPLOCALHOST",
    "TCPREMOTEINFO",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// The `exec` handler: runs a program per connection (see the [module docs](self)).
///
/// ```
/// use echopool::exec::Exec;
///
/// assert!(Exec::new("cat").is_ok());
/// let err = Exec::new("no-such-program --flag").err().unwrap();
/// assert!(err.starts_with("exec: no program 'no-such-program' on PATH"), "{err}");
/// ```
#[derive(Debug, Clone)]
pub struct Exec {
    program: Arc<Program>,
}

impl Exec {
    /// Splits `command_line` into words and finds the program on `PATH`.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong: the words (an unclosed quote, a shell operator), the
    /// program (not found, not executable), or a kernel without pidfds (Linux 5.3).
    pub fn new(command_line: &str) -> Result<Exec, String> {
        let words = words::split(command_line).map_err(|err| format!("exec: {err}"))?;
        let path = program::find(&words[0], std::env::var_os("PATH").as_deref())?;
        child::pidfd_open(std::process::id())
            .map_err(|err| format!("exec: needs pidfd_open (Linux 5.3 or later): {err}"))?;
        Ok(Exec {
            program: Arc::new(Program {
                name: words[0].clone(),
                path,
                args: words[1..].iter().map(OsString::from).collect(),
            }),
        })
    }

    /// The program's path, as found at start.
    pub fn path(&self) -> &std::path::Path {
        &self.program.path
    }
}

impl Handler for Exec {
    fn open(&self, conn: &ConnInfo) -> Opened {
        Opened::stream(ExecSession::new(Arc::clone(&self.program), *conn))
    }
}

/// Adds `exec:PROGRAM [ARG...]` to `registry`.
pub fn register(registry: &mut Registry) {
    registry.add_handler_with_args("exec", "PROGRAM [ARG...]", SUMMARY, |command_line| {
        Ok(Arc::new(Exec::new(command_line)?))
    });
}

/// A program as found at start.
#[derive(Debug)]
struct Program {
    /// The first word as typed: `argv[0]`, and the name in logs.
    name: String,
    path: PathBuf,
    args: Vec<OsString>,
}

impl Program {
    /// The command for one connection, with tcpserver's environment.
    fn command(&self, conn: &ConnInfo) -> Command {
        let mut command = Command::new(&self.path);
        command.arg0(&self.name).args(&self.args);
        for name in REMOVED_FROM_ENV {
            command.env_remove(name);
        }
        let (remote, local) = (canonical(conn.peer), canonical(conn.local));
        command
            .env("PROTO", "TCP")
            .env("TCPREMOTEIP", remote.ip().to_string())
            .env("TCPREMOTEPORT", remote.port().to_string())
            .env("TCPLOCALIP", local.ip().to_string())
            .env("TCPLOCALPORT", local.port().to_string());
        command
    }
}

/// An IPv4 address that reached an IPv6 socket as `::ffff:a.b.c.d` shows as `a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_carries_tcpservers_environment_and_the_words() {
        let exec = Exec::new("sh -c 'echo hi' x").unwrap();
        let conn = ConnInfo {
            id: 7,
            peer: "[::ffff:127.0.0.2]:40001".parse().unwrap(),
            local: "[::1]:7007".parse().unwrap(),
        };
        let command = exec.program.command(&conn);
        let envs: Vec<(String, Option<String>)> = command
            .get_envs()
            .map(|(k, v)| {
                let v = v.map(|v| v.to_string_lossy().into_owned());
                (k.to_string_lossy().into_owned(), v)
            })
            .collect();
        let value = |name: &str| {
            envs.iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(value("PROTO").as_deref(), Some("TCP"));
        assert_eq!(value("TCPREMOTEIP").as_deref(), Some("127.0.0.2"));
        assert_eq!(value("TCPREMOTEPORT").as_deref(), Some("40001"));
        assert_eq!(value("TCPLOCALIP").as_deref(), Some("::1"));
        assert_eq!(value("TCPLOCALPORT").as_deref(), Some("7007"));
        for removed in REMOVED_FROM_ENV {
            assert!(envs.contains(&(removed.to_string(), None)), "{removed}");
        }
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(args, ["-c", "echo hi", "x"]);
    }

    #[test]
    fn the_registry_builds_it_and_reports_bad_specs() {
        let mut registry = Registry::stock();
        register(&mut registry);
        assert!(registry.build("exec:cat").is_ok());
        assert!(registry.build("logging:exec:sh -c 'cat'").is_ok());
        let err = registry
            .build("logging:exec:no-such-program")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("no program 'no-such-program'"),
            "{err}"
        );
        let err = registry.build("exec:sh -c 'oops").err().unwrap();
        assert_eq!(err.to_string(), "exec: a single quote (') is not closed");
        let err = registry.build("exec").err().unwrap();
        assert_eq!(
            err.to_string(),
            "exec needs arguments: exec:PROGRAM [ARG...]"
        );
    }
}
