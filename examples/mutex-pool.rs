//! Before echopool, step 3: a fixed pool of worker threads, as the Rust Book builds it in its
//! last chapter ("Turning Our Single-Threaded Server into a Multithreaded Server"). The accept
//! loop sends each connection, as a job, into a channel; WORKERS threads take jobs from it, one
//! at a time, each holding the channel's receiving end under a mutex just long enough to take
//! one job. The channel has no bound.
//!
//! ```text
//! cargo run --example mutex-pool [ADDR [WORKERS]]   # default 127.0.0.1:7007, 4 workers
//! ```
//!
//! What goes wrong with it, and what echopool does instead: `docs/from-the-textbook.md`.
//! `bench/compare.sh` measures this same file against echopool.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::exit;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

/// The most bytes one recv() takes: echopool's default `--buffer-size`.
const BUFFER_SIZE: usize = 16 * 1024;

/// Work for a worker: here, serving one connection to its end.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The Book's `ThreadPool`, without its `Drop` (which joins the workers: this server never
/// stops, so it would never run).
struct ThreadPool {
    sender: mpsc::Sender<Job>,
    _workers: Vec<thread::JoinHandle<()>>,
}

impl ThreadPool {
    /// Starts `size` workers, all waiting on one channel.
    fn new(size: usize) -> ThreadPool {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..size)
            .map(|_| {
                let receiver = Arc::clone(&receiver);
                thread::spawn(move || loop {
                    // The lock is released at the end of this statement, before the job runs,
                    // so the other workers can take jobs meanwhile.
                    let message = receiver.lock().unwrap().recv();
                    match message {
                        Ok(job) => job(), // a panic in the job ends this worker for good
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

    /// Queues `job` for the next free worker. Never waits: the queue grows instead.
    fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.sender.send(Box::new(job)).unwrap();
    }
}

fn main() {
    let (addr, workers) = arguments();
    let pool = ThreadPool::new(workers);
    // socket(), bind() and listen(), in one call.
    let listener = TcpListener::bind(addr).unwrap_or_else(|err| {
        eprintln!("cannot listen on {addr}: {err}");
        exit(1)
    });
    let bound = listener
        .local_addr()
        .expect("a bound socket has an address");
    println!("listening on {bound}");
    for stream in listener.incoming() {
        // As in the Book: a failed accept() panics, which ends the server.
        let stream = stream.unwrap();
        pool.execute(|| handle_connection(stream));
    }
}

/// Echo until the client closes its side. As in the Book, I/O errors are unwrapped: a client
/// that hangs up rudely panics the worker serving it.
fn handle_connection(mut stream: TcpStream) {
    // TCP_NODELAY: send small replies at once (docs/from-the-textbook.md, "Small writes").
    stream.set_nodelay(true).unwrap();
    let mut buffer = vec![0u8; BUFFER_SIZE];
    loop {
        let received = stream.read(&mut buffer).unwrap();
        if received == 0 {
            return; // the client is done; dropping `stream` closes it
        }
        stream.write_all(&buffer[..received]).unwrap();
    }
}

/// The command line, `[ADDR [WORKERS]]`: where to listen (default 127.0.0.1:7007) and how
/// many workers to start (default 4, as in the Book).
fn arguments() -> (SocketAddr, usize) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, workers) = match args.as_slice() {
        [] => ("127.0.0.1:7007", "4"),
        [addr] => (addr.as_str(), "4"),
        [addr, workers] => (addr.as_str(), workers.as_str()),
        _ => usage("two arguments at most"),
    };
    let addr = addr
        .parse()
        .unwrap_or_else(|_| usage(&format!("ADDR {addr:?} is not IP:PORT")));
    let workers = match workers.parse() {
        Ok(n) if n > 0 => n,
        _ => usage(&format!("WORKERS {workers:?} is not a number above 0")),
    };
    (addr, workers)
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "mutex-pool: {problem}\nusage: mutex-pool [ADDR [WORKERS]]   (default 127.0.0.1:7007 4)"
    );
    exit(2)
}
