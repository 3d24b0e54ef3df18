//! A byte session's connection: reads that wait for the client only while no one else needs
//! the worker, writes that never block the worker, and the limits on both.
//!
//! A read first polls (the adaptive [`ReadSpin`]); when nothing is there it either leaves at
//! once (another connection waits for a worker), or waits on this socket for up to
//! `--park-after` (a blocking read with that timeout: one system call, as in the textbook
//! server), and only then leaves. Leaving is [`Wait::Park`]: the worker hands the connection to
//! the parking lot. With parking off, a read waits up to the idle timeout.
//!
//! A write takes what the socket takes now; the rest is kept as pending output (at most what
//! one chunk of input produced, since nothing more is read until it is sent) and sent before the
//! next read, waiting for the socket the same way a read waits for the client.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use echopool_handlers::CloseReason;

use super::books::{Books, Moved};
use super::limits::{is_timeout, ConnLimits, Deadlines};
use super::read_spin::ReadSpin;
use super::transport::Transport;
use crate::server::parked::Parking;
use crate::server::ShutdownHandle;

/// How a worker may wait for one connection.
pub(crate) struct Policy<'a> {
    /// How long to wait on a quiet connection before parking it; `None` never parks.
    pub(crate) park_after: Option<Duration>,
    /// Whether another connection is waiting for a worker (then a quiet one is parked at once).
    pub(crate) someone_waiting: &'a dyn Fn() -> bool,
    /// Whether so many connections are served at once that polling does not pay.
    pub(crate) crowded: &'a dyn Fn() -> bool,
    pub(crate) shutdown: &'a ShutdownHandle,
    /// The parking lot, told when the worker waits on its connection (then the lot's poller
    /// must watch the other sockets); `None` when parking is off.
    pub(crate) parking: Option<&'a Parking>,
}

impl Policy<'_> {
    /// Whether a connection that would wait is parked without waiting: another connection
    /// waits for a worker, or `--park-after 0`.
    fn parks_at_once(&self) -> bool {
        self.park_after
            .is_some_and(|wait| wait.is_zero() || (self.someone_waiting)())
    }
}

/// What the socket is waited for while the connection is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Input from the client.
    Read,
    /// Room to send the pending output.
    Write,
}

/// Where a connection leaving its worker goes: the socket event it waits for, and when and as
/// what it expires if that does not come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spot {
    pub(crate) interest: Interest,
    pub(crate) deadline: Option<Instant>,
    pub(crate) expires_as: CloseReason,
}

/// Why a read or a send did not complete.
#[derive(Debug)]
pub(crate) enum Wait {
    /// The connection leaves the worker for the parking lot.
    Park(Spot),
    /// The connection is over (a limit, an error, the shutdown).
    Over(io::Error),
}

impl From<io::Error> for Wait {
    fn from(err: io::Error) -> Self {
        Wait::Over(err)
    }
}

/// The state of a byte session's connection that must survive a park.
pub(crate) struct ByteConn<T> {
    transport: T,
    deadlines: Deadlines,
    pub(crate) books: Books,
    spin: ReadSpin,
    /// Output the socket has not taken yet.
    pending: Vec<u8>,
    /// Since when the pending output has made no progress.
    stalled_since: Option<Instant>,
    /// Whether the last read filled the buffer it was given: more is probably waiting.
    last_read_full: bool,
    /// Whether the last read in this turn on a worker was short, so the socket was drained
    /// then: with others waiting, the connection is parked without another read (the poller
    /// reports whatever comes after that read), as an event loop does.
    drained: bool,
    /// Whether the poller said the client has finished sending: then a short read is no sign
    /// of a drained socket (the end of input waits behind the data), and reads go on to it.
    peer_closed: bool,
    /// Whether the client has been quiet for `--park-after` before: such a client is parked
    /// at once when it goes quiet again, rather than holding its worker for another wait.
    was_quiet: bool,
    /// Set when the connection is to close once its pending output is sent: at the end of
    /// input, or at `--max-bytes`.
    pub(crate) finishing: Option<CloseReason>,
}

impl<T: Transport> ByteConn<T> {
    pub(crate) fn new(transport: T, limits: &ConnLimits, started: Instant, spin: ReadSpin) -> Self {
        ByteConn {
            transport,
            deadlines: Deadlines::new(limits, started),
            books: Books::new(limits.max_bytes),
            spin,
            pending: Vec::new(),
            stalled_since: None,
            last_read_full: false,
            drained: false,
            peer_closed: false,
            was_quiet: false,
            finishing: None,
        }
    }

    /// The bytes moved so far.
    pub(crate) fn moved(&self) -> Moved {
        self.books.moved
    }

    /// Mutable access to the socket, for the parking lot's registration.
    pub(crate) fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The socket, taking the connection apart (the tests read what was written).
    #[cfg(test)]
    pub(crate) fn into_transport(self) -> T {
        self.transport
    }

    /// Ends the connection for `reason` and returns the error that says so.
    fn end(&mut self, reason: CloseReason) -> Wait {
        Wait::Over(self.books.end(reason, self.deadlines.idle_timeout()))
    }

