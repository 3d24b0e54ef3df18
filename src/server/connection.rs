//! Serving one connection on a worker: the read loop, its timeouts, and how it ends.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use echopool_handlers::{CloseReason, CloseSummary, ConnInfo, Opened, Session};
use tracing::{debug, info, warn, Span};

use super::listener;
use super::per_ip::PerIpSlot;
use super::read_buffer::ReadBuffer;
use super::read_spin::ReadSpin;
use super::Shared;

/// A connection accepted and waiting for a worker.
pub(crate) struct Accepted {
    pub(crate) stream: TcpStream,
    pub(crate) info: ConnInfo,
    /// The `conn` span, made on the accept thread so that every line about this connection,
    /// from any thread, carries its id and peer.
    pub(crate) span: Span,
    /// The connection's place in its address's `--max-per-ip` count, freed when it closes.
    pub(crate) per_ip_slot: Option<PerIpSlot>,
}

/// Bytes moved so far; kept outside the panic boundary so a panicking handler's connection is
/// still counted.
#[derive(Debug, Default)]
struct Moved {
    bytes_in: u64,
    bytes_out: u64,
}

/// Serves `conn` to its end, reading into the worker's `buf`. Never panics: a handler that panics
/// costs only this connection.
pub(crate) fn serve(conn: Accepted, buf: &mut ReadBuffer, shared: &Shared) {
    let Accepted {
        stream,
        info,
        span,
        per_ip_slot: _per_ip_slot,
    } = conn;
    let _entered = span.enter();
    if shared.shutdown.is_forced() {
        info!("closed unserved: the shutdown timeout passed while it waited in the queue");
        shared.stats.closed(CloseReason::Shutdown, 0, 0);
        return;
    }
    let _active = shared.stats.active();
    let started = Instant::now();
    let mut moved = Moved::default();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        run(stream, &info, buf, shared, started, &mut moved)
    }));
    let reason = outcome.unwrap_or_else(|payload| {
        warn!(
            panic = panic_message(&payload),
            "handler panicked; closed this connection only"
        );
        CloseReason::Panic
    });
    shared.stats.closed(reason, moved.bytes_in, moved.bytes_out);
    debug!(
        bytes_in = moved.bytes_in,
        bytes_out = moved.bytes_out,
        elapsed_ms = started.elapsed().as_millis() as u64,
        %reason,
        "closed"
    );
}

fn run(
    stream: TcpStream,
    info: &ConnInfo,
    buf: &mut ReadBuffer,
    shared: &Shared,
    started: Instant,
    moved: &mut Moved,
) -> CloseReason {
    let mut read_timeout = ReadTimeout::new(&shared.limits, started);
    if let Err(err) = listener::set_inherited_options(&stream, &shared.limits) {
        debug!(error = %err, "cannot set socket options");
        return CloseReason::Error;
    }
    let stream = shared.live.register(info.id, stream);
    match shared.handler.open(info) {
        Opened::Session(mut session) => {
            let reason = drive(
                session.as_mut(),
                &stream,
                buf,
                shared,
                &mut read_timeout,
                moved,
            );
            // Close first (the peer sees the end now), then tell the session.
            drop(stream);
            session.closed(&CloseSummary {
                bytes_in: moved.bytes_in,
                bytes_out: moved.bytes_out,
                duration: started.elapsed(),
                reason,
            });
            reason
        }
        // The handler owns the socket: the limits apply only as its socket timeouts. It gets a
        // clone, so a forced shutdown can still reach the original.
        Opened::Stream(session) => match stream.try_clone().and_then(|own| session.serve(own)) {
            Ok(()) => CloseReason::Eof,
            Err(err) => {
                debug!(error = %err, "stream session failed");
                failure_reason(&err, shared)
            }
        },
    }
}

