//! Serving one connection on a worker: the read loop, its timeouts, and how it ends.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use echopool_handlers::{CloseReason, CloseSummary, ConnInfo, Opened, Session};
use tracing::{debug, info, warn, Span};

use super::Shared;

/// A connection accepted and waiting for a worker.
pub(crate) struct Accepted {
    pub(crate) stream: TcpStream,
    pub(crate) info: ConnInfo,
    /// The `conn` span, made on the accept thread so that every line about this connection,
    /// from any thread, carries its id and peer.
    pub(crate) span: Span,
}

/// Bytes moved so far; kept outside the panic boundary so a panicking handler's connection is
/// still counted.
#[derive(Debug, Default)]
struct Moved {
    bytes_in: u64,
    bytes_out: u64,
}

/// Serves `conn` to its end with `buf` as the read buffer. Never panics: a handler that panics
/// costs only this connection.
pub(crate) fn serve(conn: Accepted, buf: &mut [u8], shared: &Shared) {
    let Accepted { stream, info, span } = conn;
    let _entered = span.enter();
    if shared.shutdown.is_forced() {
        info!("closed unserved: the shutdown timeout passed while it waited in the queue");
        shared.stats.closed(CloseReason::Shutdown, 0, 0);
        return;
    }
    let _active = shared.stats.active();
    let _live = shared.live.register(info.id, &stream);
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
    buf: &mut [u8],
    shared: &Shared,
    started: Instant,
    moved: &mut Moved,
) -> CloseReason {
    // Small writes (an echo of a short message) must leave at once, not wait for an ACK.
    if let Err(err) = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(shared.limits.idle_timeout))
    {
        debug!(error = %err, "cannot set socket options");
        return CloseReason::Error;
    }
    match shared.handler.open(info) {
        Opened::Session(mut session) => {
            let reason = drive(session.as_mut(), &stream, buf, shared, moved);
            session.closed(&CloseSummary {
                bytes_in: moved.bytes_in,
                bytes_out: moved.bytes_out,
                duration: started.elapsed(),
                reason,
            });
            reason
        }
        Opened::Stream(session) => match session.serve(stream) {
            Ok(()) => CloseReason::Eof,
            Err(err) => {
                debug!(error = %err, "stream session failed");
                failure_reason(&err, shared)
            }
        },
    }
}

/// The read loop: read a chunk, hand it to the session, until the peer half-closes.
fn drive(
    session: &mut dyn Session,
    stream: &TcpStream,
    buf: &mut [u8],
    shared: &Shared,
    moved: &mut Moved,
) -> CloseReason {
    let mut out = CountingWriter {
        stream,
        written: &mut moved.bytes_out,
    };
    loop {
        let read = match (&mut &*stream).read(buf) {
            Ok(0) if shared.shutdown.is_forced() => return CloseReason::Shutdown,
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if is_timeout(&err) => {
                info!(
                    idle_timeout = ?shared.limits.idle_timeout.unwrap_or_default(),
                    "closing idle connection"
                );
                return CloseReason::IdleTimeout;
            }
            Err(err) => return failure(&err, "read failed", shared),
        };
        moved.bytes_in += read as u64;
        if let Err(err) = session.data(&buf[..read], &mut out) {
            return failure(&err, "write failed", shared);
        }
    }
    if let Err(err) = session.eof(&mut out) {
        return failure(&err, "write failed", shared);
    }
    // Send our FIN now; the socket closes when the stream is dropped.
    let _ = stream.shutdown(Shutdown::Write);
    CloseReason::Eof
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
