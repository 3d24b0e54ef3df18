//! The server: listeners, the accept loops, the bounded queue, the worker pool, and shutdown.
//!
//! ```text
//!  accepting/ (one accept loop per listener) ──► queue ──► pool: workers run serving/
//!        │ full: block | reject                            handler.open → read/data… → eof
//!  stopping/ ShutdownHandle ── stops the listeners; the queue drains until the deadline
//! ```
//!
//! Embedding it: bind, spawn, talk to it, stop it.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{Shutdown, TcpStream};
//! use std::sync::Arc;
//! use echopool::handlers::Uppercase;
//! use echopool::server::{Config, Server};
//!
//! let config = Config { listen: vec!["127.0.0.1:0".parse().unwrap()], ..Config::default() };
//! let server = Server::bind(config, Arc::new(Uppercase))?.spawn()?;
//!
//! let mut client = TcpStream::connect(server.local_addrs()[0])?;
//! client.write_all(b"hello")?;
//! client.shutdown(Shutdown::Write)?;
//! let mut reply = String::new();
//! client.read_to_string(&mut reply)?;
//! assert_eq!(reply, "HELLO");
//!
//! let stats = server.stop();
//! assert_eq!(stats.accepted, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod accepting;
mod capacity;
mod config;
mod histogram;
mod metrics;
mod parked;
mod pool;
mod queue;
mod serving;
mod stats;
mod stopping;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use echopool_handlers::Handler;
use tracing::{error, info, warn};

pub use accepting::AccessPolicy;
pub use capacity::{raise_descriptor_limit, RESERVED_DESCRIPTORS};
pub use config::{Config, Overflow};
pub use stats::{RejectReason, StatsSnapshot};
pub use stopping::ShutdownHandle;

use accepting::{listener, AcceptContext, PerIpLimit, ProxyProtocol, Rejections};
use capacity::Room;
use metrics::{Exposition, MetricsEndpoint};
use parked::Parking;
use pool::{Pool, PoolError};
use queue::Handoff;
use serving::limits::ConnLimits;
use stats::Stats;
use stopping::LiveConnections;

/// How long workers get to return after the shutdown timeout closed their connections.
const FORCED_STOP_GRACE: Duration = Duration::from_secs(2);

/// The errors that stop a server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why, as the OS said it.
        #[source]
        source: io::Error,
    },
    /// A listening socket given to [`Server::bind_with`] could not be used.
    #[error("cannot serve passed listening socket #{index}")]
    Passed {
        /// Its position among the passed sockets, from 0.
        index: usize,
        /// Why, as the OS said it.
        #[source]
        source: io::Error,
    },
    /// No address to listen on was given.
    #[error("no address to listen on")]
    NoListenAddress,
    /// The parking lot's poller could not be made (`epoll_create`).
    #[error("cannot make the poller for parked connections (--park)")]
    Poller(#[source] io::Error),
    /// The pipes that the graceful stop uses (the accept loops' wake-up, the forced end of
    /// stream sessions) could not be made.
    #[error("cannot make the pipes the graceful stop uses")]
    Stop(#[source] io::Error),
    /// The worker threads could not all be started.
    #[error("cannot start worker {} of {wanted} (--workers); {started} started", started + 1)]
    Workers {
        /// How many were asked for.
        wanted: usize,
        /// How many had started (and were stopped again).
        started: usize,
        /// Why the next one could not start.
        #[source]
        source: io::Error,
    },
}

impl From<PoolError> for ServeError {
    fn from(err: PoolError) -> Self {
        ServeError::Workers {
            wanted: err.wanted,
            started: err.started,
            source: err.source,
        }
    }
}

/// What the accept loops and the workers share.
pub(crate) struct Shared {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) limits: ConnLimits,
    /// `--read-spin`, and how many connections served at once make polling not pay.
    pub(crate) read_spin: u32,
    pub(crate) read_spin_crowd: u64,
    /// How long a worker waits on a quiet connection before parking it; `None`: parking off.
    pub(crate) park_after: Option<Duration>,
    pub(crate) parking: Option<Arc<Parking>>,
    /// `--max-connections`.
    pub(crate) room: Room,
    pub(crate) access: AccessPolicy,
    pub(crate) per_ip: Option<Arc<PerIpLimit>>,
    /// `--proxy-protocol`: who may send a PROXY header; `None` when none is expected.
    pub(crate) proxy: Option<ProxyProtocol>,
    /// The log throttles of refused connections.
    pub(crate) rejections: Rejections,
    /// `--access-log`, and the handler's name it shows.
    pub(crate) access_log: bool,
    pub(crate) handler_name: String,
    pub(crate) live: LiveConnections,
    pub(crate) stats: Stats,
    pub(crate) shutdown: ShutdownHandle,
}

