//! Serving a connection on a worker: open its session, serve it until it ends or goes quiet,
//! then close it (and count how it ended) or hand it to the parking lot. A handler that
//! panics costs only its own connection.

mod access_log;
mod books;
mod byte_conn;
mod connection;
pub(crate) mod limits;
mod read_buffer;
mod read_loop;
mod read_spin;
mod socket;
mod transport;

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use echopool_handlers::{CloseReason, CloseSummary, ConnInfo, Opened, Session, StreamSession};
use socket2::SockRef;
use tracing::{debug, info, warn, Span};

use super::accepting::PerIpSlot;
use super::queue::{Accepted, Task};
use super::stats::{Gauge, InGauge, Ticket};
use super::Shared;
use books::{log_limit, Moved};
use byte_conn::ByteConn;
pub(crate) use byte_conn::{Interest, Policy, Spot};
use connection::Connection;
use limits::ConnLimits;
pub(crate) use read_buffer::ReadBuffer;
use read_loop::Next;
pub(crate) use read_spin::crowd_threshold;
use read_spin::ReadSpin;
pub(crate) use socket::Socket;

/// A connection with an open byte session: what a worker serves, and what waits in the
/// parking lot between its turns on a worker. It lives in a `Box` from its opening to its
/// close: a parked connection moves between worker, lot and queue for every message, and a
/// pointer moves instead of its 400-odd bytes.
pub(crate) struct Served {
    conn: ByteConn<Socket>,
    session: Box<dyn Session>,
    pub(crate) info: ConnInfo,
    pub(crate) span: Span,
    ticket: Ticket,
    started: Instant,
    /// How long it waited in the queue for its first worker.
    queue_wait: Duration,
    /// Its place in the `queued`, `active` or `parked` count.
    pub(crate) place: InGauge,
    _per_ip_slot: Option<PerIpSlot>,
}

impl Served {
    /// The socket, for the parking lot to watch.
    pub(crate) fn socket_mut(&mut self) -> &mut Socket {
        self.conn.transport_mut()
    }

    /// Its socket is ready again; `peer_closed` when the client has finished sending (so its
    /// next reads must go on to the end of input, however short the one before).
    pub(crate) fn woken(&mut self, peer_closed: bool) {
        self.conn.woken(peer_closed);
    }
}

/// Runs one task on a worker. `someone_waiting` tells whether another connection waits for a
/// worker, so a quiet one is parked at once.
pub(crate) fn run(
    task: Task,
    buf: &mut ReadBuffer,
    shared: &Shared,
    someone_waiting: &dyn Fn() -> bool,
) {
    let served = match task {
        Task::New(accepted) => match open(accepted, shared) {
            Some(served) => served,
            None => return,
        },
        Task::Resume(served) => served,
        Task::Expire(served, reason) => {
            let span = served.span.clone();
            let _entered = span.enter();
            log_limit(reason, shared.limits.idle_timeout, shared.limits.max_bytes);
            return close(served, reason, Closed::InTheLot, shared);
        }
    };
    serve(served, buf, shared, someone_waiting);
}

/// Opens a new connection's session. A stream session is served to its end here; a byte
/// session is returned to be served.
fn open(accepted: Accepted, shared: &Shared) -> Option<Box<Served>> {
    let Accepted {
        stream,
        mut info,
        span,
        ticket,
        per_ip_slot,
        queued,
        accepted_at,
    } = accepted;
    let _entered = span.enter();
    if shared.shutdown.is_forced() {
        info!("closed unserved: the shutdown timeout passed while it waited in the queue");
        ticket.close(CloseReason::Shutdown, 0, 0);
        return None;
    }
    drop(queued);
    let place = shared.stats.enter(Gauge::Active);
    let started = Instant::now();
    let queue_wait = started.saturating_duration_since(accepted_at);
    shared.stats.waited_in_queue(queue_wait);
    let entry = Entry {
        queue_wait,
        started,
    };
    if !ConnLimits::INHERITED {
        if let Err(err) = shared.limits.apply_to(SockRef::from(&stream)) {
            debug!(error = %err, "cannot set socket options");
            let moved = Moved::default();
            count(
                ticket,
                CloseReason::Error,
                moved,
                Closed::ByAWorker,
                &info,
                entry,
                shared,
            );
            return None;
        }
    }
    let stream = shared.live.register(info.id, stream);
    // Behind a load balancer, the client is who its PROXY header says: read it first.
    let per_ip_slot = match &shared.proxy {
        Some(proxy) => match proxy.admit(&stream, &mut info, &span, shared) {
            Ok(slot) => slot,
            Err(refusal) => {
                refusal.spend(ticket, &span, shared);
                return None;
            }
        },
        None => per_ip_slot,
    };
    let opened = panic::catch_unwind(AssertUnwindSafe(|| shared.handler.open(&info)));
    match opened {
        Ok(Opened::Session(session)) => {
            let spin = ReadSpin::new(shared.read_spin);
            let conn = ByteConn::new(Socket::new(stream), &shared.limits, started, spin);
            drop(_entered);
            Some(Box::new(Served {
                conn,
                session,
                info,
                span,
                ticket,
                started,
                queue_wait,
                place,
                _per_ip_slot: per_ip_slot,
            }))
        }
        Ok(Opened::Stream(session)) => {
            let (reason, moved) = serve_stream(session, &stream, shared, started);
            drop(stream);
            count(
                ticket,
                reason,
                moved,
                Closed::ByAWorker,
                &info,
                entry,
                shared,
            );
            None
        }
        Err(payload) => {
            log_panic(&payload);
            let moved = Moved::default();
            count(
                ticket,
                CloseReason::Panic,
                moved,
                Closed::ByAWorker,
                &info,
                entry,
                shared,
            );
            None
        }
    }
}

