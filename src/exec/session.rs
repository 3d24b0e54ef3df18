//! One connection served by a program: started with the socket as its stdin and stdout, its
//! stderr logged line by line, and waited for together with the connection's deadline and the
//! server's forced stop, on the worker, with one `poll`.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echopool_handlers::{ConnInfo, StreamConnection, StreamSession};
use tracing::{debug, info, warn};

use super::child::Group;
use super::poll::wait_readable;
use super::stderr::Lines;
use super::Program;

/// How long a program has to exit after SIGTERM before its group gets SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(1);

/// How long stderr is still read once the program is reaped and its group killed: only a
/// process that left the group (`setsid`) can hold it open longer.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// The stream session of one `exec:` connection.
pub(crate) struct ExecSession {
    program: Arc<Program>,
    info: ConnInfo,
}

impl ExecSession {
    pub(crate) fn new(program: Arc<Program>, info: ConnInfo) -> Self {
        ExecSession { program, info }
    }
}

impl StreamSession for ExecSession {
    fn serve(&mut self, conn: &mut dyn StreamConnection) -> io::Result<()> {
        let mut command = self.program.command(&self.info);
        // The program gets the socket itself (two duplicates), not a pipe we would copy.
        let socket = conn.socket();
        command
            .stdin(Stdio::from(OwnedFd::from(socket.try_clone()?)))
            .stdout(Stdio::from(OwnedFd::from(socket.try_clone()?)))
            .stderr(Stdio::piped());
        let spawned = Group::spawn(&mut command);
        // Our duplicates of the socket go now, so that only the program holds them.
        drop(command);
        let mut group = spawned.map_err(|err| {
            warn!(program = %self.program.name, error = %err, "cannot start the program");
            err
        })?;
        debug!(program = %self.program.name, pid = group.pid(), "program started");
        let stderr = group.take_stderr();
        let mut running = Running {
            group,
            stderr,
            lines: Lines::default(),
            name: &self.program.name,
        };
        match running.wait(conn.deadline(), conn.stop_signal())? {
            Woke::Exited => {
                let status = running.finish()?;
                log_exit(&self.program.name, status);
                if status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "{} {}",
                        self.program.name,
                        describe(status)
                    )))
                }
            }
            Woke::Deadline => {
                info!(program = %self.program.name, "ending the program: --max-duration");
                let status = running.terminate()?;
                log_exit(&self.program.name, status);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the program was ended at --max-duration",
                ))
            }
            Woke::Stopped => {
                info!(program = %self.program.name, "ending the program: shutdown timeout");
                let status = running.terminate()?;
                log_exit(&self.program.name, status);
                Ok(())
            }
        }
    }
}

/// What ended a wait.
enum Woke {
    /// The program exited.
    Exited,
    /// The deadline passed.
    Deadline,
    /// The server forced its stop.
    Stopped,
}

/// A program being waited for, and its stderr being logged.
struct Running<'a> {
    group: Group,
    stderr: Option<ChildStderr>,
    lines: Lines,
    name: &'a str,
}

impl Running<'_> {
    /// Logs stderr until the program exits, `until` passes, or `stop` turns readable.
    fn wait(&mut self, until: Option<Instant>, stop: Option<BorrowedFd<'_>>) -> io::Result<Woke> {
        loop {
            let mut fds = vec![self.group.exited()];
            fds.extend(stop);
            let stop_at = stop.map(|_| 1);
            let stderr_at = self.stderr.as_ref().map(|stderr| {
                fds.push(stderr.as_fd());
                fds.len() - 1
            });
            let ready = wait_readable(&fds, until)?;
            drop(fds);
            if ready[0] {
                return Ok(Woke::Exited);
            }
            if stop_at.is_some_and(|at| ready[at]) {
                return Ok(Woke::Stopped);
            }
            match stderr_at {
                Some(at) if ready[at] => self.read_stderr(),
                _ => return Ok(Woke::Deadline),
            }
        }
    }

    /// Asks the program's group to end (SIGTERM, and SIGCONT should it be stopped), kills it
    /// (SIGKILL) if the program has not exited within [`KILL_GRACE`], and reaps it.
    fn terminate(&mut self) -> io::Result<ExitStatus> {
        self.group.signal(libc::SIGTERM);
        self.group.signal(libc::SIGCONT);
        self.wait(Some(Instant::now() + KILL_GRACE), None)?;
        self.finish()
    }

    /// Reaps the program (killing what it left in its group) and logs the rest of its stderr.
    fn finish(&mut self) -> io::Result<ExitStatus> {
        let status = self.group.reap()?;
        let until = Instant::now() + STDERR_DRAIN;
        while let Some(stderr) = &self.stderr {
            if wait_readable(&[stderr.as_fd()], Some(until))? == [false] {
                debug!(program = %self.name, "stderr still open after the program's group ended");
                self.stderr = None;
                break;
            }
            self.read_stderr();
        }
        Ok(status)
    }

    /// Reads what stderr has (it is readable) and logs every complete line.
    fn read_stderr(&mut self) {
        let Some(stderr) = &mut self.stderr else {
            return;
        };
        let mut chunk = [0; 8192];
        let name = self.name;
        let log = |line: &str| info!(program = %name, "stderr: {line}");
        match stderr.read(&mut chunk) {
            Ok(0) | Err(_) => {
                self.lines.finish(log);
                self.stderr = None;
            }
            Ok(read) => self.lines.feed(&chunk[..read], log),
        }
    }
}

fn log_exit(name: &str, status: ExitStatus) {
    match (status.code(), status.signal()) {
        (Some(code), _) => info!(program = %name, status = code, "program exited"),
        (None, Some(signal)) => info!(
            program = %name,
            signal = signal_name(signal),
            core_dumped = status.core_dumped(),
            "program killed by a signal"
        ),
        _ => info!(program = %name, %status, "program ended"),
    }
}

/// `exited with status 3`, `was killed by SIGSEGV`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by {}", signal_name(signal)),
        _ => status.to_string(),
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        other => return format!("signal {other}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_a_person_would_say_them() {
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(libc::SIGSEGV)),
            "was killed by SIGSEGV"
        );
        assert_eq!(signal_name(64), "signal 64");
    }
}
