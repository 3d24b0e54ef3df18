//! `--metrics ADDR`: the server's counters in the Prometheus text format at `GET /metrics`.
//!
//! The endpoint has a thread of its own, apart from the accept loops and the workers, and a
//! small cap of its own: up to [`MAX_SCRAPES`] scrapes at once, each on a short-lived thread
//! with a deadline, and any more answered `503` at once. A scraper that stalls holds one of
//! those for [`SCRAPE_TIMEOUT`] at most, and never a worker.

mod exposition;
mod http;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tracing::{debug, warn};

pub(crate) use exposition::Exposition;

/// Scrapes served at once.
const MAX_SCRAPES: usize = 4;
/// How long a scraper may take to send its request, and to read the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after an accept error that is not about one connection (out of descriptors).
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The metrics endpoint's listening socket.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    listener: TcpListener,
    stopped: AtomicBool,
}

impl MetricsEndpoint {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// As `bind` and `listen` fail.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(16)?;
        Ok(MetricsEndpoint {
            listener: socket.into(),
            stopped: AtomicBool::new(false),
        })
    }

    /// The bound address, with the real port.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes of `exposition` until [`stop`](Self::stop); joins its scrape threads
    /// before it returns.
    pub(crate) fn serve(&self, exposition: &Exposition) {
        let scraping = AtomicUsize::new(0);
        thread::scope(|scope| loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(_) if self.stopped.load(SeqCst) => return,
                Err(err) if err.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    warn!(error = %err, "metrics: accept failed");
                    thread::sleep(RETRY_AFTER);
                    continue;
                }
            };
            if self.stopped.load(SeqCst) {
                return;
            }
            if scraping.load(SeqCst) >= MAX_SCRAPES {
                http::busy(&stream);
                continue;
            }
            scraping.fetch_add(1, SeqCst);
            let scraping = &scraping;
            let spawned = thread::Builder::new()
                .name("metrics-scrape".to_string())
                .spawn_scoped(scope, move || {
                    http::answer(stream, SCRAPE_TIMEOUT, exposition);
                    scraping.fetch_sub(1, SeqCst);
                });
            if let Err(err) = spawned {
                scraping.fetch_sub(1, SeqCst);
                debug!(error = %err, "metrics: cannot start a scrape thread");
            }
        });
    }

    /// Stops [`serve`](Self::stop) from any thread: `shutdown(2)` wakes its blocked `accept`.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, SeqCst);
        let _ = SockRef::from(&self.listener).shutdown(Shutdown::Both);
    }
}
