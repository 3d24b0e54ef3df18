//! Parked connections: quiet ones (and ones whose client does not read) wait here, watched
//! by one readiness poller, instead of holding a worker. When a socket is ready the
//! connection goes back to the workers, ahead of new connections, and whichever is free
//! resumes it where it stopped; when its deadline passes it goes back to be closed.
//!
//! A worker parks a connection itself: it puts it in the lot, then arms a oneshot interest in
//! its socket (`epoll_ctl`), with no wake-up of the poller unless the new deadline is earlier
//! than the poller's next wake (Apache's event MPM adds sockets to its pollset the same way).
//! A oneshot interest is cleared when its event is delivered, so no two threads ever hold a
//! connection (Tomcat's rule). The poller never blocks on its hand-off: the queue back to the
//! workers is unbounded, and `--max-connections` bounds what it can hold (the gunicorn #3407
//! hang came from a poller that stopped polling when its hand-off was full).
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
use polling::{Event, Events, Poller};
use tracing::{error, warn};

use super::queue::Task;
use super::serving::{self, Closed, Interest, Served, Spot};
use super::stats::{Gauge, Stats};
use lot::Lot;

/// The parking lot and its poller.
pub(crate) struct Parking {
    poller: Arc<Poller>,
    lot: Mutex<Lot>,
    /// Back to the workers; taken (and so closed) when the poller stops.
    ready: Mutex<Option<Sender<Task>>>,
    stats: Stats,
    /// Set when nothing new can come (the accept loops have returned): the poller stops once
    /// no connection is open.
    closing: AtomicBool,
    /// Workers waiting (for a task, or on a quiet connection), which therefore cannot take
    /// ready sockets themselves.
    waiting_workers: AtomicUsize,
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

/// A worker counted as waiting until this drops.
pub(crate) struct Waiting<'a>(&'a Parking);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting_workers.fetch_sub(1, SeqCst);
    }
}

impl Parking {
    /// An empty parking lot; [`hand_back_to`](Self::hand_back_to) gives it the workers' queue.
    ///
    /// # Errors
    ///
    /// When the system cannot make a poller (`epoll_create`).
    pub(crate) fn new(stats: Stats) -> io::Result<Parking> {
        Ok(Parking {
            poller: Arc::new(Poller::new()?),
            lot: Mutex::default(),
            ready: Mutex::new(None),
            stats,
            closing: AtomicBool::new(false),
            waiting_workers: AtomicUsize::new(0),
            nap: Mutex::default(),
            nap_over: Condvar::new(),
        })
    }

    /// The queue on which the poller hands connections back to the workers.
    pub(crate) fn hand_back_to(&self, ready: Sender<Task>) {
        *self.ready.lock().unwrap() = Some(ready);
    }

    /// Parks `served` in `spot`. If its socket cannot be watched, it is closed as an error.
    pub(crate) fn park(&self, mut served: Served, spot: Spot) {
        served.place = self.stats.enter(Gauge::Parked);
        self.stats.parked();
        let id = served.info.id;
        let key = usize::try_from(id).expect("connection ids fit a usize");
        let event = match spot.interest {
            Interest::Read => Event::readable(key),
            Interest::Write => Event::writable(key),
        };
        // Armed with the lot locked: the poller, woken by the event, takes the lock next.
        let mut lot = self.lot.lock().unwrap();
        let (wake_poller, parked) = lot.insert(served, spot);
        if let Err(err) = parked.socket_mut().arm(&self.poller, event) {
            let served = lot.take(id).expect("parked just now");
            drop(lot);
            warn!(error = %err, "cannot watch a parked connection; closing it");
            serving::close(served, CloseReason::Error, Closed::InTheLot);
            return;
        }
        drop(lot);
        if wake_poller {
            self.wake();
        }
    }

    /// Tells the poller to stop once no connection is open (the accept loops have returned).
    pub(crate) fn close(&self) {
        self.closing.store(true, SeqCst);
        self.wake();
    }

    /// Wakes the poller to look at its deadlines and at whether it may stop.
    pub(crate) fn wake(&self) {
        let _ = self.poller.notify();
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
        Waiting(self)
    }

    /// Takes the connections whose sockets are ready, or whose deadline passed, without
    /// waiting: a busy worker does the poller's job between tasks. Returns one to serve now and
    /// hands the rest to the workers' queue.
    pub(crate) fn fetch(&self, events: &mut Events) -> Option<Task> {
        events.clear();
        // `Ok(0)` at once while the poller thread is waiting: it has the sockets then.
        match self.poller.wait(events, Some(Duration::ZERO)) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let mut tasks = self.take_due(events).into_iter();
        let first = tasks.next().map(|task| self.count_resumed(task));
        self.hand_back(tasks);
        first
    }

    /// The poller's loop: hands back each connection whose socket is ready or whose deadline
    /// passed, until nothing is open after [`close`](Self::close).
    pub(crate) fn run(&self) {
        let mut events = Events::new();
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
                if let Err(err) = self.poller.wait(&mut events, timeout) {
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
        for task in tasks {
            // Unbounded: never blocks the poller.
            let _ = ready.send(task);
        }
        true
    }

    /// The connections whose event came, then those whose deadline passed.
    fn take_due(&self, events: &Events) -> Vec<Task> {
        let now = Instant::now();
        let mut lot = self.lot.lock().unwrap();
        let mut tasks = Vec::with_capacity(events.len());
        for event in events.iter() {
            if let Some(served) = lot.take(event.key as u64) {
                tasks.push(Task::Resume(served));
            }
        }
        while let Some((served, reason)) = lot.take_expired(now) {
            tasks.push(Task::Expire(served, reason));
        }
        tasks
    }
}
