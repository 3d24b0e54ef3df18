//! The shutdown handle: how a signal, a test or an embedding program stops a server.

use std::io::{self, PipeReader, PipeWriter, Write};
use std::net::{Shutdown, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tracing::warn;

use super::syn_filter;

/// Stops a running server gracefully: new connects get no answer at once (then a refusal,
/// once the listeners close), connections the kernel had already queued are accepted and
/// served like live ones, live connections run until they end or the shutdown timeout passes,
/// then [`Server::run`] returns.
///
/// Cheap to clone and safe to call from any thread, any number of times.
///
/// [`Server::run`]: crate::server::Server::run
#[derive(Clone)]
pub struct ShutdownHandle {
    state: Arc<State>,
}

struct State {
    /// How long live connections may finish once the shutdown began (`--shutdown-timeout`).
    drain_timeout: Duration,
    /// When the shutdown began; unset while the server runs.
    began: OnceLock<Instant>,
    /// Dropped when the shutdown begins, which disconnects `stopped` and so wakes every thread
    /// waiting on it (a blocked hand-off, a back-off sleep) without polling.
    wake: Mutex<Option<Sender<()>>>,
    stopped: Receiver<()>,
    /// Written to once the shutdown begins and never read, so it stays readable: what the
    /// accept loops wait on beside their listeners.
    wake_read: PipeReader,
    wake_write: Mutex<PipeWriter>,
    /// Clones of the listening sockets, to close to new connects.
    listeners: Mutex<Vec<TcpListener>>,
    /// Set when the drain deadline has passed and what is left is being closed.
    forced: AtomicBool,
    /// A pipe whose write end is closed when the stop is forced, so its read end turns
    /// readable for every stream session that polls it (one waiting on a child process).
    forced_signal: PipeReader,
    forced_writer: Mutex<Option<PipeWriter>>,
}

impl ShutdownHandle {
    /// A handle for a server whose connections may finish for `drain_timeout` once the
    /// shutdown began.
    ///
    /// # Errors
    ///
    /// When the pipes behind [`wake_fd`](Self::wake_fd) and
    /// [`forced_signal`](Self::forced_signal) cannot be made (out of descriptors).
    pub(crate) fn try_new(drain_timeout: Duration) -> io::Result<Self> {
        let (wake, stopped) = crossbeam_channel::bounded(0);
        let (wake_read, wake_write) = io::pipe()?;
        let (forced_signal, forced_writer) = io::pipe()?;
        Ok(ShutdownHandle {
            state: Arc::new(State {
                drain_timeout,
                began: OnceLock::new(),
                wake: Mutex::new(Some(wake)),
                stopped,
                wake_read,
                wake_write: Mutex::new(wake_write),
                listeners: Mutex::new(Vec::new()),
                forced: AtomicBool::new(false),
                forced_signal,
                forced_writer: Mutex::new(Some(forced_writer)),
            }),
        })
    }

    /// [`try_new`](Self::try_new), for tests.
    ///
    /// # Panics
    ///
    /// When the pipe cannot be made.
    #[cfg(test)]
    pub(crate) fn new(drain_timeout: Duration) -> Self {
        Self::try_new(drain_timeout).expect("make the forced-stop pipe")
    }

    /// Begins the graceful shutdown. Calls after the first do nothing.
    pub fn shutdown(&self) {
        if self.state.began.set(Instant::now()).is_err() {
            return;
        }
        // The door first, then the wake-up: an accept loop that wakes drains a closed queue.
        for listener in self.state.listeners.lock().unwrap().drain(..) {
            stop(&listener);
        }
        drop(self.state.wake.lock().unwrap().take());
        // A pipe's buffer takes one byte; should it fail, the loops still see the flag at
        // their next connection or timeout.
        let _ = self.state.wake_write.lock().unwrap().write_all(&[1]);
    }

    /// Readable once the shutdown has begun: an accept loop waits on it beside its listener.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.state.wake_read.as_fd()
    }

    /// Whether the shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.state.began.get().is_some()
    }

    /// Waits up to `timeout` for the shutdown to begin (no polling); returns whether it has.
    pub fn wait(&self, timeout: Duration) -> bool {
        let _ = self.state.stopped.recv_timeout(timeout);
        self.is_shutting_down()
    }

    /// Registers (a clone of) a listener to close to new connects at the shutdown; one
    /// registered after the shutdown began is closed to them now.
    pub(crate) fn watch(&self, listener: TcpListener) {
        let mut listeners = self.state.listeners.lock().unwrap();
        if self.is_shutting_down() {
            stop(&listener);
        } else {
            listeners.push(listener);
        }
    }

    /// A channel that disconnects when the shutdown begins, for `select!`.
    pub(crate) fn stopped(&self) -> &Receiver<()> {
        &self.state.stopped
    }

    /// Sleeps for `duration` or until the shutdown begins, whichever is first.
    pub(crate) fn sleep(&self, duration: Duration) {
        let _ = self.state.stopped.recv_timeout(duration);
    }

    /// The drain deadline: the start of the shutdown plus the drain timeout, once it has begun.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let timeout = self.state.drain_timeout;
        self.state.began.get().map(|began| *began + timeout)
    }

    /// How long live connections may finish once the shutdown began.
    pub(crate) fn drain_timeout(&self) -> Duration {
        self.state.drain_timeout
    }

    /// Marks that the drain deadline passed: connections still queued are closed unserved.
    pub(crate) fn force(&self) {
        self.state.forced.store(true, Ordering::SeqCst);
        drop(self.state.forced_writer.lock().unwrap().take());
    }

    /// A descriptor that turns readable (end of file) once [`force`](Self::force) was called.
    pub(crate) fn forced_signal(&self) -> BorrowedFd<'_> {
        self.state.forced_signal.as_fd()
    }

    /// Whether [`force`](Self::force) was called.
    pub(crate) fn is_forced(&self) -> bool {
        self.state.forced.load(Ordering::SeqCst)
    }
}

