//! Parked connections: quiet ones (and ones whose client does not read) wait here, watched
//! by one readiness poller, instead of holding a worker. When a socket is ready the
//! connection goes back to the workers, ahead of new connections, and whichever is free
//! resumes it where it stopped; when its deadline passes it goes back to be closed.
//!
//! A worker parks a connection itself: it puts it in the lot, then arms a oneshot interest in
//! its socket (`epoll_ctl`), with no wake-up of the poller unless the new deadline is the
//! earliest (Apache's event MPM adds sockets to its pollset the same way). A oneshot interest
//! is cleared when its event is delivered, so no two threads ever hold a connection (Tomcat's
//! rule). The poller never blocks on its hand-off: the queue back to the workers is
//! unbounded, and `--max-connections` bounds what it can hold (the gunicorn #3407 hang came
//! from a poller that stopped polling when its hand-off was full).

mod lot;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
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
        let (earliest, parked) = lot.insert(served, spot);
        if let Err(err) = parked.socket_mut().arm(&self.poller, event) {
            let served = lot.take(id).expect("parked just now");
            drop(lot);
            warn!(error = %err, "cannot watch a parked connection; closing it");
            serving::close(served, CloseReason::Error, Closed::InTheLot);
            return;
        }
        drop(lot);
        if earliest {
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
    }

    /// The poller's loop: hands back each connection whose socket is ready or whose deadline
    /// passed, until nothing is open after [`close`](Self::close).
    pub(crate) fn run(&self) {
        let mut events = Events::new();
        loop {
            let timeout = self.lot.lock().unwrap().next_deadline().map(|deadline| {
                // Round up: waking a little late is fine, waking early is a wasted pass.
                deadline.saturating_duration_since(Instant::now()) + Duration::from_micros(500)
            });
            events.clear();
            if let Err(err) = self.poller.wait(&mut events, timeout) {
                if err.kind() != io::ErrorKind::Interrupted {
                    error!(error = %err, "the poller failed; retrying in 10 ms");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            let tasks = self.take_due(&events);
            let hand_back = self.ready.lock().unwrap();
            let Some(ready) = hand_back.as_ref() else {
                return;
            };
            for mut task in tasks {
                if let Task::Resume(served) | Task::Expire(served, _) = &mut task {
                    served.place = self.stats.enter(Gauge::Queued);
                }
                if matches!(task, Task::Resume(_)) {
                    self.stats.resumed();
                }
                // Unbounded: never blocks the poller.
                let _ = ready.send(task);
            }
            drop(hand_back);
            if self.closing.load(SeqCst) && self.stats.open_now() == 0 {
                // Dropping the sender ends the workers once they have drained the queues.
                self.ready.lock().unwrap().take();
                return;
            }
        }
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
