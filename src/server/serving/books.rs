//! What a connection has moved and which limit ended it: shared by both ways of serving one
//! (a byte session's loop and a stream session's blocking reads and writes).

use std::fmt;
use std::io;
use std::time::Duration;

use echopool_handlers::CloseReason;
use tracing::info;

/// Bytes a connection moved.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Moved {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

/// A connection's bytes against `--max-bytes`, and the limit that ended it.
#[derive(Debug)]
pub(crate) struct Books {
    pub(crate) moved: Moved,
    max_bytes: Option<u64>,
    ended: Option<CloseReason>,
}

impl Books {
    pub(crate) fn new(max_bytes: Option<u64>) -> Self {
        Books {
            moved: Moved::default(),
            max_bytes,
            ended: None,
        }
    }

    /// The limit that ended the connection, if one did.
    pub(crate) fn ended(&self) -> Option<CloseReason> {
        self.ended
    }

    /// Ends the connection for `reason` (the first reason stays), logs why, and returns the
    /// error a read or write gives from now on.
    pub(crate) fn end(&mut self, reason: CloseReason, idle: Option<Duration>) -> io::Error {
        if self.ended.is_none() {
            self.ended = Some(reason);
            log_limit(reason, idle, self.max_bytes);
        }
        LimitReached(reason).into()
    }

    /// The error a read gives once a limit has ended the connection.
    pub(crate) fn refuse(&self) -> Option<io::Error> {
        self.ended.map(|reason| LimitReached(reason).into())
    }

    /// Counts a read of `read` bytes, cut to what `--max-bytes` leaves; reaching the limit ends
    /// the connection (an error when nothing may pass: `Ok(0)` would read as the end of input).
    pub(crate) fn received(&mut self, read: usize) -> io::Result<usize> {
        let left = self
            .max_bytes
            .map_or(u64::MAX, |max| max.saturating_sub(self.moved.bytes_in));
        let allowed = read.min(usize::try_from(left).unwrap_or(usize::MAX));
        if allowed < read {
            let error = self.end(CloseReason::MaxBytes, None);
            if allowed == 0 {
                return Err(error);
            }
        }
        self.moved.bytes_in += allowed as u64;
        Ok(allowed)
    }

    /// Counts bytes written.
    pub(crate) fn sent(&mut self, written: usize) {
        self.moved.bytes_out += written as u64;
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
}

/// The info line that says which limit closed a connection.
pub(crate) fn log_limit(reason: CloseReason, idle: Option<Duration>, max_bytes: Option<u64>) {
    match reason {
        CloseReason::IdleTimeout => info!(
            idle_timeout = ?idle.unwrap_or_default(),
            "closing idle connection"
        ),
        CloseReason::MaxDuration => info!("closing connection: it reached --max-duration"),
        CloseReason::WriteTimeout => info!("closing connection: the peer stopped reading"),
        CloseReason::MaxBytes => info!(
            max_bytes,
            "closing connection: it sent more than --max-bytes"
        ),
        _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_bytes_cuts_the_read_that_crosses_it_and_refuses_what_follows() {
        let mut books = Books::new(Some(5));
        assert_eq!(books.received(3).unwrap(), 3);
        assert_eq!(books.received(4).unwrap(), 2);
        assert_eq!(books.ended(), Some(CloseReason::MaxBytes));
        assert!(books.refuse().is_some());
        let mut full = Books::new(Some(3));
        full.received(3).unwrap();
        assert!(full.received(1).is_err(), "never Ok(0) for bytes that came");
        assert_eq!(full.moved.bytes_in, 3);
    }

    #[test]
    fn a_limit_wins_over_the_shutdown_which_wins_over_the_outcome() {
        let mut books = Books::new(None);
        assert_eq!(books.close_reason(&Ok(()), false), CloseReason::Eof);
        let failed = Err(io::ErrorKind::BrokenPipe.into());
        assert_eq!(books.close_reason(&failed, false), CloseReason::Error);
        assert_eq!(books.close_reason(&failed, true), CloseReason::Shutdown);
        books.end(CloseReason::WriteTimeout, None);
        assert_eq!(books.close_reason(&failed, true), CloseReason::WriteTimeout);
    }
}