/// A server with its listeners bound and its workers started, ready to [`run`](Server::run)
/// or [`spawn`](Server::spawn).
pub struct Server {
    overflow: Overflow,
    listeners: Vec<TcpListener>,
    queue: Sender<Handoff>,
    pool: Pool,
    /// The parking lot's poller thread, when parking is on.
    poller: Option<JoinHandle<()>>,
    /// `--metrics`: bound here, served from `run`.
    metrics: Option<MetricsEndpoint>,
    workers: usize,
    /// How many of `listeners`, at the front, were passed in (a service manager keeps them).
    handed_in: usize,
    shared: Arc<Shared>,
    /// Closes the parking lot if this server is dropped without running, so that its poller
    /// and workers end.
    _parking_closer: ParkingCloser,
}

/// Closes the parking lot when dropped (it holds a sender of the workers' queue, to nudge them).
struct ParkingCloser(Option<Arc<Parking>>);

impl Drop for ParkingCloser {
    fn drop(&mut self) {
        if let Some(parking) = &self.0 {
            parking.close();
        }
    }
}

impl Server {
    /// Binds every address in `config.listen` and starts the worker threads.
    ///
    /// # Errors
    ///
    /// [`ServeError::Bind`] naming the first address that could not be bound (a listener or
    /// the metrics endpoint), [`ServeError::Workers`] when the system cannot start that many
    /// threads, [`ServeError::Poller`] or [`ServeError::Stop`].
    pub fn bind(config: Config, handler: Arc<dyn Handler>) -> Result<Server, ServeError> {
        Self::bind_with(config, Vec::new(), handler)
    }

