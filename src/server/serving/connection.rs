//! The connection a stream session serves: blocking reads and writes that keep the
//! connection's limits, count its bytes, and remember which limit ended it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use echopool_handlers::{CloseReason, StreamConnection};

use super::books::Books;
use super::limits::{is_timeout, ConnLimits, Deadlines};
use super::transport::Transport;

/// The reads and writes of a connection that a stream session serves itself, with its limits
/// applied:
///
/// - before each read, the socket's read timeout is shortened as `--max-duration` nears;
/// - a read that times out ends the connection as `idle-timeout` (or `max-duration`), a write
///   that times out as `write-timeout` (the socket carries both timeouts);
/// - a read returns at most what `--max-bytes` leaves, and the next read fails.
///
/// A limit that ends the connection shows as an error from the read or write (which a session
/// returns as it is) and in [`Connection::books`].
pub(crate) struct Connection<T> {
    transport: T,
    deadlines: Deadlines,
    pub(crate) books: Books,
}

impl<T: Transport> Connection<T> {
    pub(crate) fn new(transport: T, limits: &ConnLimits, started: Instant) -> Self {
        Connection {
            transport,
            deadlines: Deadlines::new(limits, started),
            books: Books::new(limits.max_bytes),
        }
    }

    /// Ends the connection for `reason` and returns the error that says so.
    fn end(&mut self, reason: CloseReason) -> io::Error {
        self.books.end(reason, self.deadlines.idle_timeout())
    }
}

impl<T: Transport> Read for Connection<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(refused) = self.books.refuse() {
            return Err(refused);
        }
        match self.deadlines.before_read(Instant::now()) {
            Err(reason) => return Err(self.end(reason)),
            Ok(Some(timeout)) => self.transport.set_read_timeout(Some(timeout))?,
            Ok(None) => {}
        }
        loop {
            match self.transport.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if is_timeout(&err) => {
                    let reason = self.deadlines.read_timed_out(Instant::now());
                    return Err(self.end(reason));
                }
                Err(err) => return Err(err),
                Ok(read) => return self.books.received(read),
            }
        }
    }
}

impl<T: Transport> Write for Connection<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.transport.write(buf) {
            Ok(written) => {
                self.books.sent(written);
                Ok(written)
            }
            Err(err) if is_timeout(&err) => Err(self.end(CloseReason::WriteTimeout)),
            Err(err) => Err(err),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl StreamConnection for Connection<&TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.transport
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadlines.end()
    }
}
