//! The fixed pool of workers that serve connections from the queue.
//!
//! Plain named threads, one long loop each, rather than the `threadpool` crate: a pool that
//! cannot start must say so before the server announces itself (threadpool panics on a failed
//! spawn), and a drain needs to wait for the workers with a deadline.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::queue::{Handoff, Intake, Task};

use super::serving::{self, ReadBuffer};
use super::Shared;

/// Why a pool could not start all its workers.
#[derive(Debug, thiserror::Error)]
#[error("cannot start worker {} of {wanted} (--workers); {started} started", started + 1)]
pub(crate) struct PoolError {
    pub(crate) wanted: usize,
    pub(crate) started: usize,
    #[source]
    pub(crate) source: io::Error,
}

/// The sending ends of the workers' queues.
pub(crate) struct Senders {
    /// New connections, from the accept loops.
    pub(crate) new: Sender<Handoff>,
    /// Connections to resume or close, from the parking lot (when parking is on).
    pub(crate) ready: Option<Sender<Task>>,
}

/// `workers` threads, each taking a connection from the queue, serving it, taking the next,
/// until the queue is closed and empty.
pub(crate) struct Pool {
    workers: Vec<JoinHandle<()>>,
    /// Disconnects when the last worker has finished: each worker owns a sender clone.
    finished: Receiver<()>,
}

impl Pool {
    /// Starts `workers` threads, each running before the next is started, on a new queue that
    /// holds up to `capacity` connections and, when parking is on, on a queue of connections
    /// the parking lot hands back (taken first). Returns the pool and both queues' sending
    /// ends; dropping every sender is how the workers learn that no more work comes.
    ///
    /// # Errors
    ///
    /// When the system cannot give this process that many threads; the ones started are
    /// stopped and joined first.
    pub(crate) fn start(
        workers: usize,
        stack_size: usize,
        buffer_size: usize,
        capacity: usize,
        shared: &Arc<Shared>,
    ) -> Result<(Pool, Senders), PoolError> {
        let fail = |started, source| PoolError {
            wanted: workers,
            started,
            source,
        };
        check_room_for_threads(workers).map_err(|source| fail(0, source))?;
        let (queue_in, queue) = crossbeam_channel::bounded(capacity);
        let (ready_in, ready) = match shared.parking {
            Some(_) => {
                let (sender, receiver) = crossbeam_channel::unbounded();
                (Some(sender), Some(receiver))
            }
            None => (None, None),
        };
        let (finishing, finished) = crossbeam_channel::bounded::<()>(0);
        let (running, started) = crossbeam_channel::bounded::<()>(1);
        let mut pool = Pool {
            workers: Vec::with_capacity(workers),
            finished,
        };
        for n in 1..=workers {
            let intake = Intake::new(queue.clone(), ready.clone(), shared.parking.clone());
            let shared = Arc::clone(shared);
            let finishing = finishing.clone();
            let running = running.clone();
            let spawned = thread::Builder::new()
                .name(format!("worker-{n}"))
                .stack_size(stack_size)
                .spawn(move || {
                    let _ = running.send(());
                    work(intake, buffer_size, &shared);
                    drop(finishing);
                })
                // A thread that starts only to die in its own set-up would leave us waiting.
                .and_then(|worker| match started.recv_timeout(START_TIMEOUT) {
                    Ok(()) => Ok(worker),
                    Err(_) => Err(io::Error::other("a worker thread did not start")),
                });
            match spawned {
                Ok(worker) => pool.workers.push(worker),
                Err(source) => {
                    let started = pool.workers.len();
                    drop((queue_in, ready_in));
                    pool.join();
                    return Err(fail(started, source));
                }
            }
        }
        let senders = Senders {
            new: queue_in,
            ready: ready_in,
        };
        Ok((pool, senders))
    }

    /// Waits until every worker has finished or `deadline` passes; true if they all finished.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        self.finished.recv_deadline(deadline) == Err(RecvTimeoutError::Disconnected)
    }

    /// Joins every worker thread.
    pub(crate) fn join(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// How long a new worker thread may take to start running.
const START_TIMEOUT: Duration = Duration::from_secs(10);

fn work(mut intake: Intake, buffer_size: usize, shared: &Shared) {
    // Made at the first connection, so a worker that never serves costs no buffer memory.
    let mut buf = None;
    while let Some(task) = intake.next() {
        let buf = buf.get_or_insert_with(|| ReadBuffer::new(buffer_size));
        serving::run(task, buf, shared, &|| intake.someone_waiting());
    }
}

/// Memory mappings a thread takes: its stack and guard page, and the signal stack and guard
/// page the Rust runtime gives every thread (measured with `/proc/self/maps`: 4.3 a thread).
const MAPS_PER_THREAD: usize = 5;

/// Mappings kept free for everything else the process maps (allocator arenas, buffers).
const MAPS_HEADROOM: usize = 1024;

/// Refuses a pool that would run the process out of memory mappings (`vm.max_map_count`).
/// Past that limit a new thread cannot map its signal stack, and the Rust runtime aborts the
/// whole process instead of returning an error, so it must be checked before.
fn check_room_for_threads(workers: usize) -> io::Result<()> {
    let Some((max, in_use)) = map_count() else {
        return Ok(());
    };
    let room = max.saturating_sub(in_use + MAPS_HEADROOM) / MAPS_PER_THREAD;
    if workers <= room {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "the kernel lets this process map {max} memory regions (vm.max_map_count) and each \
         worker thread takes about {MAPS_PER_THREAD}: at most {room} workers fit"
    )))
}

/// `vm.max_map_count` and the mappings this process has now, where Linux tells them.
fn map_count() -> Option<(usize, usize)> {
    let max = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    Some((max.trim().parse().ok()?, maps.lines().count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pool_the_map_limit_cannot_hold_is_refused_before_any_thread_starts() {
        let err = check_room_for_threads(10_000_000).unwrap_err();
        assert!(err.to_string().contains("vm.max_map_count"), "{err}");
        assert!(check_room_for_threads(4).is_ok());
    }

    #[test]
    fn the_error_names_the_flag_and_how_many_started() {
        let err = PoolError {
            wanted: 8,
            started: 3,
            source: io::Error::from_raw_os_error(libc::EAGAIN),
        };
        assert_eq!(
            err.to_string(),
            "cannot start worker 4 of 8 (--workers); 3 started"
        );
    }
}
