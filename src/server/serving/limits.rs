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
    pub(crate) fn first_read_timeout(&self) -> Option<Duration> {
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

/// One connection's clock against its limits: the read timeout its socket must have before
/// each wait, why a wait that timed out ends it (or only parks it), and when a parked
/// connection expires.
#[derive(Debug)]
pub(crate) struct Deadlines {
    idle: Option<Duration>,
    write: Option<Duration>,
    /// When `--max-duration` ends the connection.
    end: Option<Instant>,
    /// The read timeout the socket has now (at first what it inherited from the listener).
    read_timeout: Option<Duration>,
}

impl Deadlines {
    pub(crate) fn new(limits: &ConnLimits, started: Instant) -> Self {
        Deadlines {
            idle: limits.idle_timeout,
            write: limits.write_timeout,
            end: limits.max_duration.map(|max| started + max),
            read_timeout: limits.first_read_timeout(),
        }
    }

    /// When the connection must end, if ever.
    pub(crate) fn end(&self) -> Option<Instant> {
        self.end
    }

    /// Called before a read that may wait for the client: up to `park_after` when the
    /// connection may be parked, else up to the idle timeout, and never past the end. Returns
    /// the read timeout to set when the socket's differs (once, or in the connection's last
    /// window before its end), or why the connection is over.
    pub(crate) fn before_wait(
        &mut self,
        now: Instant,
        park_after: Option<Duration>,
    ) -> Result<Option<Duration>, CloseReason> {
        let mut wait = shorter(park_after, self.idle);
        if let Some(end) = self.end {
            let remaining = end.saturating_duration_since(now);
            if remaining.is_zero() {
                return Err(CloseReason::MaxDuration);
            }
            wait = shorter(wait, Some(remaining));
        }
        if wait == self.read_timeout {
            return Ok(None);
        }
        self.read_timeout = wait;
        Ok(wait)
    }

    /// [`before_wait`](Self::before_wait) for a connection that is never parked.
    pub(crate) fn before_read(&mut self, now: Instant) -> Result<Option<Duration>, CloseReason> {
        self.before_wait(now, None)
    }

    /// A wait that began `waited` ago timed out at `now`: why that ends the connection, or
    /// `None` when it only waited out `--park-after` and may be parked.
    pub(crate) fn wait_ended(&self, waited: Duration, now: Instant) -> Option<CloseReason> {
        if self.end.is_some_and(|end| now >= end) {
            Some(CloseReason::MaxDuration)
        } else if self.idle.is_some_and(|idle| waited >= idle) {
            Some(CloseReason::IdleTimeout)
        } else {
            None
        }
    }

    /// Why a read that timed out at `now` ends a connection that is never parked.
    pub(crate) fn read_timed_out(&self, now: Instant) -> CloseReason {
        match self.wait_ended(Duration::MAX, now) {
            Some(reason) => reason,
            None => CloseReason::IdleTimeout,
        }
    }

    /// When a connection quiet since `quiet_since` expires, and as what: silence, or its end.
    pub(crate) fn quiet_deadline(&self, quiet_since: Instant) -> (Option<Instant>, CloseReason) {
        let idle_at = self.idle.map(|idle| quiet_since + idle);
        self.earliest(idle_at, CloseReason::IdleTimeout)
    }

    /// When a connection whose writes have made no progress since `stalled_since` expires, and
    /// as what: a client that stopped reading, or its end.
    pub(crate) fn stalled_deadline(
        &self,
        stalled_since: Instant,
    ) -> (Option<Instant>, CloseReason) {
        let stalled_at = self.write.map(|write| stalled_since + write);
        self.earliest(stalled_at, CloseReason::WriteTimeout)
    }

    /// The earlier of `limit_at` (a limit that ends the connection as `reason`) and its end.
    fn earliest(
        &self,
        limit_at: Option<Instant>,
        reason: CloseReason,
    ) -> (Option<Instant>, CloseReason) {
        match (limit_at, self.end) {
            (Some(at), Some(end)) if end <= at => (Some(end), CloseReason::MaxDuration),
            (None, Some(end)) => (Some(end), CloseReason::MaxDuration),
            (at, _) => (at, reason),
        }
    }

    /// The idle timeout, for the log line that says a connection was idle too long.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        self.idle
    }
}

/// The shorter of two waits, where `None` is forever.
fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
    fn a_parkable_wait_is_park_after_set_once_and_its_timeout_only_parks() {
        let started = Instant::now();
        let mut deadlines = Deadlines::new(&limits(60, None), started);
        let park_after = Some(Duration::from_millis(10));
        assert_eq!(
            deadlines.before_wait(started, park_after),
            Ok(Some(Duration::from_millis(10)))
        );
        assert_eq!(deadlines.before_wait(started, park_after), Ok(None));
        let waited = Duration::from_millis(10);
        assert_eq!(deadlines.wait_ended(waited, started + waited), None);
        assert_eq!(
            deadlines.wait_ended(Duration::from_secs(60), started),
            Some(CloseReason::IdleTimeout)
        );
        let (at, reason) = deadlines.quiet_deadline(started);
        assert_eq!(
            (at, reason),
            (
                Some(started + Duration::from_secs(60)),
                CloseReason::IdleTimeout
            )
        );
    }

    #[test]
    fn a_parked_deadline_is_the_earlier_of_the_limit_and_the_end() {
        let started = Instant::now();
        let deadlines = Deadlines::new(&limits(60, Some(30)), started);
        let end = started + Duration::from_secs(30);
        assert_eq!(
            deadlines.quiet_deadline(started),
            (Some(end), CloseReason::MaxDuration)
        );
        let no_write_limit = deadlines.stalled_deadline(started);
        assert_eq!(no_write_limit, (Some(end), CloseReason::MaxDuration));
        let writes = Deadlines::new(
            &ConnLimits {
                write_timeout: Some(Duration::from_secs(5)),
                ..limits(60, None)
            },
            started,
        );
        assert_eq!(
            writes.stalled_deadline(started),
            (
                Some(started + Duration::from_secs(5)),
                CloseReason::WriteTimeout
            )
        );
        let forever = Deadlines::new(
            &ConnLimits {
                idle_timeout: None,
                ..limits(0, None)
            },
            started,
        );
        assert_eq!(
            forever.quiet_deadline(started),
            (None, CloseReason::IdleTimeout)
        );
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
