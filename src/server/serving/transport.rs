//! What serving a connection needs of its socket, as a trait: a `TcpStream` in the server, a
//! scripted stand-in in the tests, so the read loop's decisions are tested without a network.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The socket operations serving a connection uses.
pub(crate) trait Transport {
    /// Reads, waiting up to the read timeout last set; a timeout is a `WouldBlock` or
    /// `TimedOut` error.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Reads what is there without waiting; `WouldBlock` when nothing is.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes, waiting up to the socket's write timeout; a timeout is a `WouldBlock` or
    /// `TimedOut` error.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Writes what the socket takes now without waiting; `WouldBlock` when it takes nothing.
    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Waits until a write would not block, up to `timeout` (`None`: forever); false when the
    /// timeout passed first.
    fn wait_writable(&mut self, timeout: Option<Duration>) -> io::Result<bool>;

    /// Changes how long [`read`](Transport::read) waits; `None` waits forever.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read(buf)
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_now(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (**self).write(buf)
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        (**self).write_now(buf)
    }

    fn wait_writable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        (**self).wait_writable(timeout)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

impl Transport for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self, buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(self, buf)
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_now(self, buf)
    }

    fn wait_writable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        poll_writable(self, timeout)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

/// `recv` with `MSG_DONTWAIT`: this one call does not block, whatever the socket's mode, so
/// the worker's blocking reads and their timeouts stay as they are.
#[allow(unsafe_code)]
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

/// `send` with `MSG_DONTWAIT` (and no SIGPIPE): takes what fits now, never waits.
#[allow(unsafe_code)]
fn send_now(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call, and the file
    // descriptor belongs to `stream`, which outlives the call.
    let sent = unsafe {
        libc::send(
            stream.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// `poll(2)` for writability of one socket.
#[allow(unsafe_code)]
fn poll_writable(stream: &TcpStream, timeout: Option<Duration>) -> io::Result<bool> {
    let millis = match timeout {
        // Round up: a wait of 0.4 ms must not become a busy loop of zero-millisecond polls.
        Some(timeout) => {
            libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
        }
        None => -1,
    };
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid `pollfd` for the duration of the call.
    match unsafe { libc::poll(&mut fd, 1, millis) } {
        -1 => {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            }
        }
        0 => Ok(false),
        // Writable, or an error or hang-up that the next write reports.
        _ => Ok(true),
    }
}

#[cfg(test)]
pub(crate) mod script {
    //! A transport that plays a script, for unit tests of the read loop.

    use std::collections::VecDeque;

    use super::*;

    /// What the peer does next, as the server's reads see it.
    #[derive(Debug)]
    pub(crate) enum Step {
        /// Bytes arrive.
        Data(&'static [u8]),
        /// The peer half-closes: reads return 0.
        Eof,
        /// A read waits out the socket's read timeout, then times out.
        WaitOut,
        /// A read fails.
        Fail(io::ErrorKind),
    }

    /// Plays `reads` in order (a read that does not wait sees what is there already: anything
    /// but a `WaitOut`), takes every write while `writable` lasts, then fails writes with
    /// `write_error`; records the read timeouts set.
    #[derive(Debug)]
    pub(crate) struct Script {
        pub(crate) reads: VecDeque<Step>,
        pub(crate) written: Vec<u8>,
        pub(crate) writable: usize,
        pub(crate) write_error: io::ErrorKind,
        pub(crate) timeouts_set: Vec<Option<Duration>>,
        /// The read timeout the socket had before any was set (inherited from its listener).
        pub(crate) inherited_timeout: Option<Duration>,
    }

    impl Script {
        pub(crate) fn new(reads: impl IntoIterator<Item = Step>) -> Self {
            Script {
                reads: reads.into_iter().collect(),
                written: Vec::new(),
                writable: usize::MAX,
                write_error: io::ErrorKind::WouldBlock,
                timeouts_set: Vec::new(),
                inherited_timeout: None,
            }
        }
    }

    impl Transport for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.reads.pop_front() {
                Some(Step::Data(bytes)) => {
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    if n < bytes.len() {
                        self.reads.push_front(Step::Data(&bytes[n..]));
                    }
                    Ok(n)
                }
                Some(Step::Eof) => Ok(0),
                Some(Step::WaitOut) => {
                    let timeout = match self.timeouts_set.last() {
                        Some(set) => *set,
                        None => self.inherited_timeout,
                    };
                    std::thread::sleep(timeout.expect("WaitOut needs a read timeout"));
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Some(Step::Fail(kind)) => Err(kind.into()),
                None => panic!("the read loop read past the end of its script"),
            }
        }

        fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.reads.front() {
                None | Some(Step::WaitOut) => Err(io::ErrorKind::WouldBlock.into()),
                Some(_) => Transport::read(self, buf),
            }
        }

        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.writable == 0 {
                return Err(self.write_error.into());
            }
            let n = buf.len().min(self.writable);
            self.writable -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
            Transport::write(self, buf)
        }

        fn wait_writable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
            // The peer never reads again: the wait lasts its whole timeout.
            std::thread::sleep(timeout.expect("a bounded wait in a test"));
            Ok(false)
        }

        fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
            self.timeouts_set.push(timeout);
            Ok(())
        }
    }
}
