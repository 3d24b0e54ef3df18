//! After the shutdown began: take what the kernel's accept queue still holds, then close.
//!
//! The shutdown closed the listener to new connects without emptying its queue (see
//! `stopping/syn_filter.rs`). The connections in it completed their handshake before the
//! signal; their clients saw the connect succeed and may have sent a request already (through
//! a load balancer, which counts it as delivered and will not retry it). So the accept loop
//! takes every one of them, and those whose handshake was still in flight a moment later, and
//! hands them to the workers like any other; only then does the listener close (refusing
//! whoever retries). A rolling restart behind a load balancer loses nothing this way.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::ready::{wait, Woken};
use crate::server::ShutdownHandle;

/// How long the queue must stay empty before the listener closes: time for the last
/// acknowledgements of handshakes in flight to arrive (a round trip to a distant client).
/// Connects refused meanwhile get no answer and retry a second later, to a closed port.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

/// Accepts every connection still queued on `listener`, and any that completes its handshake
/// until the queue has stayed empty for [`SETTLE`], handing each to `admit`; stops at the
/// drain deadline. `wait_for_room(deadline)` holds each accept back while the server is at
/// `--max-connections` (`false`: the deadline came first). Returns how many were taken.
pub(crate) fn accept_queued(
    listener: &TcpListener,
    local: SocketAddr,
    shutdown: &ShutdownHandle,
    wait_for_room: impl Fn(Instant) -> bool,
    mut admit: impl FnMut(TcpStream, SocketAddr),
) -> usize {
    let deadline = shutdown
        .deadline()
        .expect("drained only once the shutdown has begun");
    let mut taken = 0;
    while Instant::now() < deadline && wait_for_room(deadline) {
        match listener.accept() {
            Ok((stream, peer)) => {
                taken += 1;
                admit(stream, peer);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let settle = SETTLE.min(deadline.saturating_duration_since(Instant::now()));
                match wait(listener, None, Some(settle)) {
                    Ok(Woken::Connection) => {}
                    Ok(_) => break,
                    Err(err) => {
                        warn!(error = %err, "cannot wait for queued connections");
                        break;
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::ConnectionAborted => {}
            // Out of descriptors, or a listener that could only be shut down (no socket
            // filter): what is left in the queue is reset when the listener closes.
            Err(err) => {
                debug!(error = %err, "stopped taking queued connections");
                break;
            }
        }
    }
    if taken > 0 {
        info!(
            taken,
            %local,
            "took the connections the kernel had queued at the shutdown"
        );
    }
    taken
}
