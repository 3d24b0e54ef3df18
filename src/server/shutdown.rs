//! The shutdown handle: how a signal, a test or an embedding program stops a server.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::listener;

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
    pub(crate) fn new() -> Self {
        let (wake, stopped) = crossbeam_channel::bounded(0);
        ShutdownHandle {
            state: Arc::new(State {
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
            listener::stop(&listener);
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
            listener::stop(&listener);
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

    /// The drain deadline: the start of the shutdown plus `timeout`, once it has begun.
    pub(crate) fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.state.began.get().map(|began| *began + timeout)
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
        let handle = ShutdownHandle::new();
        assert!(!handle.is_shutting_down());
        assert_eq!(handle.deadline(Duration::from_secs(1)), None);
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
        assert!(handle.deadline(Duration::from_secs(1)).is_some());
    }
}
