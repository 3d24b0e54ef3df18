//! Readiness and status for the service manager over `NOTIFY_SOCKET` (`sd_notify(3)`): one
//! datagram per message on a Unix socket, `READY=1` once every listener is up, `STOPPING=1` when
//! the graceful stop begins, and `STATUS=` with the counters while they change.
//!
//! A few lines over `UnixDatagram` rather than a crate: the socket is connected once, at start,
//! and the variable removed at once, so that no program run for a connection can report to the
//! manager in our name, and so that messages still go out after `--user` dropped the
//! permission to reach the socket by its path.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use echopool::server::{ShutdownHandle, StatsSnapshot, StatsView};

use crate::cli::ConfigError;

/// How often, at most, a `STATUS=` line is sent.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// A connected `NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// Connects to `NOTIFY_SOCKET`, if it is set, and removes it from the environment. Call it
    /// before any other thread starts, and before dropping privileges.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] (exit 2) when the value is neither a path nor `@name` (an abstract
    /// socket); an I/O error when the socket cannot be reached.
    pub fn from_env() -> anyhow::Result<Option<Notifier>> {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        std::env::remove_var("NOTIFY_SOCKET");
        let text = value.to_string_lossy().into_owned();
        let addr = if let Some(name) = text.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if text.starts_with('/') {
            SocketAddr::from_pathname(&text)?
        } else {
            return Err(ConfigError(format!(
                "NOTIFY_SOCKET: '{text}' is neither an absolute path nor @name"
            ))
            .into());
        };
        let socket = UnixDatagram::unbound()?;
        socket
            .connect_addr(&addr)
            .map_err(|err| anyhow::anyhow!("cannot reach NOTIFY_SOCKET {text}: {err}"))?;
        Ok(Some(Notifier { socket }))
    }

    /// Sends one message (`READY=1`, lines joined by `\n`); a failure is logged, not fatal.
    pub fn send(&self, message: &str) {
        if let Err(err) = self.socket.send(message.as_bytes()) {
            tracing::warn!(error = %err, message, "cannot notify the service manager");
        }
    }
}

/// The `STATUS=` text for a moment of the server.
pub fn status_line(stats: &StatsSnapshot, stopping: bool) -> String {
    format!(
        "STATUS={}{} active, {} queued, {} parked; {} accepted",
        if stopping { "stopping: " } else { "" },
        stats.active,
        stats.queued,
        stats.parked,
        stats.accepted
    )
}

/// The thread that sends `STOPPING=1` when the graceful stop begins, and `STATUS=` at most
/// once a second while the counters change; [`StatusThread::stop`] ends and joins it.
pub struct StatusThread {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl StatusThread {
    /// Starts the thread (named `notify`).
    ///
    /// # Errors
    ///
    /// When the thread cannot start.
    pub fn start(
        notifier: Arc<Notifier>,
        shutdown: ShutdownHandle,
        stats: StatsView,
    ) -> io::Result<StatusThread> {
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let thread = thread::Builder::new()
            .name("notify".to_string())
            .spawn(move || report(&notifier, &shutdown, &stats, &stopped))?;
        Ok(StatusThread { stop, thread })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn report(notifier: &Notifier, shutdown: &ShutdownHandle, stats: &StatsView, stop: &Receiver<()>) {
    let mut last = String::new();
    let mut stopping = false;
    loop {
        if !stopping {
            // Wakes at once when the stop begins, so STOPPING=1 is not a second late.
            if shutdown.wait(STATUS_EVERY) {
                stopping = true;
                notifier.send("STOPPING=1");
            }
        } else if stop.recv_timeout(STATUS_EVERY) != Err(RecvTimeoutError::Timeout) {
            return;
        }
        if matches!(
            stop.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        ) {
            return;
        }
        let line = status_line(&stats.snapshot(), stopping);
        if line != last {
            notifier.send(&line);
            last = line;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_carries_the_counters() {
        let stats = StatsSnapshot {
            accepted: 12,
            active: 3,
            queued: 1,
            parked: 2,
            ..StatsSnapshot::default()
        };
        assert_eq!(
            status_line(&stats, false),
            "STATUS=3 active, 1 queued, 2 parked; 12 accepted"
        );
        assert!(status_line(&stats, true).starts_with("STATUS=stopping: 3 active"));
    }
}