/// Closes `listener` to new connects, keeping the connections the kernel has queued for its
/// accept loop to take (see `syn_filter.rs`); the loop closes it once they are taken.
///
/// Where no socket filter can be attached, `shutdown(2)` stops it instead, as servers usually
/// do: new connects are refused at once, and the queued connections are reset.
fn stop(listener: &TcpListener) {
    if let Err(err) = syn_filter::refuse_new_connections(listener) {
        warn!(
            error = %err,
            "cannot stop new connects alone; closing the listener with what its queue holds"
        );
        // ENOTCONN here only means it was stopped already.
        let _ = socket2::SockRef::from(listener).shutdown(Shutdown::Both);
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn shutdown_wakes_sleepers_and_is_idempotent() {
        let handle = ShutdownHandle::new(Duration::from_secs(1));
        assert!(!handle.is_shutting_down());
        assert_eq!(handle.deadline(), None);
        let sleeper = {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                handle.sleep(Duration::from_secs(30));
                started.elapsed()
            })
        };
        handle.shutdown();
        handle.shutdown();
        assert!(handle.is_shutting_down());
        assert!(sleeper.join().unwrap() < Duration::from_secs(10));
        let began = handle.deadline().unwrap() - Duration::from_secs(1);
        assert!(began <= Instant::now());
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_forced_signal_turns_readable_when_the_stop_is_forced() {
        let handle = ShutdownHandle::new(Duration::ZERO);
        let readable = |handle: &ShutdownHandle| {
            let mut fds = [libc::pollfd {
                fd: handle.forced_signal().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: one valid pollfd, for the length given.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
            ready == 1
        };
        handle.shutdown();
        assert!(!readable(&handle), "readable before the stop was forced");
        handle.force();
        assert!(readable(&handle), "not readable after the stop was forced");
        handle.force();
        assert!(handle.is_forced());
    }

    #[test]
    fn wait_returns_when_the_shutdown_begins() {
        let handle = ShutdownHandle::new(Duration::ZERO);
        assert!(!handle.wait(Duration::from_millis(1)));
        let waiter = {
            let handle = handle.clone();
            std::thread::spawn(move || handle.wait(Duration::from_secs(30)))
        };
        handle.shutdown();
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn shutdown_wakes_an_accept_loop_and_new_connects_get_no_answer() {
        use crate::server::accepting::{wait, Woken};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = ShutdownHandle::new(Duration::ZERO);
        handle.watch(listener.try_clone().unwrap());
        let waiter = {
            let handle = handle.clone();
            // A watchdog, not a hang: if the shutdown did not wake it, this times out.
            std::thread::spawn(move || {
                wait(
                    &listener,
                    Some(handle.wake_fd()),
                    Some(Duration::from_secs(10)),
                )
                .unwrap()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        handle.shutdown();
        assert_eq!(waiter.join().unwrap(), Woken::Shutdown);
        let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        assert!(refused.is_err(), "a stopped listener accepted a connect");
    }

    #[test]
    fn a_listener_watched_after_the_shutdown_is_stopped_at_once() {
        let handle = ShutdownHandle::new(Duration::ZERO);
        handle.shutdown();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        handle.watch(listener.try_clone().unwrap());
        let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        assert!(refused.is_err(), "a stopped listener accepted a connect");
    }
}
