//! A connection as a session sees it: reads and writes that keep the connection's limits,
//! count its bytes, and remember which limit ended it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use echopool_handlers::{CloseReason, StreamConnection};
use tracing::info;

use super::limits::{is_timeout, ConnLimits, Deadlines};
use super::read_spin::ReadSpin;
use super::transport::Transport;

/// Bytes a connection moved; kept outside the panic boundary so that a panicking handler's
/// connection is still counted.
#[derive(Debug, Default)]
pub(crate) struct Moved {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

/// The reads and writes of one connection, with its limits applied:
///
/// - before each read, the socket's read timeout is shortened as `--max-duration` nears;
/// - a read that times out ends the connection as `idle-timeout` (or `max-duration`), a write
///   that times out as `write-timeout`;
/// - a read returns at most what `--max-bytes` leaves, and the next read fails;
/// - a client that polls quickly finds its worker awake ([`ReadSpin`]).
///
/// A limit that ends the connection shows as an error from the read or write (which a session
/// returns as it is) and as [`Connection::ended`].
pub(crate) struct Connection<'a, T> {
    transport: T,
    deadlines: Deadlines,
    max_bytes: Option<u64>,
    spin: ReadSpin,
    /// Whether so many connections are being served that polling does not pay.
    crowded: &'a dyn Fn() -> bool,
    moved: &'a mut Moved,
    /// Whether the last read filled the buffer it was given: more is probably waiting.
    last_read_full: bool,
    ended: Option<CloseReason>,
}

impl<'a, T: Transport> Connection<'a, T> {
    pub(crate) fn new(
        transport: T,
        limits: &ConnLimits,
        started: Instant,
        spin: ReadSpin,
        crowded: &'a dyn Fn() -> bool,
        moved: &'a mut Moved,
    ) -> Self {
        Connection {
            transport,
            deadlines: Deadlines::new(limits, started),
            max_bytes: limits.max_bytes,
            spin,
            crowded,
            moved,
            last_read_full: false,
            ended: None,
        }
    }

    /// The limit that ended the connection, if one did.
    pub(crate) fn ended(&self) -> Option<CloseReason> {
        self.ended
    }

    /// Why the connection is over, given how serving it ended: a limit that ended it, else the
    /// graceful stop's deadline (`forced`: the server shut the socket down, so reads returned
    /// 0 or failed), else the end of input or an error.
    pub(crate) fn close_reason(&self, served: &io::Result<()>, forced: bool) -> CloseReason {
        match (self.ended, served) {
            (Some(limit), _) => limit,
            _ if forced => CloseReason::Shutdown,
            (None, Ok(())) => CloseReason::Eof,
            (None, Err(_)) => CloseReason::Error,
        }
    }

    /// Ends the connection for `reason`, logs why, and returns the error that says so.
    fn end(&mut self, reason: CloseReason) -> io::Error {
        if self.ended.is_none() {
            self.ended = Some(reason);
            match reason {
                CloseReason::IdleTimeout => info!(
                    idle_timeout = ?self.deadlines.idle_timeout().unwrap_or_default(),
                    "closing idle connection"
                ),
                CloseReason::MaxDuration => info!("closing connection: it reached --max-duration"),
                CloseReason::WriteTimeout => info!("closing connection: the peer stopped reading"),
                CloseReason::MaxBytes => info!(
                    max_bytes = self.max_bytes,
                    "closing connection: it sent more than --max-bytes"
                ),
                _ => {}
            }
        }
        LimitReached(reason).into()
    }

    /// One read: polled while the client is quick, else waiting up to the read timeout.
    fn read_once(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let crowded = (self.crowded)();
        if let Some(polled) = self
            .spin
            .poll(&mut self.transport, buf, crowded, self.last_read_full)
        {
            return polled;
        }
        let read = self.transport.read(buf);
        self.spin.blocked_read_returned();
        read
    }

    /// Cuts a read of `read` bytes to what `--max-bytes` leaves, ending the connection when the
    /// limit is reached.
    fn allow(&mut self, read: usize) -> io::Result<usize> {
        let Some(max) = self.max_bytes else {
            return Ok(read);
        };
        let left = max.saturating_sub(self.moved.bytes_in);
        if read as u64 <= left {
            return Ok(read);
        }
        let error = self.end(CloseReason::MaxBytes);
        match left {
            // Nothing may pass: an `Ok(0)` would read as the end of input.
            0 => Err(error),
            left => Ok(left as usize),
        }
    }
}

impl<T: Transport> Read for Connection<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(reason) = self.ended {
            return Err(LimitReached(reason).into());
        }
        match self.deadlines.before_read(Instant::now()) {
            Err(reason) => return Err(self.end(reason)),
            Ok(Some(timeout)) => self.transport.set_read_timeout(Some(timeout))?,
            Ok(None) => {}
        }
        loop {
            match self.read_once(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if is_timeout(&err) => {
                    let reason = self.deadlines.read_timed_out(Instant::now());
                    return Err(self.end(reason));
                }
                Err(err) => return Err(err),
                Ok(read) => {
                    self.last_read_full = read > 0 && read == buf.len();
                    let allowed = self.allow(read)?;
                    self.moved.bytes_in += allowed as u64;
                    return Ok(allowed);
                }
            }
        }
    }
}

impl<T: Transport> Write for Connection<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.transport.write(buf) {
            Ok(written) => {
                self.moved.bytes_out += written as u64;
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

impl StreamConnection for Connection<'_, &TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.transport
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadlines.end()
    }
}

/// The error a read or write returns once a limit has ended the connection.
#[derive(Debug)]
struct LimitReached(CloseReason);

impl fmt::Display for LimitReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection closed by the server: {}", self.0)
    }
}

impl std::error::Error for LimitReached {}

impl From<LimitReached> for io::Error {
    fn from(limit: LimitReached) -> io::Error {
        let kind = match limit.0 {
            CloseReason::MaxBytes => io::ErrorKind::Other,
            _ => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, limit)
    }
}