/// Serves a byte session until its connection ends or is parked.
fn serve(
    mut served: Box<Served>,
    buf: &mut ReadBuffer,
    shared: &Shared,
    waiting: &dyn Fn() -> bool,
) {
    let span = served.span.clone();
    let _entered = span.enter();
    served.place = shared.stats.enter(Gauge::Active);
    let crowded = || shared.stats.now_in(Gauge::Active) > shared.read_spin_crowd;
    let policy = Policy {
        park_after: shared.park_after,
        someone_waiting: waiting,
        crowded: &crowded,
        shutdown: &shared.shutdown,
        parking: shared.parking.as_deref(),
    };
    let next = loop {
        let next = panic::catch_unwind(AssertUnwindSafe(|| {
            read_loop::run(served.session.as_mut(), &mut served.conn, buf, &policy)
        }));
        let Ok(Next::Park(spot)) = next else {
            break next;
        };
        let parking = shared
            .parking
            .as_ref()
            .expect("parked only when parking is on");
        match parking.park(served, spot, shared) {
            // Its socket became ready meanwhile: serve it on.
            Some(again) => served = again,
            None => return,
        }
    };
    match next {
        Ok(Next::Close(reason)) => close(served, reason, Closed::ByAWorker, shared),
        Ok(Next::Park(_)) => unreachable!("parked above"),
        Err(payload) => {
            log_panic(&payload);
            let entry = served.entry();
            let Served {
                conn, ticket, info, ..
            } = *served;
            let moved = conn.moved();
            drop(conn);
            let closed = Closed::ByAWorker;
            count(
                ticket,
                CloseReason::Panic,
                moved,
                closed,
                &info,
                entry,
                shared,
            );
        }
    }
}

/// Where a connection was when it closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    ByAWorker,
    InTheLot,
}

/// Closes a byte session's connection: the socket first (the peer sees the end now), then
/// the session is told how it ended, then it is counted.
pub(crate) fn close(served: Box<Served>, reason: CloseReason, closed: Closed, shared: &Shared) {
    let entry = served.entry();
    let Served {
        mut conn,
        mut session,
        ticket,
        started,
        info,
        ..
    } = *served;
    if conn.transport_mut().is_watched() {
        if let Some(parking) = &shared.parking {
            parking.forget(info.id);
        }
    }
    let moved = conn.moved();
    drop(conn);
    let summary = summary(reason, moved, started);
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| session.closed(&summary))) {
        log_panic(&payload);
    }
    count(ticket, reason, moved, closed, &info, entry, shared);
}

/// Serves a stream session to its end on this worker; stream sessions are never parked.
fn serve_stream(
    mut session: Box<dyn StreamSession>,
    stream: &std::net::TcpStream,
    shared: &Shared,
    started: Instant,
) -> (CloseReason, Moved) {
    // A stream session blocks on its own reads and writes: its socket carries the timeouts.
    if let Err(err) = shared.limits.apply_to(SockRef::from(stream)) {
        debug!(error = %err, "cannot set socket options");
        return (CloseReason::Error, Moved::default());
    }
    let mut conn =
        Connection::new(stream, &shared.limits, started).stopped_by(shared.shutdown.clone());
    let served = panic::catch_unwind(AssertUnwindSafe(|| session.serve(&mut conn)));
    let reason = match &served {
        Ok(served) => {
            if let Err(err) = served {
                debug!(error = %err, "stream session ended with an error");
            }
            conn.close_reason(served, shared.shutdown.is_forced())
        }
        Err(payload) => {
            log_panic(payload);
            return (CloseReason::Panic, conn.books.moved);
        }
    };
    let moved = conn.books.moved;
    let summary = summary(reason, moved, started);
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| session.closed(&summary))) {
        log_panic(&payload);
    }
    (reason, moved)
}

fn summary(reason: CloseReason, moved: Moved, started: Instant) -> CloseSummary {
    CloseSummary {
        bytes_in: moved.bytes_in,
        bytes_out: moved.bytes_out,
        duration: started.elapsed(),
        reason,
    }
}

/// When a connection reached a worker, and how long it had waited for one.
#[derive(Debug, Clone, Copy)]
struct Entry {
    queue_wait: Duration,
    started: Instant,
}

impl Served {
    fn entry(&self) -> Entry {
        Entry {
            queue_wait: self.queue_wait,
            started: self.started,
        }
    }
}

/// Counts a connection's end (and its time served), and writes its access log line.
fn count(
    ticket: Ticket,
    reason: CloseReason,
    moved: Moved,
    closed: Closed,
    info: &ConnInfo,
    entry: Entry,
    shared: &Shared,
) {
    match closed {
        Closed::ByAWorker => ticket.close(reason, moved.bytes_in, moved.bytes_out),
        Closed::InTheLot => ticket.close_parked(reason, moved.bytes_in, moved.bytes_out),
    }
    let served = entry.started.elapsed();
    shared.stats.served_for(served);
    if shared.access_log {
        let handler = &shared.handler_name;
        access_log::write(info, handler, entry.queue_wait, served, moved, reason);
    }
    debug!(
        bytes_in = moved.bytes_in,
        bytes_out = moved.bytes_out,
        elapsed_ms = served.as_millis() as u64,
        %reason,
        "closed"
    );
}

fn log_panic(payload: &(dyn std::any::Any + Send)) {
    warn!(
        panic = panic_message(payload),
        "handler panicked; closed this connection only"
    );
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
