//! The server: listeners, the accept loops, the bounded queue, the worker pool, and shutdown.
//!
//! ```text
//!  accept loop (one per listener) ──► bounded queue ──► workers (fixed pool)
//!        │ full: block | reject                          handler.open → read/data… → eof → close
//!  ShutdownHandle ── stops the listeners, then the queue drains until the shutdown timeout
//! ```
//!
//! Embedding it:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{Shutdown, TcpStream};
//! use std::sync::Arc;
//! use echopool::handlers::Uppercase;
//! use echopool::server::{Config, Server};
//!
//! let config = Config { listen: vec!["127.0.0.1:0".parse().unwrap()], ..Config::default() };
//! let server = Server::bind(config, Arc::new(Uppercase)).unwrap();
//! let addr = server.local_addrs()[0];
//! let stop = server.shutdown_handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"hello").unwrap();
//! client.shutdown(Shutdown::Write).unwrap();
//! let mut reply = String::new();
//! client.read_to_string(&mut reply).unwrap();
//! assert_eq!(reply, "HELLO");
//!
//! stop.shutdown();
//! let stats = running.join().unwrap();
//! assert_eq!(stats.accepted, 1);
//! ```

mod accept;
mod access;
mod config;
mod connection;
mod listener;
mod live;
mod per_ip;
mod pool;
mod read_buffer;
mod read_spin;
mod shutdown;
mod stats;
mod throttle;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use echopool_handlers::Handler;
use tracing::{error, info, warn};

pub use access::AccessPolicy;
pub use config::{Config, Overflow};
pub use shutdown::ShutdownHandle;
pub use stats::{RejectReason, Stats, StatsSnapshot};

use accept::AcceptContext;
use live::LiveConnections;
use per_ip::PerIpLimit;
use pool::Pool;
use throttle::Throttle;

/// How long workers get to return after the shutdown timeout closed their connections.
const FORCED_STOP_GRACE: Duration = Duration::from_secs(2);

/// The errors that stop a server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why, as the OS said it.
        #[source]
        source: io::Error,
    },
    /// No address to listen on was given.
    #[error("no address to listen on")]
    NoListenAddress,
    /// An accept thread could not be started.
    #[error("cannot start the accept thread for {addr}: {source}")]
    Spawn {
        /// The listener's address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Per-connection limits, read by the workers; `None` and zero durations mean no limit.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) max_duration: Option<Duration>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) read_spin: u32,
    /// Above this many active connections the workers do not poll (see `read_spin.rs`).
    pub(crate) read_spin_max_active: u64,
}

impl Limits {
    /// The read timeout a new connection starts with: the idle timeout, or the maximum
    /// duration when that is shorter.
    pub(crate) fn first_read_timeout(&self) -> Option<Duration> {
        match (self.idle_timeout, self.max_duration) {
            (Some(idle), Some(max)) => Some(idle.min(max)),
            (idle, max) => idle.or(max),
        }
    }

    pub(crate) fn from_config(config: &Config) -> Limits {
        let nonzero = |limit: Option<Duration>| limit.filter(|d| !d.is_zero());
        Limits {
            idle_timeout: nonzero(config.idle_timeout),
            write_timeout: nonzero(config.write_timeout),
            max_duration: nonzero(config.max_duration),
            max_bytes: config.max_bytes,
            shutdown_timeout: config.shutdown_timeout,
            read_spin: config.read_spin,
            read_spin_max_active: 16
                * thread::available_parallelism().map_or(1, |n| n.get()) as u64,
        }
    }
}

