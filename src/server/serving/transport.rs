//! What serving a connection needs of its socket, as a trait: a `TcpStream` in the server, a
//! scripted stand-in in the tests, so the read loop's decisions are tested without a network.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The socket operations the read loop uses.
pub(crate) trait Transport {
    /// Reads, waiting up to the read timeout last set; a timeout is a `WouldBlock` or
    /// `TimedOut` error.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Reads what is there without waiting; `WouldBlock` when nothing is.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes, waiting up to the write timeout; a timeout is a `WouldBlock` or `TimedOut`
    /// error.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;

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
        /// A read times out at once.
        Silence,
        /// A read waits out the read timeout last set, then times out.
        WaitOut,
        /// A read fails.
        Fail(io::ErrorKind),
    }

    /// Plays `reads` in order to the reads (polls see nothing), takes every write while
    /// `writable` lasts, then fails writes with `write_error`; records the read timeouts set.
    #[derive(Debug)]
    pub(crate) struct Script {
        pub(crate) reads: VecDeque<Step>,
        pub(crate) written: Vec<u8>,
        pub(crate) writable: usize,
        pub(crate) write_error: io::ErrorKind,
        pub(crate) timeouts_set: Vec<Option<Duration>>,
    }

    impl Script {
        pub(crate) fn new(reads: impl IntoIterator<Item = Step>) -> Self {
            Script {
                reads: reads.into_iter().collect(),
                written: Vec::new(),
                writable: usize::MAX,
                write_error: io::ErrorKind::WouldBlock,
                timeouts_set: Vec::new(),
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
                Some(Step::Silence) => Err(io::ErrorKind::WouldBlock.into()),
                Some(Step::WaitOut) => {
                    let waited = self.timeouts_set.last().copied().flatten();
                    std::thread::sleep(waited.expect("WaitOut needs a read timeout"));
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Some(Step::Fail(kind)) => Err(kind.into()),
                None => panic!("the read loop read past the end of its script"),
            }
        }

        fn read_now(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
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

        fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
            self.timeouts_set.push(timeout);
            Ok(())
        }
    }
}