    /// Reads the next chunk into `buf`: `Ok(0)` at the end of input.
    pub(crate) fn read(&mut self, buf: &mut [u8], policy: &Policy<'_>) -> Result<usize, Wait> {
        if let Some(refused) = self.books.refuse() {
            return Err(Wait::Over(refused));
        }
        if let Some(polled) = self.spin.poll(
            &mut self.transport,
            buf,
            (policy.crowded)(),
            self.last_read_full,
        ) {
            match polled {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                polled => return self.took(polled, buf.len()),
            }
        }
        let quiet_since = Instant::now();
        if policy.parks_at_once() || (self.was_quiet && policy.park_after.is_some()) {
            if self.drained && !self.peer_closed {
                return Err(self.park_quiet(quiet_since));
            }
            // Others wait: take what is there (a new or resumed connection has input) and
            // leave if nothing is.
            return match self.transport.read_now(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    Err(self.park_quiet(quiet_since))
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                    Err(self.park_quiet(quiet_since))
                }
                read => self.took(read, buf.len()),
            };
        }
        match self.deadlines.before_wait(quiet_since, policy.park_after) {
            Err(reason) => return Err(self.end(reason)),
            Ok(Some(timeout)) => self.transport.set_read_timeout(Some(timeout))?,
            Ok(None) => {}
        }
        let _waiting = policy.parking.map(Parking::worker_waits);
        loop {
            let read = self.transport.read(buf);
            self.spin.blocked_read_returned();
            match read {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if is_timeout(&err) => {
                    let now = Instant::now();
                    return Err(match self.deadlines.wait_ended(now - quiet_since, now) {
                        Some(reason) => self.end(reason),
                        None => {
                            self.was_quiet = true;
                            self.park_quiet(quiet_since)
                        }
                    });
                }
                read => return self.took(read, buf.len()),
            }
        }
    }

    /// A read returned: count it against the limits.
    fn took(&mut self, read: io::Result<usize>, len: usize) -> Result<usize, Wait> {
        let read = read?;
        self.last_read_full = read > 0 && read == len;
        self.drained = read > 0 && read < len;
        Ok(self.books.received(read)?)
    }

    fn park_quiet(&self, quiet_since: Instant) -> Wait {
        let (deadline, expires_as) = self.deadlines.quiet_deadline(quiet_since);
        Wait::Park(Spot {
            interest: Interest::Read,
            deadline,
            expires_as,
        })
    }

    /// A new turn on a worker: the connection was resumed because its socket is ready.
    pub(crate) fn resumed(&mut self) {
        self.drained = false;
    }

    /// The poller reported the socket ready, and whether the client has finished sending.
    pub(crate) fn woken(&mut self, peer_closed: bool) {
        self.peer_closed |= peer_closed;
    }

    /// Whether output is waiting for the socket.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends the pending output, waiting for the socket as a read waits for the client.
    pub(crate) fn flush_pending(&mut self, policy: &Policy<'_>) -> Result<(), Wait> {
        while !self.pending.is_empty() {
            match self.transport.write_now(&self.pending) {
                Ok(sent) => {
                    self.books.sent(sent);
                    self.pending.drain(..sent);
                    self.stalled_since = Some(Instant::now());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_writable(policy)?
                }
                Err(err) => return Err(Wait::Over(err)),
            }
        }
        // Sent: release the memory a slow reader made us hold.
        self.pending = Vec::new();
        self.stalled_since = None;
        Ok(())
    }

    /// The socket takes nothing: wait for room (up to `--park-after`, or at once with others
    /// waiting), or leave for the parking lot, or end at the write timeout.
    fn wait_writable(&mut self, policy: &Policy<'_>) -> Result<(), Wait> {
        let now = Instant::now();
        let stalled_since = *self.stalled_since.get_or_insert(now);
        let (deadline, expires_as) = self.deadlines.stalled_deadline(stalled_since);
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Err(self.end(expires_as));
        }
        let park = Wait::Park(Spot {
            interest: Interest::Write,
            deadline,
            expires_as,
        });
        if policy.parks_at_once() {
            return Err(park);
        }
        let until_deadline = deadline.map(|deadline| deadline - now);
        let wait = match (policy.park_after, until_deadline) {
            (Some(park_after), Some(left)) => Some(park_after.min(left)),
            (park_after, left) => park_after.or(left),
        };
        let waiting = policy.parking.map(Parking::worker_waits);
        let writable = self.transport.wait_writable(wait)?;
        drop(waiting);
        if writable {
            return Ok(());
        }
        match policy.park_after {
            // Waited out `--park-after` (or the deadline, which the next pass sees).
            Some(_) if deadline.is_none_or(|deadline| Instant::now() < deadline) => Err(park),
            _ => Ok(()),
        }
    }
}

/// Session output: sent now if the socket takes it, else kept as pending output.
impl<T: Transport> Write for ByteConn<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            match self.transport.write_now(buf) {
                Ok(sent) => {
                    self.books.sent(sent);
                    self.pending.extend_from_slice(&buf[sent..]);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.pending.extend_from_slice(buf);
                }
                Err(err) => return Err(err),
            }
        } else {
            self.pending.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
