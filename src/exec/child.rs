//! A program started for one connection, in a process group of its own, watched through a
//! pidfd. Whatever happens (the program exits, a limit ends it, our own code panics), the group
//! is killed and the program is reaped: no zombie, and nothing of the group left running.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, Command, ExitStatus};
use std::sync::{Mutex, Once, PoisonError, TryLockError};

/// The process groups of programs running now, so that an abrupt exit of the server (a second
/// SIGTERM) can kill them too: `exit` runs the `atexit` hook below.
static LIVE_GROUPS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
static EXIT_HOOK: Once = Once::new();

/// A running program and its process group (its id is the program's pid). Dropping it kills
/// the group and reaps the program, even while a panic unwinds.
pub(crate) struct Group {
    child: Child,
    pidfd: OwnedFd,
    /// Set once the program was reaped: its pid, and so the group id, may be reused then.
    status: Option<ExitStatus>,
}

impl Group {
    /// Starts `command` as the leader of a new process group.
    ///
    /// # Errors
    ///
    /// When the program cannot be started, or its pidfd cannot be opened (the program is then
    /// killed and reaped before this returns).
    pub(crate) fn spawn(command: &mut Command) -> io::Result<Group> {
        EXIT_HOOK.call_once(install_exit_hook);
        let mut child = command.process_group(0).spawn()?;
        let pidfd = match pidfd_open(child.id()) {
            Ok(pidfd) => pidfd,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        live_groups().push(child.id() as libc::pid_t);
        Ok(Group {
            child,
            pidfd,
            status: None,
        })
    }

    /// The program's pid, which is also its process group's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The read end of the program's stderr, if it was piped.
    pub(crate) fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// A descriptor that turns readable when the program has exited.
    pub(crate) fn exited(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Sends `signal` to every process of the group. Only while the program is not reaped: an
    /// unreaped leader (even a zombie) keeps the group's id from being reused.
    pub(crate) fn signal(&self, signal: libc::c_int) {
        if self.status.is_none() {
            kill_group(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Reaps the program once it has exited (waiting for it if not), first killing whatever
    /// it left running in its group: background jobs would otherwise keep the connection open
    /// and outlive it.
    pub(crate) fn reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.signal(libc::SIGKILL);
        forget_group(self.child.id() as libc::pid_t);
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.status.is_none() {
            // A panic, or an error between spawn and reap: the group must not outlive us.
            self.signal(libc::SIGKILL);
            forget_group(self.child.id() as libc::pid_t);
            let _ = self.child.wait();
        }
    }
}

/// A pidfd for `pid` (Linux 5.3 and later), close-on-exec.
#[allow(unsafe_code)]
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

#[allow(unsafe_code)]
fn kill_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill takes plain integers; a negative pid names a process group.
    unsafe { libc::kill(-group, signal) };
}

fn live_groups() -> std::sync::MutexGuard<'static, Vec<libc::pid_t>> {
    LIVE_GROUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn forget_group(group: libc::pid_t) {
    live_groups().retain(|&live| live != group);
}

#[allow(unsafe_code)]
fn install_exit_hook() {
    // SAFETY: registers a function with the C signature atexit expects.
    unsafe { libc::atexit(kill_live_groups) };
}

/// Run by `exit`: kills the groups of programs still running, since nobody will reap them.
/// Never blocks: a lock held by a thread that `exit` interrupted is skipped.
extern "C" fn kill_live_groups() {
    let groups = match LIVE_GROUPS.try_lock() {
        Ok(groups) => groups,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    for &group in groups.iter() {
        kill_group(group, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::panic::{self, AssertUnwindSafe};
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn gone(pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Processes whose process group is `group` (read from /proc/PID/stat).
    fn members(group: u32) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            // After the name: state, ppid, pgrp.
            if fields[2] == group.to_string() && fields[0] != "Z" {
                found.push(pid);
            }
        }
        found
    }

    #[test]
    fn a_panic_kills_the_group_and_reaps_the_program() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 1000 & sleep 1000"]);
        let mut pid = 0;
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let group = Group::spawn(&mut command).unwrap();
            pid = group.pid();
            std::thread::sleep(Duration::from_millis(100));
            assert!(members(pid).len() >= 2, "{:?}", members(pid));
            panic!("our own bug");
        }));
        assert!(result.is_err());
        assert!(gone(pid), "the program was not reaped");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !members(pid).is_empty() {
            assert!(
                Instant::now() < deadline,
                "left running: {:?}",
                members(pid)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!live_groups().contains(&(pid as libc::pid_t)));
    }

    #[test]
    fn reaping_kills_what_the_program_left_running_in_its_group() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 1000 & exit 3"]);
        let mut group = Group::spawn(&mut command).unwrap();
        let exited = group.exited().try_clone_to_owned().unwrap();
        let ready = super::super::poll::wait_readable(
            &[exited.as_fd()],
            Some(Instant::now() + Duration::from_secs(10)),
        );
        assert_eq!(ready.unwrap(), [true], "the program did not exit");
        assert_eq!(group.reap().unwrap().code(), Some(3));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !members(group.pid()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "left running: {:?}",
                members(group.pid())
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            group.reap().unwrap().signal(),
            None,
            "reaped once, remembered"
        );
    }
}