/// The read loop: read a chunk, hand it to the session, until the peer half-closes or a limit
/// ends the connection.
fn drive(
    session: &mut dyn Session,
    stream: &TcpStream,
    buf: &mut ReadBuffer,
    shared: &Shared,
    read_timeout: &mut ReadTimeout,
    moved: &mut Moved,
) -> CloseReason {
    let mut reader = stream;
    let mut spin = ReadSpin::new(shared.limits.read_spin);
    let mut last_read_full = false;
    let mut out = CountingWriter {
        stream,
        written: &mut moved.bytes_out,
    };
    loop {
        if let Err(reason) = read_timeout.before_read(stream) {
            return reason;
        }
        let crowded = shared.stats.active_now() > shared.limits.read_spin_max_active;
        let result = match spin.poll(stream, buf.space(), crowded, last_read_full) {
            Some(polled) => polled,
            None => {
                let blocked = reader.read(buf.space());
                spin.blocked_read_returned();
                blocked
            }
        };
        let read = match result {
            Ok(0) if shared.shutdown.is_forced() => return CloseReason::Shutdown,
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if is_timeout(&err) => return read_timeout.expired(),
            Err(err) => return failure(&err, "read failed", shared),
        };
        let allowed = match shared.limits.max_bytes {
            Some(max) => read.min(max.saturating_sub(moved.bytes_in) as usize),
            None => read,
        };
        moved.bytes_in += allowed as u64;
        if let Err(err) = session.data(&buf.space()[..allowed], &mut out) {
            return failure(&err, "write failed", shared);
        }
        last_read_full = buf.filled(read);
        if allowed < read {
            info!(
                max_bytes = shared.limits.max_bytes,
                dropped = read - allowed,
                "closing connection: it sent more than --max-bytes"
            );
            return CloseReason::MaxBytes;
        }
    }
    if let Err(err) = session.eof(&mut out) {
        return failure(&err, "write failed", shared);
    }
    CloseReason::Eof
}

/// The socket's read timeout: the idle timeout, shortened as the `--max-duration` deadline
/// comes nearer, so that one blocking read never outlives the connection's deadline.
struct ReadTimeout {
    idle: Option<std::time::Duration>,
    deadline: Option<Instant>,
    /// What the socket is set to now.
    current: Option<std::time::Duration>,
}

impl ReadTimeout {
    fn new(limits: &super::Limits, started: Instant) -> ReadTimeout {
        ReadTimeout {
            idle: limits.idle_timeout,
            deadline: limits.max_duration.map(|max| started + max),
            current: limits.first_read_timeout(),
        }
    }

    /// Shortens the socket's timeout when the deadline is nearer than the current timeout; a
    /// system call only in the connection's last idle-timeout window.
    fn before_read(&mut self, stream: &TcpStream) -> Result<(), CloseReason> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(self.expired());
        }
        if self.current.is_none_or(|current| remaining < current) {
            stream
                .set_read_timeout(Some(remaining))
                .map_err(|_| CloseReason::Error)?;
            self.current = Some(remaining);
        }
        Ok(())
    }

    /// Why a read timed out: the connection's deadline, or silence.
    fn expired(&self) -> CloseReason {
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            info!("closing connection: it reached --max-duration");
            CloseReason::MaxDuration
        } else {
            info!(idle_timeout = ?self.idle.unwrap_or_default(), "closing idle connection");
            CloseReason::IdleTimeout
        }
    }
}

fn failure(err: &io::Error, doing: &str, shared: &Shared) -> CloseReason {
    let reason = failure_reason(err, shared);
    match reason {
        CloseReason::WriteTimeout => info!("closing connection: the peer stopped reading"),
        _ => debug!(error = %err, "{doing}"),
    }
    reason
}

fn failure_reason(err: &io::Error, shared: &Shared) -> CloseReason {
    if shared.shutdown.is_forced() {
        CloseReason::Shutdown
    } else if is_timeout(err) {
        CloseReason::WriteTimeout
    } else {
        CloseReason::Error
    }
}

/// A socket timeout shows as `WouldBlock` on Unix and `TimedOut` on Windows.
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "(not a string)"
    }
}

/// Writes to the socket, adding up the bytes written.
struct CountingWriter<'a> {
    stream: &'a TcpStream,
    written: &'a mut u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = (&mut &*self.stream).write(buf)?;
        *self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
