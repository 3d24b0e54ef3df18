//! `--max-connections`: how many connections the server holds at once (served, queued and
//! parked), the descriptor limit its default follows, and the accept loop's wait for room.
//!
//! Each connection holds one descriptor, so the descriptor limit (`RLIMIT_NOFILE`) is the hard
//! bound. The default cap is that limit less a reserve for what else the process opens
//! (listeners, the poller, standard streams, log files, a program a handler runs), so that at
//! the cap the server refuses or holds back new clients itself rather than meeting `EMFILE` in
//! the accept loop.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::stats::Stats;
use super::ShutdownHandle;

/// Descriptors kept back from connections when `--max-connections` follows the descriptor
/// limit.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The soft descriptor limit of this process, if it has one.
pub(crate) fn descriptor_limit() -> Option<u64> {
    rlimit_nofile().map(|(soft, _)| soft)
}

/// How many connections the descriptor limit leaves room for: the default `--max-connections`.
pub(crate) fn descriptors_for_connections() -> u64 {
    match descriptor_limit() {
        Some(limit) => limit.saturating_sub(RESERVED_DESCRIPTORS).max(1),
        None => u64::MAX,
    }
}

/// Raises the soft descriptor limit to the hard limit, as a server that holds many connections
/// wants (Go's runtime does the same); returns the soft limit now.
///
/// # Errors
///
/// When the limit cannot be read or set.
#[allow(unsafe_code)]
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    let (soft, hard) = rlimit_nofile().ok_or_else(std::io::Error::last_os_error)?;
    if soft >= hard {
        return Ok(soft);
    }
    let raised = libc::rlimit {
        rlim_cur: hard as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: a valid pointer to an initialised `rlimit` for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(hard)
}

#[allow(unsafe_code)]
#[allow(clippy::unnecessary_cast)] // `rlim_t` is a u64 on 64-bit Linux, not everywhere
fn rlimit_nofile() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let unlimited = |value: libc::rlim_t| value == libc::RLIM_INFINITY;
    let soft = if unlimited(limit.rlim_cur) {
        u64::MAX
    } else {
        limit.rlim_cur as u64
    };
    let hard = if unlimited(limit.rlim_max) {
        u64::MAX
    } else {
        limit.rlim_max as u64
    };
    Some((soft, hard))
}

/// The cap, and how an accept loop waits for room under it.
#[derive(Debug)]
pub(crate) struct Room {
    max: u64,
    /// Set while an accept loop waits for room.
    waiting: AtomicBool,
    freed: Sender<()>,
    wait: Receiver<()>,
}

impl Room {
    pub(crate) fn new(max: u64) -> Self {
        let (freed, wait) = crossbeam_channel::bounded(1);
        Room {
            max,
            waiting: AtomicBool::new(false),
            freed,
            wait,
        }
    }

    /// Whether `open` connections fill the cap.
    pub(crate) fn is_full(&self, open: u64) -> bool {
        open >= self.max
    }

    /// Waits until fewer than the cap are open; false when the shutdown began first.
    pub(crate) fn wait(&self, stats: &Stats, shutdown: &ShutdownHandle) -> bool {
        self.wait_while_full(stats, |freed| {
            crossbeam_channel::select! {
                recv(freed) -> _ => true,
                recv(shutdown.stopped()) -> _ => false,
            }
        })
    }

    /// Waits until fewer than the cap are open or `deadline` passes (false then): after the
    /// shutdown began, while the accept loop takes what the kernel had queued.
    pub(crate) fn wait_until(&self, stats: &Stats, deadline: Instant) -> bool {
        self.wait_while_full(stats, |freed| freed.recv_deadline(deadline).is_ok())
    }

    /// The wait both share: `block` waits for a freed slot and says whether to keep waiting.
    fn wait_while_full(&self, stats: &Stats, mut block: impl FnMut(&Receiver<()>) -> bool) -> bool {
        loop {
            if !self.is_full(stats.open_now()) {
                return true;
            }
            self.waiting.store(true, SeqCst);
            // A connection that ended between the check and the flag did not see the flag.
            if !self.is_full(stats.open_now()) {
                self.waiting.store(false, SeqCst);
                return true;
            }
            if !block(&self.wait) {
                return false;
            }
        }
    }

    /// Called when a connection ends with `open` still open: wakes a waiting accept loop.
    pub(crate) fn connection_ended(&self, open: u64) {
        if !self.is_full(open) && self.waiting.swap(false, SeqCst) {
            let _ = self.freed.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_default_cap_leaves_a_reserve_below_the_descriptor_limit() {
        let limit = descriptor_limit().expect("a descriptor limit");
        assert_eq!(
            descriptors_for_connections(),
            limit.saturating_sub(RESERVED_DESCRIPTORS).max(1)
        );
    }

    #[test]
    fn an_accept_loop_waits_for_room_and_wakes_when_a_connection_ends() {
        let stats = Stats::default();
        let room = std::sync::Arc::new(Room::new(1));
        let held = stats.accept();
        let shutdown = ShutdownHandle::new(Duration::ZERO);
        let waiter = {
            let (stats, room, shutdown) = (stats.clone(), room.clone(), shutdown.clone());
            std::thread::spawn(move || room.wait(&stats, &shutdown))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "it waited while the cap was reached");
        held.close(echopool_handlers::CloseReason::Eof, 0, 0);
        room.connection_ended(stats.open_now());
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_drain_waits_for_room_until_its_deadline() {
        let stats = Stats::default();
        let room = Room::new(1);
        let held = stats.accept();
        let soon = Instant::now() + Duration::from_millis(30);
        assert!(
            !room.wait_until(&stats, soon),
            "no room came before the deadline"
        );
        held.close(echopool_handlers::CloseReason::Eof, 0, 0);
        assert!(room.wait_until(&stats, soon));
    }

    #[test]
    fn a_shutdown_ends_the_wait() {
        let stats = Stats::default();
        let room = Room::new(1);
        let _held = stats.accept();
        let shutdown = ShutdownHandle::new(Duration::ZERO);
        shutdown.shutdown();
        assert!(!room.wait(&stats, &shutdown));
        // The test's ticket is spent by its drop, as an error, which is fine here.
    }
}
