//! Waiting on several descriptors and a deadline at once, with `poll(2)`: how a worker waits for
//! its child's exit (a pidfd), the server's forced stop and the child's stderr together, with no
//! thread per connection and no polling in a loop.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

/// Waits until one of `fds` is readable (or hung up, or in error) or `until` passes; returns,
/// for each descriptor, whether it is ready: all `false` means the deadline passed. `None`
/// waits without a deadline. A signal that interrupts the wait does not end it.
///
/// # Errors
///
/// When `poll` fails for another reason (too many descriptors, out of memory).
#[allow(unsafe_code)]
pub(crate) fn wait_readable(
    fds: &[BorrowedFd<'_>],
    until: Option<Instant>,
) -> io::Result<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let timeout = match until {
            None => -1,
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                // Rounded up, so that the wait never ends just before the deadline and spins.
                let millis = left.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `polled` is a valid array of pollfd of the length given, alive across the
        // call, and every descriptor in it is borrowed for the duration of this function.
        let ready =
            unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, timeout) };
        if ready >= 0 {
            return Ok(polled.iter().map(|p| p.revents != 0).collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::time::Duration;

    #[test]
    fn reports_which_is_ready_or_that_the_deadline_passed() {
        let (quiet_reader, _quiet_writer) = io::pipe().unwrap();
        let (ready_reader, mut ready_writer) = io::pipe().unwrap();
        let fds = [quiet_reader.as_fd(), ready_reader.as_fd()];
        let started = Instant::now();
        let until = started + Duration::from_millis(30);
        assert_eq!(wait_readable(&fds, Some(until)).unwrap(), [false, false]);
        assert!(Instant::now() >= until, "woke before the deadline");
        ready_writer.write_all(b"x").unwrap();
        assert_eq!(wait_readable(&fds, None).unwrap(), [false, true]);
        drop(ready_writer);
        let hung_up = wait_readable(&fds[1..], Some(Instant::now())).unwrap();
        assert_eq!(hung_up, [true]);
    }
}
