//! The accept loop: take connections from one listener and hand them to the workers' queue.

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Select, Sender, TrySendError};
use echopool_handlers::{CloseReason, ConnInfo};
use tracing::{debug, error, info_span, warn};

use super::throttle::Throttle;
use crate::server::queue::Accepted;
use crate::server::serving::limits::is_timeout;
use crate::server::stats::{Gauge, RejectReason, Ticket};
use crate::server::{Overflow, Shared};

/// The first and the longest pause after an accept error that is not about one connection.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What every accept loop shares.
pub(crate) struct AcceptContext<'a> {
    shared: &'a Shared,
    overflow: Overflow,
    /// The last connection id given out.
    next_id: AtomicU64,
    /// One log throttle per reject reason, so a flood of one kind cannot hide another.
    reject_logs: [Throttle; RejectReason::ALL.len()],
}

impl<'a> AcceptContext<'a> {
    pub(crate) fn new(shared: &'a Shared, overflow: Overflow) -> Self {
        AcceptContext {
            shared,
            overflow,
            next_id: AtomicU64::new(0),
            reject_logs: RejectReason::ALL.map(|_| Throttle::new(Duration::from_secs(1))),
        }
    }
}

/// Accepts from `listener` until the shutdown begins, handing each connection to `queue`.
/// Never returns an error: errors about one connection are skipped, others are logged and
/// retried after a pause that grows while they last (out of descriptors must not spin).
pub(crate) fn run(listener: &TcpListener, queue: Sender<Accepted>, ctx: &AcceptContext<'_>) {
    let shutdown = &ctx.shared.shutdown;
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(err) => {
            error!(error = %err, "cannot read the listener's address; not accepting on it");
            return;
        }
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        let room = &ctx.shared.room;
        if ctx.overflow == Overflow::Block && !room.wait(&ctx.shared.stats, shutdown) {
            return;
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(_) if shutdown.is_shutting_down() => return,
            // The listener carries the read timeout for its connections to inherit
            // (`ConnLimits::apply_to`), so an accept with nobody connecting returns once per
            // idle timeout: not an error.
            Err(err) if is_timeout(&err) => continue,
            Err(err) if is_about_one_connection(&err) => {
                debug!(%local, error = %err, "a connection ended before it was accepted");
                continue;
            }
            Err(err) => {
                warn!(%local, error = %err, retry_in = ?backoff, "accept failed");
                shutdown.sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        let full = room.is_full(ctx.shared.stats.open_now());
        let ticket = ctx.shared.stats.accept();
        let id = ctx.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let span = info_span!("conn", id, %peer);
        if full {
            reject(ticket, RejectReason::MaxConnections, &span, ctx);
            continue;
        }
        // Checked here, before the connection can take a place in the queue or a worker.
        if !ctx.shared.access.permits(peer.ip()) {
            reject(ticket, RejectReason::Denied, &span, ctx);
            continue;
        }
        let per_ip_slot = match &ctx.shared.per_ip {
            Some(limit) => match limit.acquire(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    reject(ticket, RejectReason::PerIpLimit, &span, ctx);
                    continue;
                }
            },
            None => None,
        };
        let conn = Accepted {
            stream,
            info: ConnInfo { id, peer, local },
            span,
            ticket,
            per_ip_slot,
            queued: ctx.shared.stats.enter(Gauge::Queued),
        };
        hand_off(conn, &queue, ctx);
    }
}

/// Errors that concern only the connection being accepted (it was reset or aborted before we
/// took it); the next accept may well succeed.
fn is_about_one_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Queues `conn` for a worker, applying the overflow policy when the queue is full.
fn hand_off(conn: Accepted, queue: &Sender<Accepted>, ctx: &AcceptContext<'_>) {
    let full = match queue.try_send(conn) {
        Ok(()) => return,
        Err(TrySendError::Full(conn)) => conn,
        Err(TrySendError::Disconnected(conn)) => return no_workers(conn),
    };
    match ctx.overflow {
        Overflow::Reject => {
            let Accepted { ticket, span, .. } = full;
            reject(ticket, RejectReason::QueueFull, &span, ctx);
        }
        Overflow::Block => block_until_queued(full, queue, ctx),
    }
}

/// Counts and logs a connection closed on the accept thread; the caller drops the stream,
/// which closes it. The log is throttled per reason so a flood cannot flood the log.
fn reject(ticket: Ticket, reason: RejectReason, span: &tracing::Span, ctx: &AcceptContext<'_>) {
    ticket.reject(reason);
    let Some(held_back) = ctx.reject_logs[reason.index()].allow() else {
        return;
    };
    let _entered = span.enter();
    let why = match reason {
        RejectReason::QueueFull => "queue full (--overflow reject)",
        RejectReason::Denied => "address not allowed (--allow/--deny)",
        RejectReason::PerIpLimit => "too many connections from this address (--max-per-ip)",
        RejectReason::MaxConnections => "the server holds --max-connections (--overflow reject)",
    };
    warn!(
        %reason,
        also_rejected_since_last_log = held_back,
        "connection rejected: {why}"
    );
}

/// Waits for room in the queue. A shutdown does not drop the connection: it was accepted, so
/// it still gets its turn until the shutdown timeout passes.
fn block_until_queued(conn: Accepted, queue: &Sender<Accepted>, ctx: &AcceptContext<'_>) {
    let shutdown = &ctx.shared.shutdown;
    let mut select = Select::new();
    let send = select.send(queue);
    select.recv(shutdown.stopped());
    let op = select.select();
    if op.index() == send {
        if let Err(err) = op.send(queue, conn) {
            no_workers(err.into_inner());
        }
        return;
    }
    let _ = op.recv(shutdown.stopped());
    let deadline = shutdown.deadline().expect("the shutdown has begun");
    if let Err(err) = queue.send_deadline(conn, deadline) {
        let Accepted { ticket, span, .. } = err.into_inner();
        ticket.close(CloseReason::Shutdown, 0, 0);
        let _entered = span.enter();
        warn!("closed unserved: no worker was free before the shutdown timeout");
    }
}

/// The queue has no receiver: every worker is gone (only while the server stops).
fn no_workers(conn: Accepted) {
    let Accepted { ticket, span, .. } = conn;
    ticket.close(CloseReason::Error, 0, 0);
    let _entered = span.enter();
    error!("no workers are left to take connections");
}
