//! A short, adaptive poll of the socket before a worker blocks waiting for its client.
//!
//! A worker that blocks in `recv` sleeps, and the next message must wake it: on a busy server
//! that is a context switch and, when the message arrives from another core, an inter-processor
//! interrupt per message. An event loop avoids both while it has work. A worker that has just
//! answered polls its socket a few times instead, yielding the core between polls so the other
//! workers run meanwhile; a client that answers quickly (a request-response conversation) then
//! finds its worker awake. The number of polls adapts per connection: it doubles while polls
//! find data and halves while they do not, so a quiet connection soon costs one poll a message.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// The adaptive poll budget of one connection.
#[derive(Debug)]
pub(crate) struct ReadSpin {
    max: u32,
    budget: u32,
}

impl ReadSpin {
    /// A budget that grows to at most `max` polls; `0` never polls.
    pub(crate) fn new(max: u32) -> Self {
        ReadSpin {
            max,
            budget: max.min(1),
        }
    }

    /// Polls `stream` without blocking up to the current budget, yielding the core before each
    /// poll. `Some` is what a read returned (data, end of stream or an error); `None` means
    /// nothing came and the caller should block.
    pub(crate) fn poll(&mut self, stream: &TcpStream, buf: &mut [u8]) -> Option<io::Result<usize>> {
        for _ in 0..self.budget {
            std::thread::yield_now();
            match recv_now(stream, buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                result => {
                    self.budget = (self.budget * 2).min(self.max);
                    return Some(result);
                }
            }
        }
        self.budget /= 2;
        None
    }

    /// A blocking read returned data: try polling again next time, even after a quiet spell.
    pub(crate) fn blocked_read_returned(&mut self) {
        self.budget = self.budget.max(self.max.min(1));
    }
}

/// `recv` with `MSG_DONTWAIT`: this one call does not block, whatever the socket's mode, so
/// the worker's blocking reads and their timeouts stay as they are.
fn recv_now(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call, and the file
    // descriptor belongs to `stream`, which outlives the call.
    let received = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if received < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(received as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (served, _) = listener.accept().unwrap();
        (client, served)
    }

    #[test]
    fn finds_waiting_data_and_grows_its_budget() {
        let (mut client, served) = pair();
        let mut spin = ReadSpin::new(8);
        client.write_all(b"ping").unwrap();
        let mut buf = [0; 16];
        // The bytes may take a moment to cross loopback; a budget of 1 may miss them.
        let mut found = None;
        for _ in 0..1000 {
            spin.blocked_read_returned();
            if let Some(result) = spin.poll(&served, &mut buf) {
                found = Some(result.unwrap());
                break;
            }
        }
        assert_eq!(found, Some(4));
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(spin.budget, 2);
    }

    #[test]
    fn a_quiet_socket_shrinks_the_budget_to_nothing_without_blocking() {
        let (_client, served) = pair();
        let mut spin = ReadSpin::new(8);
        spin.budget = 8;
        let mut buf = [0; 16];
        for expected in [4, 2, 1, 0, 0] {
            assert!(spin.poll(&served, &mut buf).is_none());
            assert_eq!(spin.budget, expected);
        }
        spin.blocked_read_returned();
        assert_eq!(spin.budget, 1);
    }

    #[test]
    fn zero_never_polls() {
        let (mut client, served) = pair();
        client.write_all(b"x").unwrap();
        let mut spin = ReadSpin::new(0);
        spin.blocked_read_returned();
        assert!(spin.poll(&served, &mut [0; 4]).is_none());
    }
}