/// What the accept loops and the workers share.
pub(crate) struct Shared {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) limits: Limits,
    pub(crate) access: AccessPolicy,
    pub(crate) per_ip: Option<Arc<PerIpLimit>>,
    pub(crate) live: LiveConnections,
    pub(crate) stats: Stats,
    pub(crate) shutdown: ShutdownHandle,
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    config: Config,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds every address in `config.listen`.
    ///
    /// # Errors
    ///
    /// [`ServeError::Bind`] naming the first address that could not be bound.
    pub fn bind(config: Config, handler: Arc<dyn Handler>) -> Result<Server, ServeError> {
        if config.listen.is_empty() {
            return Err(ServeError::NoListenAddress);
        }
        let shutdown = ShutdownHandle::new();
        let limits = Limits::from_config(&config);
        let mut listeners = Vec::with_capacity(config.listen.len());
        for &addr in &config.listen {
            let listener = listener::bind(addr, &config, &limits)
                .and_then(|listener| {
                    shutdown.watch(listener.try_clone()?);
                    Ok(listener)
                })
                .map_err(|source| ServeError::Bind { addr, source })?;
            listeners.push(listener);
        }
        let shared = Arc::new(Shared {
            handler,
            limits,
            access: config.access.clone(),
            per_ip: config.max_per_ip.map(|max| PerIpLimit::new(max.get())),
            live: LiveConnections::default(),
            stats: Stats::default(),
            shutdown,
        });
        Ok(Server {
            config,
            listeners,
            shared,
        })
    }

    /// The bound addresses, in the order of `config.listen`, with the real ports.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
            .collect()
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shared.shutdown.clone()
    }

    /// Counters that can be read while the server runs (for a stats log on SIGUSR1).
    pub fn stats(&self) -> StatsView {
        StatsView(Arc::clone(&self.shared))
    }

    /// Serves until [`ShutdownHandle::shutdown`] is called and the live connections have
    /// ended or been closed at the shutdown timeout; returns the final counters.
    ///
    /// The first listener's accept loop runs on the calling thread, the others on threads of
    /// their own.
    pub fn run(self) -> StatsSnapshot {
        let Server {
            config,
            mut listeners,
            shared,
        } = self;
        let (queue_in, queue_out) = crossbeam_channel::bounded(config.queue_capacity());
        let pool = Pool::start(
            config.workers.get(),
            config.stack_size,
            config.buffer_size,
            &queue_out,
            &shared,
        );
        drop(queue_out);
        let next_id = AtomicU64::new(0);
        let ctx = AcceptContext {
            shared: &shared,
            overflow: config.overflow,
            next_id: &next_id,
            reject_logs: RejectReason::ALL.map(|_| Throttle::new(Duration::from_secs(1))),
        };
        let first = listeners.remove(0);
        thread::scope(|scope| {
            for listener in &listeners {
                let queue = queue_in.clone();
                let ctx = &ctx;
                let name = format!("accept-{}", listener.local_addr().map_or(0, |a| a.port()));
                let spawned = thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, move || accept::run(listener, queue, ctx));
                if let Err(err) = spawned {
                    error!(error = %err, "cannot start an accept thread; stopping");
                    shared.shutdown.shutdown();
                }
            }
            accept::run(&first, queue_in, &ctx);
        });
        // Every accept loop has returned and dropped its sender: the workers drain the queue.
        drain(pool, &shared);
        let stats = shared.stats.snapshot();
        info!(%stats, "stopped");
        stats
    }
}

/// Lets live and queued connections finish until the shutdown timeout, then closes the rest.
fn drain(pool: Pool, shared: &Shared) {
    let timeout = shared.limits.shutdown_timeout;
    let deadline = shared
        .shutdown
        .deadline(timeout)
        .unwrap_or_else(Instant::now);
    let snapshot = shared.stats.snapshot();
    info!(
        live = snapshot.active,
        queued = snapshot.queued,
        ?timeout,
        "stopped accepting; waiting for live connections"
    );
    if !pool.wait_until(deadline) {
        shared.shutdown.force();
        let closed = shared.live.close_all();
        warn!(
            closed,
            "shutdown timeout passed; closed the connections still live"
        );
        if !pool.wait_until(Instant::now() + FORCED_STOP_GRACE) {
            // A handler that ignores its closed socket (a busy loop) cannot be stopped from
            // outside a thread; leave it rather than hang the exit.
            error!("some workers did not return after their connections were closed");
            return;
        }
    }
    pool.join();
}

/// Read access to a running server's counters.
#[derive(Clone)]
pub struct StatsView(Arc<Shared>);

impl StatsView {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.stats.snapshot()
    }
}
