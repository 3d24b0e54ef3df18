//! The fixed pool of workers that serve connections from the queue.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use threadpool::ThreadPool;

use super::connection::{self, Accepted};
use super::read_buffer::ReadBuffer;
use super::Shared;

/// `workers` threads, each running one long job: take a connection from the queue, serve it,
/// take the next, until the queue is closed and empty.
///
/// One job per thread, not one per connection: `ThreadPool::execute` queues jobs in its own
/// unbounded channel, which would throw away the bounded queue and its back-pressure.
pub(crate) struct Pool {
    threads: ThreadPool,
    /// Disconnects when the last worker has finished: each job owns a sender clone.
    finished: Receiver<()>,
}

impl Pool {
    pub(crate) fn start(
        workers: usize,
        stack_size: usize,
        buffer_size: usize,
        queue: &Receiver<Accepted>,
        shared: &Arc<Shared>,
    ) -> Pool {
        let threads = threadpool::Builder::new()
            .num_threads(workers)
            .thread_name("worker".to_string())
            .thread_stack_size(stack_size)
            .build();
        let (finishing, finished) = crossbeam_channel::bounded::<()>(0);
        for _ in 0..workers {
            let queue = queue.clone();
            let shared = Arc::clone(shared);
            let finishing = finishing.clone();
            threads.execute(move || {
                work(&queue, buffer_size, &shared);
                drop(finishing);
            });
        }
        Pool { threads, finished }
    }

    /// Waits until every worker has finished or `deadline` passes; true if they all finished.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        self.finished.recv_deadline(deadline) == Err(RecvTimeoutError::Disconnected)
    }

    /// Joins every worker thread.
    pub(crate) fn join(self) {
        self.threads.join();
    }
}

fn work(queue: &Receiver<Accepted>, buffer_size: usize, shared: &Shared) {
    // Made at the first connection, so a worker that never serves costs no buffer memory.
    let mut buf = None;
    for conn in queue {
        shared.stats.dequeued();
        let buf = buf.get_or_insert_with(|| ReadBuffer::new(buffer_size));
        connection::serve(conn, buf, shared);
    }
}
