//! Where an accept loop waits: for a connection on its listener, or for the shutdown.
//!
//! The listener is non-blocking and the loop accepts until the queue is empty, so a busy server
//! never waits here; an idle one sleeps in one `poll(2)` on the listener and on the shutdown's
//! wake-up pipe. A blocking `accept` could only be woken by `shutdown(2)` of the listener (or a
//! connection to it), and that resets the connections still in its queue.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// What ended a [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The listener has a connection to accept (or an error to report).
    Connection,
    /// The shutdown began.
    Shutdown,
    /// The timeout passed, or a signal interrupted the wait.
    Timeout,
}

/// Waits until `listener` is ready, `shutdown` is readable, or `timeout` passes (`None`:
/// forever).
///
/// # Errors
///
/// When `poll` fails (out of memory, or a bad descriptor: a bug).
#[allow(unsafe_code)]
pub(crate) fn wait(
    listener: &TcpListener,
    shutdown: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<Woken> {
    let mut fds = [
        libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            // A negative descriptor is skipped by poll.
            fd: shutdown.map_or(-1, |fd| fd.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let millis = match timeout {
        // Rounded up: waking a little late is fine, waking early is a wasted pass.
        Some(timeout) => {
            let ms = timeout.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
        None => -1,
    };
    // SAFETY: `fds` is a valid array of two pollfd for the duration of the call, and both
    // descriptors are borrowed for it.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if ready < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::Interrupted => Ok(Woken::Timeout),
            _ => Err(err),
        };
    }
    Ok(if fds[1].revents != 0 {
        Woken::Shutdown
    } else if fds[0].revents != 0 {
        Woken::Connection
    } else {
        Woken::Timeout
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::os::fd::AsFd;

    #[test]
    fn wakes_for_a_connection_for_the_shutdown_and_at_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (wake_read, mut wake_write) = io::pipe().unwrap();
        let short = Some(Duration::from_millis(20));
        assert_eq!(
            wait(&listener, Some(wake_read.as_fd()), short).unwrap(),
            Woken::Timeout
        );
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(
            wait(&listener, Some(wake_read.as_fd()), None).unwrap(),
            Woken::Connection
        );
        io::Write::write_all(&mut wake_write, &[1]).unwrap();
        assert_eq!(
            wait(&listener, Some(wake_read.as_fd()), None).unwrap(),
            Woken::Shutdown
        );
        assert_eq!(wait(&listener, None, short).unwrap(), Woken::Connection);
    }
}