    /// Like [`bind`](Server::bind), and serves `passed` too, ahead of `config.listen`: sockets
    /// that are bound and listening already, such as those a service manager passes (socket
    /// activation). They get the options of the sockets bound here (those that connections
    /// inherit, and `defer_accept`). At the shutdown they are left open to new connects once
    /// their queues are taken, as the service manager keeps them for the next instance.
    ///
    /// # Errors
    ///
    /// As for [`bind`](Server::bind); [`ServeError::Passed`] when a passed socket refuses an
    /// option.
    pub fn bind_with(
        config: Config,
        passed: Vec<TcpListener>,
        handler: Arc<dyn Handler>,
    ) -> Result<Server, ServeError> {
        if config.listen.is_empty() && passed.is_empty() {
            return Err(ServeError::NoListenAddress);
        }
        let shutdown =
            ShutdownHandle::try_new(config.shutdown_timeout).map_err(ServeError::Stop)?;
        let limits = ConnLimits::from_config(&config);
        let mut listeners = Vec::with_capacity(passed.len() + config.listen.len());
        let handed_in = passed.len();
        for (index, listener) in passed.into_iter().enumerate() {
            let listener = listener::adopt(listener, &config, &limits)
                .and_then(|listener| {
                    shutdown.watch(listener.try_clone()?);
                    Ok(listener)
                })
                .map_err(|source| ServeError::Passed { index, source })?;
            listeners.push(listener);
        }
        for &addr in &config.listen {
            let listener = listener::bind(addr, &config, &limits)
                .and_then(|listener| {
                    shutdown.watch(listener.try_clone()?);
                    Ok(listener)
                })
                .map_err(|source| ServeError::Bind { addr, source })?;
            listeners.push(listener);
        }
        let metrics = config
            .metrics
            .map(|addr| {
                MetricsEndpoint::bind(addr).map_err(|source| ServeError::Bind { addr, source })
            })
            .transpose()?;
        let stats = Stats::default();
        let parking = match config.park {
            true => Some(Arc::new(
                Parking::new(stats.clone()).map_err(ServeError::Poller)?,
            )),
            false => None,
        };
        let shared = Arc::new(Shared {
            handler,
            limits,
            read_spin: config.read_spin,
            read_spin_crowd: serving::crowd_threshold(),
            park_after: config.park.then_some(config.park_after),
            parking,
            room: Room::new(config.connection_cap()),
            access: config.access.clone(),
            per_ip: config.max_per_ip.map(|max| PerIpLimit::new(max.get())),
            proxy: config
                .proxy_protocol
                .then(|| ProxyProtocol::new(config.proxy_from.clone())),
            rejections: Rejections::new(),
            access_log: config.access_log,
            handler_name: config.handler_name.clone(),
            live: LiveConnections::default(),
            stats,
            shutdown,
        });
        let (pool, senders) = Pool::start(
            config.workers.get(),
            config.stack_size,
            config.buffer_size,
            config.queue_capacity(),
            &shared,
        )?;
        let weak = Arc::downgrade(&shared);
        shared.stats.on_end(move |open| {
            if let Some(shared) = weak.upgrade() {
                shared.connection_ended(open);
            }
        });
        let poller = match (&shared.parking, senders.ready) {
            (Some(parking), Some(ready)) => {
                parking.hand_back_to(ready, senders.new.clone());
                let parking = Arc::clone(parking);
                let spawned = thread::Builder::new()
                    .name("poller".to_string())
                    .spawn(move || parking.run());
                Some(spawned.map_err(ServeError::Poller)?)
            }
            _ => None,
        };
        Ok(Server {
            overflow: config.overflow,
            listeners,
            queue: senders.new,
            pool,
            poller,
            metrics,
            workers: config.workers.get(),
            handed_in,
            _parking_closer: ParkingCloser(shared.parking.clone()),
            shared,
        })
    }

