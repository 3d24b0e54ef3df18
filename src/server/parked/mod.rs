//! Parked connections: quiet ones (and ones whose client does not read) wait here, watched
//! by one readiness poller, instead of holding a worker. When a socket is ready the
//! connection goes back to the workers, ahead of new connections, and whichever is free
//! resumes it where it stopped; when its deadline passes it goes back to be closed.
//!
//! A worker parks a connection itself: it puts it in the lot (its socket is watched from its
//! first park on, edge-triggered, so a later park costs no system call), with no wake-up of
//! the poller unless the new deadline is earlier than the poller's next wake (Apache's event
//! MPM adds sockets to its pollset from the worker the same way). Whoever takes an event takes
//! the connection out of the lot under its lock, so no two threads ever hold a connection
//! (Tomcat's rule; see `lot.rs` for an event that comes while the connection is with a
//! worker). The poller never blocks on its hand-off: the queue back to the workers is
//! unbounded, and `--max-connections` bounds what it can hold (the gunicorn #3407 hang came
//! from a poller that stopped polling when its hand-off was full).
//!
//! While every worker is busy, the poller thread does not wait for sockets (each event would
//! wake it, a context switch per message on a crowded server): it keeps only the deadlines,
//! and a worker that finishes a task takes the ready sockets itself, a batch per system call,
//! as an event loop does. The poller waits for sockets again as soon as one worker waits.

mod lot;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use echopool_handlers::CloseReason;
use mio::{Events, Poll, Registry, Token, Waker};
use tracing::{error, warn};

use super::queue::{Handoff, Task};
use super::serving::{self, Closed, Served, Spot};
use super::stats::{Gauge, Stats};
use super::Shared;
use lot::{Lot, Ready};

/// The key of the poller's own wake-up; connection ids start at 1.
const WAKE: Token = Token(0);

/// The parking lot and its poller.
pub(crate) struct Parking {
    /// Waited on by the poller thread, or (while it is not waiting) by a busy worker.
    poll: Mutex<Poll>,
    /// Where sockets are added to the poller, from any thread.
    registry: Arc<Registry>,
    waker: Waker,
    lot: Mutex<Lot>,
    /// Back to the workers; taken (and so closed) when the poller stops.
    ready: Mutex<Option<Sender<Task>>>,
    /// The new connections' queue, to nudge a worker that waits there; dropped when the accept
    /// loops have returned (then workers wait on `ready` itself).
    nudge: Mutex<Option<Sender<Handoff>>>,
    stats: Stats,
    /// Set when nothing new can come (the accept loops have returned): the poller stops once
    /// no connection is open.
    closing: AtomicBool,
    /// Workers waiting (for a task, or on a quiet connection), which therefore cannot take
    /// ready sockets themselves.
    waiting_workers: AtomicUsize,
    /// Workers with nothing to do, waiting for a task: a queued connection will find one.
    idle_workers: AtomicUsize,
    /// Where the poller sleeps while every worker is busy.
    nap: Mutex<Nap>,
    nap_over: Condvar,
}

/// The poller's sleep while every worker is busy.
#[derive(Default)]
struct Nap {
    /// Set to end the sleep early: a worker waits, a deadline came forward, the server stops.
    woken: bool,
}

/// A worker counted as waiting (and, waiting for a task, as idle) until this drops.
pub(crate) struct Waiting<'a> {
    parking: &'a Parking,
    idle: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.idle {
            self.parking.idle_workers.fetch_sub(1, SeqCst);
        }
        self.parking.waiting_workers.fetch_sub(1, SeqCst);
    }
}

