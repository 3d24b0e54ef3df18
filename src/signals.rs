//! SIGTERM and SIGINT stop the server gracefully, a second one exits at once; SIGUSR1 logs the
//! counters.

use std::io;
use std::thread::{self, JoinHandle};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::{Handle, Signals};
use tracing::{info, warn};

use crate::server::{ShutdownHandle, StatsView};

/// The thread that waits for signals; [`SignalThread::stop`] ends and joins it.
pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Starts listening for signals on a thread named `signals`.
    ///
    /// # Errors
    ///
    /// When the handlers cannot be installed or the thread cannot start.
    pub fn start(shutdown: ShutdownHandle, stats: StatsView) -> io::Result<SignalThread> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1])?;
        let handle = signals.handle();
        let thread = thread::Builder::new()
            .name("signals".to_string())
            .spawn(move || {
                for signal in signals.forever() {
                    match signal {
                        SIGUSR1 => info!(stats = %stats.snapshot(), "stats"),
                        _ if shutdown.is_shutting_down() => {
                            warn!(signal = name(signal), "second signal; exiting now");
                            std::process::exit(128 + signal);
                        }
                        _ => {
                            info!(signal = name(signal), "shutting down gracefully");
                            shutdown.shutdown();
                        }
                    }
                }
            })?;
        Ok(SignalThread { handle, thread })
    }

    /// Stops waiting for signals and joins the thread.
    pub fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGUSR1 => "SIGUSR1",
        _ => "a signal",
    }
}
