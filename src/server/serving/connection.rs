//! The connection a stream session serves: blocking reads and writes that keep the
//! connection's limits, count its bytes, and remember which limit ended it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use echopool_handlers::{CloseReason, StreamConnection};

use super::books::Books;
use super::limits::{is_timeout, ConnLimits, Deadlines};
use super::transport::Transport;
use crate::server::ShutdownHandle;

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
    /// The server's stop, for [`StreamConnection::stop_signal`].
    shutdown: Option<ShutdownHandle>,
}

impl<T: Transport> Connection<T> {
    pub(crate) fn new(transport: T, limits: &ConnLimits, started: Instant) -> Self {
        Connection {
            transport,
            deadlines: Deadlines::new(limits, started),
            books: Books::new(limits.max_bytes),
            shutdown: None,
        }
    }

    /// Lets the session see when `shutdown` is forced ([`StreamConnection::stop_signal`]).
    pub(crate) fn stopped_by(mut self, shutdown: ShutdownHandle) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Why the connection is over, given how the session's `serve` ended (see
    /// [`Books::close_reason`]). A session that waited on something else (a child process)
    /// and gave up at the deadline returns `TimedOut` without reading: that is
    /// `max-duration` too.
    pub(crate) fn close_reason(&mut self, served: &io::Result<()>, forced: bool) -> CloseReason {
        let timed_out = served.as_ref().is_err_and(is_timeout);
        let past_end = self
            .deadlines
            .end()
            .is_some_and(|end| Instant::now() >= end);
        if timed_out && past_end && self.books.ended().is_none() && !forced {
            self.end(CloseReason::MaxDuration);
        }
        self.books.close_reason(served, forced)
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

    fn stop_signal(&self) -> Option<BorrowedFd<'_>> {
        self.shutdown.as_ref().map(ShutdownHandle::forced_signal)
    }
}
