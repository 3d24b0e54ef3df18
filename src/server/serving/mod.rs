//! Serving one connection on a worker: open a session, run it to the end, close the socket,
//! count how it ended. A handler that panics costs only its own connection.

mod connection;
pub(crate) mod limits;
mod read_buffer;
mod read_loop;
mod read_spin;
mod transport;

use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use echopool_handlers::{CloseReason, CloseSummary, ConnInfo, Opened};
use socket2::SockRef;
use tracing::{debug, info, warn};

use super::queue::Accepted;
use super::stats::Gauge;
use super::Shared;
use connection::{Connection, Moved};
use limits::ConnLimits;
pub(crate) use read_buffer::ReadBuffer;
pub(crate) use read_spin::crowd_threshold;
use read_spin::ReadSpin;

/// Serves `conn` to its end, reading into the worker's `buf`, and counts how it ended. Never
/// panics: a handler that panics costs only this connection.
pub(crate) fn serve(conn: Accepted, buf: &mut ReadBuffer, shared: &Shared) {
    let Accepted {
        stream,
        info,
        span,
        ticket,
        per_ip_slot: _per_ip_slot,
        queued,
    } = conn;
    drop(queued);
    let _entered = span.enter();
    if shared.shutdown.is_forced() {
        info!("closed unserved: the shutdown timeout passed while it waited in the queue");
        ticket.close(CloseReason::Shutdown, 0, 0);
        return;
    }
    let _active = shared.stats.enter(Gauge::Active);
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
    ticket.close(reason, moved.bytes_in, moved.bytes_out);
    debug!(
        bytes_in = moved.bytes_in,
        bytes_out = moved.bytes_out,
        elapsed_ms = started.elapsed().as_millis() as u64,
        %reason,
        "closed"
    );
}

/// The session to tell how the connection ended, once its socket is closed.
enum Closing {
    Session(Box<dyn echopool_handlers::Session>),
    Stream(Box<dyn echopool_handlers::StreamSession>),
}

fn run(
    stream: TcpStream,
    info: &ConnInfo,
    buf: &mut ReadBuffer,
    shared: &Shared,
    started: Instant,
    moved: &mut Moved,
) -> CloseReason {
    if !ConnLimits::INHERITED {
        if let Err(err) = shared.limits.apply_to(SockRef::from(&stream)) {
            debug!(error = %err, "cannot set socket options");
            return CloseReason::Error;
        }
    }
    let stream = shared.live.register(info.id, stream);
    let crowded = || shared.stats.now_in(Gauge::Active) > shared.read_spin_crowd;
    let spin = ReadSpin::new(shared.read_spin);
    let mut conn = Connection::new(&*stream, &shared.limits, started, spin, &crowded, moved);
    let (reason, opening) = match shared.handler.open(info) {
        Opened::Session(mut session) => {
            let reason = read_loop::drive(session.as_mut(), &mut conn, buf, &shared.shutdown);
            (reason, Closing::Session(session))
        }
        Opened::Stream(mut session) => {
            let served = session.serve(&mut conn);
            if let Err(err) = &served {
                debug!(error = %err, "stream session ended with an error");
            }
            let reason = conn.close_reason(&served, shared.shutdown.is_forced());
            (reason, Closing::Stream(session))
        }
    };
    // Close first (the peer sees the end now), then tell the session.
    drop(stream);
    let summary = CloseSummary {
        bytes_in: moved.bytes_in,
        bytes_out: moved.bytes_out,
        duration: started.elapsed(),
        reason,
    };
    match opening {
        Closing::Session(mut session) => session.closed(&summary),
        Closing::Stream(mut session) => session.closed(&summary),
    }
    reason
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
