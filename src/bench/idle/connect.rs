//! The connect phase of `idle`: every connection opened without blocking, at most `concurrency`
//! connects in flight at once, so a server that accepts keeps up and its listen backlog is not
//! overrun by a burst of thousands of SYNs. A connect that fails or passes `--connect-timeout`
//! is counted and its slot stays empty; nothing is retried.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};
use socket2::{Domain, Protocol, Socket, Type};

use super::super::control::loopback_source;
use super::super::progress::Progress;
use super::super::tally::{ErrorKind, Tally};

/// How often the progress bar is redrawn while connecting.
const TICK: Duration = Duration::from_millis(50);

/// What to open.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where to connect.
    pub target: SocketAddr,
    /// How many connections.
    pub connections: usize,
    /// Connects in flight at once.
    pub concurrency: usize,
    /// Whether to bind each connection to one of 127.0.0.2–254 in turn (a loopback target).
    pub spread_sources: bool,
    /// Limit on each connect.
    pub timeout: Duration,
}

/// Opens the connections of `plan`. Slot `i` of the result is connection `i`, non-blocking,
/// with TCP_NODELAY, registered with `poller` under key `i` for readability (level-triggered),
/// or `None` when its connect failed (counted in `tally` as a `connect` error).
///
/// # Errors
/// Only a failure of the poller itself; a failed connect is not an error of the run.
pub fn open_all(
    poller: &Poller,
    plan: &Plan,
    tally: &mut Tally,
    progress: &Progress,
) -> io::Result<Vec<Option<TcpStream>>> {
    let mut streams: Vec<Option<TcpStream>> = (0..plan.connections).map(|_| None).collect();
    let mut pending: Vec<(usize, Socket, Instant)> = Vec::with_capacity(plan.concurrency);
    let mut events = Events::new();
    let (started, mut next, mut done) = (Instant::now(), 0, 0);
    while next < plan.connections || !pending.is_empty() {
        while pending.len() < plan.concurrency && next < plan.connections {
            let source = plan
                .spread_sources
                .then(|| loopback_source(plan.target, next as u64))
                .flatten();
            match start(poller, plan.target, source, next) {
                Ok(socket) => pending.push((next, socket, Instant::now() + plan.timeout)),
                Err(_) => {
                    tally.error(ErrorKind::Connect);
                    done += 1;
                }
            }
            next += 1;
        }
        let now = Instant::now();
        let soonest = pending.iter().map(|p| p.2).min().unwrap_or(now);
        events.clear();
        poller.wait(
            &mut events,
            Some(soonest.saturating_duration_since(now).min(TICK)),
        )?;
        for event in events.iter() {
            let Some(at) = pending.iter().position(|p| p.0 == event.key) else {
                continue;
            };
            let settled = match finish(&pending[at].1) {
                Ok(true) => {
                    let (slot, socket, _) = pending.swap_remove(at);
                    let stream = TcpStream::from(socket);
                    poller.modify_with_mode(&stream, Event::readable(slot), PollMode::Level)?;
                    tally.connections += 1;
                    streams[slot] = Some(stream);
                    true
                }
                Ok(false) => false, // woken early: still connecting
                Err(_) => {
                    let (_, socket, _) = pending.swap_remove(at);
                    abandon(poller, socket, tally);
                    true
                }
            };
            done += usize::from(settled);
        }
        let now = Instant::now();
        while let Some(at) = pending.iter().position(|p| p.2 <= now) {
            let (_, socket, _) = pending.swap_remove(at);
            abandon(poller, socket, tally);
            done += 1;
        }
        progress.update("connect", done as u64, 0, started.elapsed());
    }
    Ok(streams)
}

/// Starts a non-blocking connect and registers it for writability (the connect's outcome).
fn start(
    poller: &Poller,
    target: SocketAddr,
    source: Option<SocketAddr>,
    slot: usize,
) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    if let Some(source) = source {
        socket.bind(&source.into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(err) => return Err(err),
    }
    // SAFETY: `polling` asks that a source be deleted before it is closed; every socket
    // registered here leaves through `abandon`, or as a stream through the run's `close`.
    unsafe { poller.add_with_mode(&socket, Event::writable(slot), PollMode::Level)? };
    Ok(socket)
}

/// Whether the connect has completed: `Ok(false)` while it is still in progress.
fn finish(socket: &Socket) -> io::Result<bool> {
    if let Some(err) = socket.take_error()? {
        return Err(err);
    }
    match socket.peer_addr() {
        Ok(_) => {
            socket.set_nodelay(true)?;
            Ok(true)
        }
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(err) => Err(err),
    }
}

/// Counts a failed connect and closes its socket.
fn abandon(poller: &Poller, socket: Socket, tally: &mut Tally) {
    tally.error(ErrorKind::Connect);
    let _ = poller.delete(&socket);
}
