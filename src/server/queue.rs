//! The hand-off between the stages: what an accept loop puts in the bounded queue of new
//! connections, what the parking lot hands back, and how a worker takes the next task.

use std::net::TcpStream;

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, TryRecvError};
use echopool_handlers::{CloseReason, ConnInfo};
use mio::Events;
use tracing::Span;

use super::accepting::PerIpSlot;
use super::parked::Parking;
use super::serving::Served;
use super::stats::{InGauge, Ticket};

/// A connection accepted and waiting for a worker, with everything that must end with it.
pub(crate) struct Accepted {
    pub(crate) stream: TcpStream,
    pub(crate) info: ConnInfo,
    /// The `conn` span, made on the accept thread so that every line about this connection,
    /// from any thread, carries its id and peer.
    pub(crate) span: Span,
    /// Its entry in the books, spent when it closes or is refused.
    pub(crate) ticket: Ticket,
    /// Its place in its address's `--max-per-ip` count, freed when it closes.
    pub(crate) per_ip_slot: Option<PerIpSlot>,
    /// Its place in the `queued` count, left when a worker takes it (or it is dropped).
    pub(crate) queued: InGauge,
    /// When it was accepted: its wait for a worker counts from here.
    pub(crate) accepted_at: Instant,
}

/// What the bounded queue to the workers carries: `Some` new connection from an accept loop,
/// or `None`, a nudge from the parking lot: a connection was handed back to the resumed queue,
/// which a worker that waits on this queue would not see otherwise.
pub(crate) type Handoff = Option<Accepted>;

/// Work for a worker.
pub(crate) enum Task {
    /// A new connection from an accept loop.
    New(Accepted),
    /// A parked connection whose socket is ready: serve it on from where it stopped.
    Resume(Box<Served>),
    /// A parked connection whose deadline passed: close it for this reason.
    Expire(Box<Served>, CloseReason),
}

/// One worker's queues: connections handed back by the parking lot (taken first: finish what
/// was started before taking more), then sockets ready in the lot, then new connections.
pub(crate) struct Intake {
    new: Receiver<Handoff>,
    /// `None` when parking is off (or once the lot is closed).
    ready: Option<Receiver<Task>>,
    parking: Option<Arc<Parking>>,
    /// Made at the first look into the lot.
    events: Option<Events>,
    new_open: bool,
}

/// How many ready sockets a worker takes from the lot at a time.
const EVENTS_PER_FETCH: usize = 64;

impl Intake {
    pub(crate) fn new(
        new: Receiver<Handoff>,
        ready: Option<Receiver<Task>>,
        parking: Option<Arc<Parking>>,
    ) -> Self {
        Intake {
            new,
            ready,
            parking,
            events: None,
            new_open: true,
        }
    }

    /// Whether a connection is waiting for a worker and no worker is idle to take it: then a
    /// quiet connection should leave its worker at once.
    pub(crate) fn someone_waiting(&self) -> bool {
        let queued =
            !self.new.is_empty() || self.ready.as_ref().is_some_and(|ready| !ready.is_empty());
        queued
            && !self
                .parking
                .as_ref()
                .is_some_and(|parking| parking.has_idle_worker())
    }

    /// The next task, waiting for one; `None` once both queues are closed and empty.
    pub(crate) fn next(&mut self) -> Option<Task> {
        let Some(ready) = &self.ready else {
            // Parking is off (or over): only new connections come.
            return loop {
                match self.new.recv() {
                    Ok(Some(conn)) => break Some(Task::New(conn)),
                    Ok(None) => continue,
                    Err(_) => break None,
                }
            };
        };
        loop {
            match ready.try_recv() {
                Ok(task) => return Some(task),
                Err(TryRecvError::Disconnected) => {
                    self.ready = None;
                    return self.next();
                }
                Err(TryRecvError::Empty) => {}
            }
            if let Some(parking) = &self.parking {
                let events = self
                    .events
                    .get_or_insert_with(|| Events::with_capacity(EVENTS_PER_FETCH));
                if let Some(task) = parking.fetch(events) {
                    return Some(task);
                }
            }
            if self.new_open {
                match self.new.try_recv() {
                    Ok(Some(conn)) => return Some(Task::New(conn)),
                    Ok(None) => continue,
                    Err(TryRecvError::Disconnected) => self.new_open = false,
                    Err(TryRecvError::Empty) => {}
                }
            }
            let parking = self.parking.clone();
            let _idle = parking.as_ref().map(|parking| parking.worker_idles());
            // Handed back before this worker counted as idle, the lot nudged no one: look again.
            if let Ok(task) = ready.try_recv() {
                return Some(task);
            }
            if !self.new_open {
                return ready.recv().ok();
            }
            // One queue to wait on (a wait on two costs several futex calls a task): the lot
            // nudges through it when it hands a connection back.
            match self.new.recv() {
                Ok(Some(conn)) => return Some(Task::New(conn)),
                Ok(None) => continue,
                Err(_) => self.new_open = false,
            }
        }
    }
}