impl Parking {
    /// An empty parking lot; [`hand_back_to`](Self::hand_back_to) gives it the workers' queue.
    ///
    /// # Errors
    ///
    /// When the system cannot make a poller (`epoll_create`).
    pub(crate) fn new(stats: Stats) -> io::Result<Parking> {
        let poll = Poll::new()?;
        let registry = Arc::new(poll.registry().try_clone()?);
        let waker = Waker::new(&registry, WAKE)?;
        Ok(Parking {
            poll: Mutex::new(poll),
            registry,
            waker,
            lot: Mutex::default(),
            ready: Mutex::new(None),
            nudge: Mutex::new(None),
            stats,
            closing: AtomicBool::new(false),
            waiting_workers: AtomicUsize::new(0),
            idle_workers: AtomicUsize::new(0),
            nap: Mutex::default(),
            nap_over: Condvar::new(),
        })
    }

    /// The queue on which the poller hands connections back to the workers, and the new
    /// connections' queue on which it nudges a waiting worker.
    pub(crate) fn hand_back_to(&self, ready: Sender<Task>, nudge: Sender<Handoff>) {
        *self.ready.lock().unwrap() = Some(ready);
        *self.nudge.lock().unwrap() = Some(nudge);
    }

    /// Parks `served` in `spot`, or gives it back when its socket became ready while it was
    /// with its worker (serve it on). If its socket cannot be watched, it is closed as an error.
    pub(crate) fn park(
        &self,
        mut served: Box<Served>,
        spot: Spot,
        shared: &Shared,
    ) -> Option<Box<Served>> {
        let id = served.info.id;
        let key = usize::try_from(id).expect("connection ids fit a usize");
        let mut lot = self.lot.lock().unwrap();
        if lot.ready_already(&mut served, &spot) {
            return Some(served);
        }
        served.place = self.stats.enter(Gauge::Parked);
        self.stats.parked();
        // Watched with the lot locked: the poller, woken by the first event, waits for the lock.
        let (wake_poller, parked) = lot.insert(served, spot);
        if let Err(err) = parked.socket_mut().watch(&self.registry, key) {
            let everything = Ready {
                read: true,
                write: true,
                closed: false,
            };
            let served = lot.take(id, everything).expect("parked just now");
            drop(lot);
            warn!(error = %err, "cannot watch a parked connection; closing it");
            serving::close(served, CloseReason::Error, Closed::InTheLot, shared);
            return None;
        }
        drop(lot);
        if wake_poller {
            self.wake();
        }
        None
    }

    /// A watched connection is closed: the lot forgets it.
    pub(crate) fn forget(&self, id: u64) {
        self.lot.lock().unwrap().forget(id);
    }

    /// Tells the poller to stop once no connection is open (the accept loops have returned).
    pub(crate) fn close(&self) {
        self.closing.store(true, SeqCst);
        self.nudge.lock().unwrap().take();
        self.wake();
    }

