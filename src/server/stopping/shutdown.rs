//! The shutdown handle: how a signal, a test or an embedding program stops a server.

use std::net::{Shutdown, TcpListener};
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
}

impl ShutdownHandle {
    /// A handle for a server whose connections may finish for `drain_timeout` once the
    /// shutdown began.
    pub(crate) fn new(drain_timeout: Duration) -> Self {
        let (wake, stopped) = crossbeam_channel::bounded(0);
        ShutdownHandle {
            state: Arc::new(State {
                drain_timeout,
                began: OnceLock::new(),
                wake: Mutex::new(Some(wake)),
                stopped,
                listeners: Mutex::new(Vec::new()),
                forced: AtomicBool::new(false),
            }),
        }
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