    /// The bound addresses, passed sockets first, then in the order of `config.listen`, with
    /// the real ports.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
            .collect()
    }

    /// The metrics endpoint's address, with the real port, when `config.metrics` asked for one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let endpoint = self.metrics.as_ref()?;
        Some(
            endpoint
                .local_addr()
                .expect("a bound listener has an address"),
        )
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shared.shutdown.clone()
    }

    /// Counters that can be read while the server runs (for a stats log on SIGUSR1).
    pub fn stats(&self) -> StatsView {
        StatsView(self.shared.stats.clone())
    }

    /// Runs the server on a thread of its own (named `server`) and returns at once: the usual
    /// way to embed it.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub fn spawn(self) -> io::Result<Running> {
        let addrs = self.local_addrs();
        let metrics_addr = self.metrics_addr();
        let shutdown = self.shutdown_handle();
        let stats = self.stats();
        let thread = thread::Builder::new()
            .name("server".to_string())
            .spawn(move || self.run())?;
        Ok(Running {
            addrs,
            metrics_addr,
            shutdown,
            stats,
            thread,
        })
    }

    /// Serves until [`ShutdownHandle::shutdown`] is called and the live connections have
    /// ended or been closed at the shutdown timeout; returns the final counters.
    ///
    /// The first listener's accept loop runs on the calling thread, the others (and the metrics
    /// endpoint) on threads of their own. Each accept loop closes its listener once it has
    /// taken what the kernel had queued at the shutdown; the metrics are served until the
    /// last connection has ended.
    pub fn run(self) -> StatsSnapshot {
        let Server {
            overflow,
            mut listeners,
            queue,
            pool,
            poller,
            metrics,
            workers,
            handed_in,
            shared,
            _parking_closer,
        } = self;
        let ctx = AcceptContext::new(&shared, overflow);
        let first = listeners.remove(0);
        let exposition = metrics
            .as_ref()
            .map(|_| Exposition::new(shared.stats.clone(), workers));
        thread::scope(|scope| {
            if let (Some(endpoint), Some(exposition)) = (&metrics, &exposition) {
                let spawned = thread::Builder::new()
                    .name("metrics".to_string())
                    .spawn_scoped(scope, || endpoint.serve(exposition));
                if let Err(err) = spawned {
                    error!(error = %err, "cannot start the metrics thread; serving without it");
                }
            }
            thread::scope(|accepting| {
                for (index, listener) in listeners.into_iter().enumerate() {
                    let queue = queue.clone();
                    let ctx = &ctx;
                    let name = format!("accept-{}", listener.local_addr().map_or(0, |a| a.port()));
                    let kept = index + 1 < handed_in;
                    let spawned = thread::Builder::new()
                        .name(name)
                        .spawn_scoped(accepting, move || {
                            accepting::run(listener, kept, queue, ctx)
                        });
                    if let Err(err) = spawned {
                        error!(error = %err, "cannot start an accept thread; stopping");
                        shared.shutdown.shutdown();
                    }
                }
                accepting::run(first, handed_in > 0, queue, &ctx);
            });
            // Every accept loop has returned and dropped its sender: the workers drain the
            // queue, and the poller stops once nothing is open.
            if let Some(parking) = &shared.parking {
                parking.close();
            }
            drain(pool, poller, &shared);
            if let Some(endpoint) = &metrics {
                endpoint.stop();
            }
        });
        let stats = shared.stats.snapshot();
        info!(%stats, "stopped");
        stats
    }
}

impl Shared {
    /// A connection ended, leaving `open` open: an accept loop waiting under
    /// `--max-connections` may go on, and a stopping server may be done.
    fn connection_ended(&self, open: u64) {
        self.room.connection_ended(open);
        if open == 0 && self.shutdown.is_shutting_down() {
            if let Some(parking) = &self.parking {
                parking.wake();
            }
        }
    }
}

/// Lets live, queued and parked connections finish until the shutdown timeout, then closes
/// the rest.
fn drain(pool: Pool, poller: Option<JoinHandle<()>>, shared: &Shared) {
    let deadline = shared.shutdown.deadline().unwrap_or_else(Instant::now);
    let snapshot = shared.stats.snapshot();
    info!(
        live = snapshot.active,
        queued = snapshot.queued,
        timeout = ?shared.shutdown.drain_timeout(),
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
    if let Some(poller) = poller {
        let _ = poller.join();
    }
}

/// Read access to a running server's counters.
#[derive(Clone)]
pub struct StatsView(Stats);

impl StatsView {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.snapshot()
    }
}

/// A server running on its own thread, from [`Server::spawn`].
pub struct Running {
    addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shutdown: ShutdownHandle,
    stats: StatsView,
    thread: JoinHandle<StatsSnapshot>,
}

impl Running {
    /// The bound addresses, with the real ports.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The metrics endpoint's address, when the server has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// A handle that stops the server from any thread (a signal handler, say).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Its counters, while it runs.
    pub fn stats(&self) -> StatsView {
        self.stats.clone()
    }

    /// Stops the server gracefully and waits for it: live connections may finish until the
    /// shutdown timeout. Returns the final counters.
    ///
    /// # Panics
    ///
    /// If the server's thread panicked, with that panic.
    pub fn stop(self) -> StatsSnapshot {
        self.shutdown.shutdown();
        self.join()
    }

    /// Waits until the server stops (after a shutdown from elsewhere) and returns the final
    /// counters.
    ///
    /// # Panics
    ///
    /// If the server's thread panicked, with that panic.
    pub fn join(self) -> StatsSnapshot {
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}