    /// Wakes the poller to look at its deadlines and at whether it may stop.
    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
        self.end_nap();
    }

    fn end_nap(&self) {
        self.nap.lock().unwrap().woken = true;
        self.nap_over.notify_one();
    }

    /// Counts the calling worker as waiting until the guard drops: the poller must then watch
    /// the sockets itself.
    pub(crate) fn worker_waits(&self) -> Waiting<'_> {
        if self.waiting_workers.fetch_add(1, SeqCst) == 0 {
            self.end_nap();
        }
        Waiting {
            parking: self,
            idle: false,
        }
    }

    /// Counts the calling worker as idle (waiting for a task) until the guard drops.
    pub(crate) fn worker_idles(&self) -> Waiting<'_> {
        let mut waiting = self.worker_waits();
        self.idle_workers.fetch_add(1, SeqCst);
        waiting.idle = true;
        waiting
    }

    /// Whether some worker is idle, so that a queued connection will not wait for one.
    pub(crate) fn has_idle_worker(&self) -> bool {
        self.idle_workers.load(SeqCst) > 0
    }

    /// Takes the connections whose sockets are ready, or whose deadline passed, without
    /// waiting: a busy worker does the poller's job between tasks. Returns one to serve now and
    /// hands the rest to the workers' queue.
    pub(crate) fn fetch(&self, events: &mut Events) -> Option<Task> {
        // While the poller thread waits, it has the sockets.
        let mut poll = self.poll.try_lock().ok()?;
        poll.poll(events, Some(Duration::ZERO)).ok()?;
        drop(poll);
        if events.is_empty() {
            return None;
        }
        let mut tasks = self.take_due(events).into_iter();
        let first = tasks.next().map(|task| self.count_resumed(task));
        self.hand_back(tasks);
        first
    }

    /// The poller's loop: hands back each connection whose socket is ready or whose deadline
    /// passed, until nothing is open after [`close`](Self::close).
    pub(crate) fn run(&self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let wake_at = self.lot.lock().unwrap().plan_wake();
            events.clear();
            if self.waiting_workers.load(SeqCst) == 0 && !self.closing.load(SeqCst) {
                self.sleep_until(wake_at);
            } else {
                // Rounded up: waking a little late is fine, waking early is a wasted pass.
                let timeout = wake_at.map(|at| {
                    at.saturating_duration_since(Instant::now()) + Duration::from_micros(500)
                });
                let polled = self.poll.lock().unwrap().poll(&mut events, timeout);
                if let Err(err) = polled {
                    if err.kind() != io::ErrorKind::Interrupted {
                        error!(error = %err, "the poller failed; retrying in 10 ms");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    continue;
                }
            }
            let tasks = self.take_due(&events);
            if !self.hand_back(tasks.into_iter().map(|task| self.count_resumed(task))) {
                return;
            }
            if self.closing.load(SeqCst) && self.stats.open_now() == 0 {
                // Dropping the sender ends the workers once they have drained the queues.
                self.ready.lock().unwrap().take();
                return;
            }
        }
    }

    /// Sleeps while every worker is busy, until one waits, the deadline, or a wake.
    fn sleep_until(&self, wake_at: Option<Instant>) {
        let mut nap = self.nap.lock().unwrap();
        while !nap.woken && self.waiting_workers.load(SeqCst) == 0 {
            nap = match wake_at {
                None => self.nap_over.wait(nap).unwrap(),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.nap_over.wait_timeout(nap, left).unwrap().0
                }
            };
        }
        nap.woken = false;
    }

    /// Counts a connection going back to the workers (in the `queued` count until one takes
    /// it).
    fn count_resumed(&self, mut task: Task) -> Task {
        if let Task::Resume(served) | Task::Expire(served, _) = &mut task {
            served.place = self.stats.enter(Gauge::Queued);
        }
        if matches!(task, Task::Resume(_)) {
            self.stats.resumed();
        }
        task
    }

    /// Hands tasks to the workers; false once the queue is closed (the server has stopped).
    fn hand_back(&self, tasks: impl Iterator<Item = Task>) -> bool {
        let hand_back = self.ready.lock().unwrap();
        let Some(ready) = hand_back.as_ref() else {
            return false;
        };
        let nudge = self.nudge.lock().unwrap();
        for task in tasks {
            // Unbounded: never blocks the poller.
            let _ = ready.send(task);
            if self.has_idle_worker() {
                // A full queue means busy workers, who look at `ready` first anyway.
                if let Some(nudge) = nudge.as_ref() {
                    let _ = nudge.try_send(None);
                }
            }
        }
        true
    }

    /// The connections whose event came, then those whose deadline passed.
    fn take_due(&self, events: &Events) -> Vec<Task> {
        let now = Instant::now();
        let mut lot = self.lot.lock().unwrap();
        let mut tasks = Vec::new();
        for event in events.iter() {
            if event.token() == WAKE {
                continue;
            }
            let failed = event.is_error();
            let ready = Ready {
                read: event.is_readable() || event.is_read_closed() || failed,
                write: event.is_writable() || event.is_write_closed() || failed,
                closed: event.is_read_closed() || failed,
            };
            if let Some(served) = lot.take(event.token().0 as u64, ready) {
                tasks.push(Task::Resume(served));
            }
        }
        while let Some((served, reason)) = lot.take_expired(now) {
            tasks.push(Task::Expire(served, reason));
        }
        tasks
    }
}
