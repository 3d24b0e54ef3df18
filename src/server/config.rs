//! What a server is told to do: addresses, pool size, queue policy and per-connection limits.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use ipnet::IpNet;

use super::AccessPolicy;

/// The queue-full policy: what the accept loop does when every worker is busy and the queue
/// between them is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Overflow {
    /// Stop accepting until a worker takes a connection from the queue; new clients wait in the
    /// kernel's listen backlog meanwhile.
    #[default]
    Block,
    /// Accept the connection and close it at once.
    Reject,
}

/// A server's configuration. Start from [`Config::default`] and change what you need:
///
/// ```
/// use std::num::NonZeroUsize;
/// use echopool::server::Config;
///
/// let config = Config {
///     listen: vec!["127.0.0.1:0".parse().unwrap()],
///     workers: NonZeroUsize::new(4).unwrap(),
///     ..Config::default()
/// };
/// assert_eq!(config.queue_capacity(), 4); // defaults to the number of workers
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Addresses to listen on; all feed one queue and one pool.
    pub listen: Vec<SocketAddr>,
    /// Worker threads: how many connections are served at once.
    pub workers: NonZeroUsize,
    /// Capacity of the queue between accept and the workers; `None` means one slot per worker.
    pub queue: Option<NonZeroUsize>,
    /// What to do with a new connection when the queue is full.
    pub overflow: Overflow,
    /// Close a connection that sends nothing for this long; `None` (or zero) waits forever.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose peer does not take our output for this long; `None` (or zero)
    /// waits forever.
    pub write_timeout: Option<Duration>,
    /// Close a connection this long after it was opened, whatever it is doing; `None` (or
    /// zero) = never.
    pub max_duration: Option<Duration>,
    /// Close a connection once its peer has sent this many bytes; `None` = no limit.
    pub max_bytes: Option<u64>,
    /// Which client addresses may connect.
    pub access: AccessPolicy,
    /// How many connections, live plus queued, one client address may hold; `None` = no cap.
    pub max_per_ip: Option<NonZeroUsize>,
    /// Linux `TCP_DEFER_ACCEPT`: the kernel holds a new connection until its first bytes arrive,
    /// for up to this long, so silent connects never reach the queue. Only for handlers whose
    /// clients speak first. `None` = off.
    pub defer_accept: Option<Duration>,
    /// The most times a worker polls its connection (yielding the core between polls) before
    /// it blocks waiting for the next message; `0` always blocks at once. See `read_spin.rs`.
    pub read_spin: u32,
    /// How long live connections may run after a shutdown begins before they are closed.
    pub shutdown_timeout: Duration,
    /// The most bytes a worker reads at a time; its buffer starts smaller and grows to this.
    pub buffer_size: usize,
    /// Stack size of each worker thread.
    pub stack_size: usize,
    /// The listen backlog: connections the kernel holds before `accept`.
    pub backlog: i32,
    /// Whether a quiet connection (or one whose client does not read) leaves its worker for
    /// the parking lot, to resume on any worker when its socket is ready. `false` is the
    /// textbook pool: a worker holds its connection to the end.
    pub park: bool,
    /// How long a worker waits on a quiet connection, when no other connection is waiting for
    /// a worker, before it parks it. While others wait, a quiet connection is parked at once.
    pub park_after: Duration,
    /// How many connections the server holds at once (served, queued and parked); at the cap
    /// the accept loop applies `overflow`. `None`: the descriptor limit, less a reserve (see
    /// [`Config::connection_cap`]).
    pub max_connections: Option<NonZeroUsize>,
    /// Where to serve the Prometheus metrics (`GET /metrics`, on a thread of its own); `None`:
    /// no metrics endpoint.
    pub metrics: Option<SocketAddr>,
    /// Whether to log one info line per connection a worker served, when it ends (target
    /// `echopool::access`): id, peer, local, handler, queue wait, time served, bytes, reason.
    pub access_log: bool,
    /// The handler's name as the access log shows it (`echo`, `logging:uppercase`); empty
    /// shows as `-`.
    pub handler_name: String,
    /// Whether every connection must begin with a PROXY protocol header (v1 or v2) from a load
    /// balancer; the client address it carries then stands for the peer everywhere (logs,
    /// `access`, `max_per_ip`, the handler's `ConnInfo`).
    pub proxy_protocol: bool,
    /// With `proxy_protocol`, the addresses that may send a header (the load balancers); any
    /// other is refused on the accept thread. Empty: any address may.
    pub proxy_from: Vec<IpNet>,
    /// `SO_REUSEPORT` on the listeners, so that several processes can listen on one port (the
    /// kernel spreads new connections among them by a hash of the addresses).
    pub reuse_port: bool,
}

/// The defaults are the server's, and the command line's: `echopool serve --help` shows these.
impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 7007))],
            workers: NonZeroUsize::new(256).unwrap(),
            queue: None,
            overflow: Overflow::Block,
            idle_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(30)),
            max_duration: None,
            max_bytes: None,
            access: AccessPolicy::default(),
            max_per_ip: None,
            defer_accept: None,
            read_spin: 64,
            shutdown_timeout: Duration::from_secs(10),
            buffer_size: 16 << 10,
            stack_size: 256 << 10,
            backlog: 1024,
            park: true,
            park_after: Duration::from_millis(10),
            max_connections: None,
            metrics: None,
            access_log: false,
            handler_name: String::new(),
            proxy_protocol: false,
            proxy_from: Vec::new(),
            reuse_port: false,
        }
    }
}

impl Config {
    /// The queue's capacity: [`Config::queue`], or the number of workers.
    pub fn queue_capacity(&self) -> usize {
        self.queue.unwrap_or(self.workers).get()
    }

    /// The most connections held at once: [`Config::max_connections`], or what the process's
    /// descriptor limit leaves for connections.
    pub fn connection_cap(&self) -> u64 {
        match self.max_connections {
            Some(max) => max.get() as u64,
            None => super::capacity::descriptors_for_connections(),
        }
    }
}
