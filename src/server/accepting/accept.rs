//! The accept loop: take connections from one listener and hand them to the workers' queue.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Select, Sender, TrySendError};
use echopool_handlers::{CloseReason, ConnInfo};
use tracing::{debug, error, info_span, warn};

use super::drain;
use super::ready::{wait, Woken};
use crate::server::queue::{Accepted, Handoff};
use crate::server::stats::{Gauge, RejectReason, Ticket};
use crate::server::stopping::reopen;
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
}

impl<'a> AcceptContext<'a> {
    pub(crate) fn new(shared: &'a Shared, overflow: Overflow) -> Self {
        AcceptContext {
            shared,
            overflow,
            next_id: AtomicU64::new(0),
        }
    }
}

/// Accepts from `listener` until the shutdown begins, handing each connection to `queue`;
/// then takes what the kernel had queued (see `drain.rs`) and closes the listener, opening it
/// to new connects again first when it is `kept` by another process (a service manager's
/// socket, whose queue the next instance serves).
/// Never returns an error: errors about one connection are skipped, others are logged and
/// retried after a pause that grows while they last (out of descriptors must not spin).
pub(crate) fn run(
    listener: TcpListener,
    kept: bool,
    queue: Sender<Handoff>,
    ctx: &AcceptContext<'_>,
) {
    let shutdown = &ctx.shared.shutdown;
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(err) => {
            error!(error = %err, "cannot read the listener's address; not accepting on it");
            return;
        }
    };
    // Accept until the queue is empty, then wait for the next connection or the shutdown.
    if let Err(err) = listener.set_nonblocking(true) {
        error!(%local, error = %err, "cannot make the listener non-blocking; not accepting on it");
        return;
    }
    let room = &ctx.shared.room;
    let stats = &ctx.shared.stats;
    let mut backoff = BACKOFF_MIN;
    loop {
        if shutdown.is_shutting_down()
            || (ctx.overflow == Overflow::Block && !room.wait(stats, shutdown))
        {
            break;
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(_) if shutdown.is_shutting_down() => break,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match wait(&listener, Some(shutdown.wake_fd()), None) {
                    Ok(Woken::Connection | Woken::Timeout) => {}
                    Ok(Woken::Shutdown) => break,
                    Err(err) => {
                        let retry_in = backoff;
                        warn!(%local, error = %err, ?retry_in, "waiting to accept failed");
                        shutdown.sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
                continue;
            }
            Err(err) if is_about_one_connection(&err) => {
                stats.accept_failed();
                debug!(%local, error = %err, "a connection ended before it was accepted");
                continue;
            }
            Err(err) => {
                stats.accept_failed();
                warn!(%local, error = %err, retry_in = ?backoff, "accept failed");
                shutdown.sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        admit(stream, peer, local, &queue, ctx);
    }
    let wait_for_room = |deadline| match ctx.overflow {
        Overflow::Block => room.wait_until(stats, deadline),
        Overflow::Reject => true,
    };
    drain::accept_queued(&listener, local, shutdown, wait_for_room, |stream, peer| {
        admit(stream, peer, local, &queue, ctx)
    });
    if kept {
        if let Err(err) = reopen(&listener) {
            error!(%local, error = %err, "cannot reopen a passed socket to new connects");
        }
    }
    // Dropping the listener closes it (unless another process keeps it): whoever connects
    // now is refused.
}

/// Checks a new connection and queues it for a worker, or refuses it (closing it).
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    queue: &Sender<Handoff>,
    ctx: &AcceptContext<'_>,
) {
    // Accepted sockets inherit the listener's O_NONBLOCK there (not on Linux).
    #[cfg(not(target_os = "linux"))]
    if let Err(err) = stream.set_nonblocking(false) {
        debug!(error = %err, "cannot make an accepted socket blocking; dropping it");
        return;
    }
    let accepted_at = Instant::now();
    let full = ctx.shared.room.is_full(ctx.shared.stats.open_now());
    let ticket = ctx.shared.stats.accept();
    let id = ctx.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let proxied = ctx.shared.proxy.as_ref();
    let span = match proxied {
        None => info_span!("conn", id, %peer),
        // The client's address comes in its PROXY header, read on a worker, which records it.
        Some(_) => info_span!("conn", id, proxy = %peer, peer = tracing::field::Empty),
    };
    if full {
        return reject(ticket, RejectReason::MaxConnections, &span, ctx);
    }
    // Checked here, before the connection can take a place in the queue or a worker; with the
    // PROXY protocol the address rules wait for the header's address (on the worker).
    let per_ip_slot = match proxied {
        Some(proxy) if !proxy.trusts(peer.ip()) => {
            return reject(ticket, RejectReason::NotAProxy, &span, ctx);
        }
        Some(_) => None,
        None if !ctx.shared.access.permits(peer.ip()) => {
            return reject(ticket, RejectReason::Denied, &span, ctx);
        }
        None => match &ctx.shared.per_ip {
            Some(limit) => match limit.acquire(peer.ip()) {
                Some(slot) => Some(slot),
                None => return reject(ticket, RejectReason::PerIpLimit, &span, ctx),
            },
            None => None,
        },
    };
    let conn = Accepted {
        stream,
        info: ConnInfo { id, peer, local },
        span,
        ticket,
        per_ip_slot,
        queued: ctx.shared.stats.enter(Gauge::Queued),
        accepted_at,
    };
    hand_off(conn, queue, ctx);
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
fn hand_off(conn: Accepted, queue: &Sender<Handoff>, ctx: &AcceptContext<'_>) {
    let full = match queue.try_send(Some(conn)) {
        Ok(()) => return,
        Err(TrySendError::Full(conn)) => sent_back(conn),
        Err(TrySendError::Disconnected(conn)) => return no_workers(sent_back(conn)),
    };
    match ctx.overflow {
        Overflow::Reject => {
            let Accepted { ticket, span, .. } = full;
            reject(ticket, RejectReason::QueueFull, &span, ctx);
        }
        Overflow::Block => block_until_queued(full, queue, ctx),
    }
}

/// Counts and logs a connection refused on the accept thread; the caller drops the stream,
/// which closes it.
fn reject(ticket: Ticket, reason: RejectReason, span: &tracing::Span, ctx: &AcceptContext<'_>) {
    ctx.shared.rejections.reject(ticket, reason, span, None);
}

/// Waits for room in the queue. A shutdown does not drop the connection: it was accepted, so
/// it still gets its turn until the shutdown timeout passes.
fn block_until_queued(conn: Accepted, queue: &Sender<Handoff>, ctx: &AcceptContext<'_>) {
    let shutdown = &ctx.shared.shutdown;
    let mut select = Select::new();
    let send = select.send(queue);
    select.recv(shutdown.stopped());
    let op = select.select();
    if op.index() == send {
        if let Err(err) = op.send(queue, Some(conn)) {
            no_workers(sent_back(err.into_inner()));
        }
        return;
    }
    let _ = op.recv(shutdown.stopped());
    let deadline = shutdown.deadline().expect("the shutdown has begun");
    if let Err(err) = queue.send_deadline(Some(conn), deadline) {
        let Accepted { ticket, span, .. } = sent_back(err.into_inner());
        ticket.close(CloseReason::Shutdown, 0, 0);
        let _entered = span.enter();
        warn!("closed unserved: no worker was free before the shutdown timeout");
    }
}

/// A connection the queue did not take, given back by a failed send.
fn sent_back(handoff: Handoff) -> Accepted {
    handoff.expect("an accept loop sends connections")
}

/// The queue has no receiver: every worker is gone (only while the server stops).
fn no_workers(conn: Accepted) {
    let Accepted { ticket, span, .. } = conn;
    ticket.close(CloseReason::Error, 0, 0);
    let _entered = span.enter();
    error!("no workers are left to take connections");
}
