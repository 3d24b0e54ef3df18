//! The textbook fixed pool (the Rust Book's final web server chapter): `--workers N` threads
//! share one `Mutex<Receiver<Job>>`, each job serves one connection to its end. The guard is
//! dropped before the job runs, as the Book's corrected version does.

use std::sync::{mpsc, Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct ThreadPool {
    sender: mpsc::Sender<Job>,
    _workers: Vec<thread::JoinHandle<()>>,
}

impl ThreadPool {
    fn new(size: usize) -> ThreadPool {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..size)
            .map(|_| {
                let receiver = Arc::clone(&receiver);
                thread::spawn(move || loop {
                    let message = receiver.lock().unwrap().recv();
                    match message {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                })
            })
            .collect();
        ThreadPool {
            sender,
            _workers: workers,
        }
    }

    fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.sender.send(Box::new(job)).unwrap();
    }
}

fn main() {
    let args = echopool_peers::args("mutex-pool");
    let pool = ThreadPool::new(args.workers);
    let listener = echopool_peers::bind(args.addr);
    for conn in listener.incoming().flatten() {
        pool.execute(move || echopool_peers::serve(conn));
    }
}
