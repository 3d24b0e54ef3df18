//! The shutdown handle: how a signal, a test or an embedding program stops a server.

use std::io::{self, PipeReader, PipeWriter};
use std::net::{Shutdown, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// Stops a running server gracefully: accepting ends at once (new connects are refused), live
/// connections run until they end or the shutdown timeout passes, then [`Server::run`] returns.
///
/// Cheap to clone and safe to call from any thread, any number of times.
///
/// [`Server::run`]: super::Server::run
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
    /// Clones of the listening sockets, to wake the threads blocked in `accept` on them.
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
    /// When the pipe behind [`forced_signal`](Self::forced_signal) cannot be made.
    pub(crate) fn try_new(drain_timeout: Duration) -> io::Result<Self> {
        let (wake, stopped) = crossbeam_channel::bounded(0);
        let (forced_signal, forced_writer) = io::pipe()?;
        Ok(ShutdownHandle {
            state: Arc::new(State {
                drain_timeout,
                began: OnceLock::new(),
                wake: Mutex::new(Some(wake)),
                stopped,
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
        drop(self.state.wake.lock().unwrap().take());
        for listener in self.state.listeners.lock().unwrap().drain(..) {
            stop(&listener);
        }
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

    /// Registers a listener to stop; one registered after the shutdown began is stopped now.
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

/// Makes a thread blocked in `accept` on this listener return, and refuses new connects.
///
/// On Linux, `shutdown` of a listening socket wakes every `accept` on it with an error and
/// takes the socket out of the listen table at once, with no self-connect and no polling.
fn stop(listener: &TcpListener) {
    // ENOTCONN here only means it was stopped already.
    let _ = socket2::SockRef::from(listener).shutdown(Shutdown::Both);
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
    fn shutdown_wakes_a_blocked_accept_and_refuses_new_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = ShutdownHandle::new(Duration::ZERO);
        handle.watch(listener.try_clone().unwrap());
        let (accepted, woke) = crossbeam_channel::bounded(1);
        let acceptor = std::thread::spawn(move || {
            let _ = accepted.send(listener.accept().map(|_| ()));
        });
        std::thread::sleep(Duration::from_millis(50));
        handle.shutdown();
        // A watchdog, not a hang: if the shutdown did not wake it, this fails.
        let woken = woke.recv_timeout(Duration::from_secs(10));
        assert!(
            matches!(woken, Ok(Err(_))),
            "accept was not woken: {woken:?}"
        );
        acceptor.join().unwrap();
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
