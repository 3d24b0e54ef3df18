//! A connection's limits (`--idle-timeout`, `--write-timeout`, `--max-duration`,
//! `--max-bytes`): the socket options they become and the close reason each one gives. Every
//! timeout a connection has is decided here.

use std::io;
use std::time::{Duration, Instant};

use echopool_handlers::CloseReason;
use socket2::SockRef;

use crate::server::Config;

/// The per-connection limits of a server, with "zero means none" already applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnLimits {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) max_duration: Option<Duration>,
    pub(crate) max_bytes: Option<u64>,
}

impl ConnLimits {
    pub(crate) fn from_config(config: &Config) -> Self {
        let nonzero = |limit: Option<Duration>| limit.filter(|d| !d.is_zero());
        ConnLimits {
            idle_timeout: nonzero(config.idle_timeout),
            write_timeout: nonzero(config.write_timeout),
            max_duration: nonzero(config.max_duration),
            max_bytes: config.max_bytes,
        }
    }

    /// The read timeout a new connection starts with: the idle timeout, or the maximum
    /// duration when that is shorter.
    fn first_read_timeout(&self) -> Option<Duration> {
        match (self.idle_timeout, self.max_duration) {
            (Some(idle), Some(max)) => Some(idle.min(max)),
            (idle, max) => idle.or(max),
        }
    }

    /// Sets the options every connection's socket starts with: TCP_NODELAY (a short echo must
    /// leave at once, not wait for an ACK: Nagle against delayed ACK costs 40 ms a round trip),
    /// the first read timeout and the write timeout.
    ///
    /// Set on the listener: on Linux, accepted sockets inherit them, which saves three system
    /// calls per connection. The price is that the listener's own `accept` then returns a
    /// timeout once per idle timeout while nobody connects, which the accept loop skips.
    pub(crate) fn apply_to(&self, socket: SockRef<'_>) -> io::Result<()> {
        socket.set_nodelay(true)?;
        socket.set_read_timeout(self.first_read_timeout())?;
        socket.set_write_timeout(self.write_timeout)
    }

    /// Whether accepted sockets inherit [`apply_to`](Self::apply_to)'s options from their
    /// listener, so a connection need not set them again.
    pub(crate) const INHERITED: bool = cfg!(target_os = "linux");
}

/// One connection's clock against its limits: what its socket's read timeout must be before
/// each read, and why a read that timed out ends it.
#[derive(Debug)]
pub(crate) struct Deadlines {
    idle: Option<Duration>,
    /// When `--max-duration` ends the connection.
    end: Option<Instant>,
    /// The read timeout the socket has now.
    read_timeout: Option<Duration>,
}

impl Deadlines {
    pub(crate) fn new(limits: &ConnLimits, started: Instant) -> Self {
        Deadlines {
            idle: limits.idle_timeout,
            end: limits.max_duration.map(|max| started + max),
            read_timeout: limits.first_read_timeout(),
        }
    }

    /// When the connection must end, if ever.
    pub(crate) fn end(&self) -> Option<Instant> {
        self.end
    }

    /// Called before each read: the read timeout to set when the end is nearer than the
    /// socket's current timeout (so that one read never outlives the connection), or why the
    /// connection is over. A change only in the connection's last idle-timeout window.
    pub(crate) fn before_read(&mut self, now: Instant) -> Result<Option<Duration>, CloseReason> {
        let Some(end) = self.end else {
            return Ok(None);
        };
        let remaining = end.saturating_duration_since(now);
        if remaining.is_zero() {
            return Err(CloseReason::MaxDuration);
        }
        if self.read_timeout.is_none_or(|current| remaining < current) {
            self.read_timeout = Some(remaining);
            return Ok(Some(remaining));
        }
        Ok(None)
    }

    /// Why a read that timed out at `now` ends the connection: its end, or silence.
    pub(crate) fn read_timed_out(&self, now: Instant) -> CloseReason {
        if self.end.is_some_and(|end| now >= end) {
            CloseReason::MaxDuration
        } else {
            CloseReason::IdleTimeout
        }
    }

    /// The idle timeout, for the log line that says a connection was idle too long.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        self.idle
    }
}

/// Whether a read or write failed because a socket timeout passed: `WouldBlock` on Unix,
/// `TimedOut` on Windows.
pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle: u64, max: Option<u64>) -> ConnLimits {
        ConnLimits {
            idle_timeout: Some(Duration::from_secs(idle)),
            write_timeout: None,
            max_duration: max.map(Duration::from_secs),
            max_bytes: None,
        }
    }

    #[test]
    fn zero_limits_mean_none() {
        let config = Config {
            idle_timeout: Some(Duration::ZERO),
            write_timeout: None,
            max_duration: Some(Duration::ZERO),
            ..Config::default()
        };
        let limits = ConnLimits::from_config(&config);
        assert_eq!(limits.idle_timeout, None);
        assert_eq!(limits.max_duration, None);
        assert_eq!(limits.first_read_timeout(), None);
    }

    #[test]
    fn the_first_read_timeout_is_the_shorter_of_idle_and_max_duration() {
        assert_eq!(
            limits(60, None).first_read_timeout(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            limits(60, Some(5)).first_read_timeout(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            limits(5, Some(60)).first_read_timeout(),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn without_max_duration_the_timeout_never_changes_and_silence_is_idle() {
        let started = Instant::now();
        let mut deadlines = Deadlines::new(&limits(60, None), started);
        let much_later = started + Duration::from_secs(3600);
        assert_eq!(deadlines.before_read(much_later), Ok(None));
        assert_eq!(
            deadlines.read_timed_out(much_later),
            CloseReason::IdleTimeout
        );
        assert_eq!(deadlines.end(), None);
    }

    #[test]
    fn the_timeout_shrinks_only_in_the_last_idle_window_and_the_end_is_max_duration() {
        let started = Instant::now();
        let mut deadlines = Deadlines::new(&limits(10, Some(60)), started);
        let at = |secs| started + Duration::from_secs(secs);
        assert_eq!(
            deadlines.before_read(at(1)),
            Ok(None),
            "59 s left > 10 s idle"
        );
        assert_eq!(
            deadlines.before_read(at(55)),
            Ok(Some(Duration::from_secs(5)))
        );
        assert_eq!(deadlines.before_read(at(55)), Ok(None), "already set");
        assert_eq!(
            deadlines.before_read(at(58)),
            Ok(Some(Duration::from_secs(2)))
        );
        assert_eq!(deadlines.read_timed_out(at(58)), CloseReason::IdleTimeout);
        assert_eq!(deadlines.read_timed_out(at(60)), CloseReason::MaxDuration);
        assert_eq!(deadlines.before_read(at(60)), Err(CloseReason::MaxDuration));
        assert_eq!(deadlines.end(), Some(at(60)));
    }

    #[test]
    fn max_duration_alone_bounds_every_read() {
        let started = Instant::now();
        let no_idle = ConnLimits {
            idle_timeout: None,
            ..limits(0, Some(30))
        };
        let mut deadlines = Deadlines::new(&no_idle, started);
        let at = started + Duration::from_secs(20);
        assert_eq!(deadlines.before_read(at), Ok(Some(Duration::from_secs(10))));
    }
}
