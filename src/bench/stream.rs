//! `stream`: each connection writes chunks back to back on one thread while a second thread
//! reads and checks the echo, so the pipe stays full in both directions.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::control::{Control, Phase};
use super::payload::Payload;
use super::tally::{ErrorKind, Tally};

/// About this many bytes are in flight per connection: enough to keep loopback busy, few enough
/// that a chunk's latency is not mostly queueing.
const WINDOW_BYTES: usize = 1 << 20;

/// Runs one `stream` connection (replaced whenever it fails) until the run stops or `quota`
/// chunks are recorded. A chunk's latency is from the start of its write to its last echoed
/// byte.
pub fn run(ctl: &Control, index: usize, quota: Option<u64>) -> Tally {
    let mut tally = Tally::new();
    let payload = Payload::new(ctl.size, index as u64);
    let mut echo = vec![0u8; ctl.size];
    let mut backoff = Duration::ZERO;
    let window = (WINDOW_BYTES / ctl.size).clamp(2, 256);
    while ctl.phase() != Phase::Stop {
        let Some(conn) = ctl.connect(None, &mut tally, &mut backoff) else {
            continue;
        };
        if ctl.phase() == Phase::Measure {
            tally.connections += 1;
        }
        let Ok(writer_conn) = conn.try_clone() else {
            tally.error(ErrorKind::Reset);
            continue;
        };
        // The channel carries each chunk's start time from writer to reader; its bound is the
        // window, so a writer ahead of the echo waits here rather than in the kernel.
        let (sent_at, written) = bounded(window);
        let quota_met = thread::scope(|scope| {
            let writer = thread::Builder::new()
                .name(format!("bench-{index}-writer"))
                .spawn_scoped(scope, || write_chunks(ctl, writer_conn, &payload, sent_at));
            if writer.is_err() {
                tally.error(ErrorKind::Reset);
                return false;
            }
            let met = read_chunks(
                ctl, index, &conn, &payload, &mut echo, written, &mut tally, quota,
            );
            // Unblocks a writer stuck on a full socket; it then sees the error and returns.
            let _ = conn.shutdown(Shutdown::Both);
            met
        });
        if quota_met {
            break;
        }
    }
    tally
}

fn write_chunks(ctl: &Control, mut conn: TcpStream, payload: &Payload, sent_at: Sender<Instant>) {
    while ctl.phase() != Phase::Stop {
        let started = Instant::now();
        if conn.write_all(payload.bytes()).is_err() || sent_at.send(started).is_err() {
            // The reader counts the failure (it sees the same connection end); shutting down
            // makes sure it does not wait for an echo that cannot come.
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Returns whether the quota was met.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn read_chunks(
    ctl: &Control,
    index: usize,
    mut conn: &TcpStream,
    payload: &Payload,
    echo: &mut [u8],
    written: Receiver<Instant>,
    tally: &mut Tally,
    quota: Option<u64>,
) -> bool {
    loop {
        if let Err(err) = conn.read_exact(echo) {
            // After a stop the writer shuts the connection down, so only a stall is news.
            let kind = ErrorKind::of(&err);
            if ctl.phase() != Phase::Stop || kind == ErrorKind::Timeout {
                tally.error(kind);
            }
            return false;
        }
        let Ok(started) = written.recv_timeout(ctl.io_timeout) else {
            tally.error(ErrorKind::Timeout);
            return false;
        };
        let latency = started.elapsed();
        if !payload.matches(echo) {
            tally.error(ErrorKind::Mismatch);
            continue;
        }
        match ctl.phase() {
            Phase::Warmup => {}
            Phase::Measure => {
                tally.message(latency, echo.len());
                ctl.progress[index]
                    .0
                    .store(tally.messages, Ordering::Relaxed);
                if quota.is_some_and(|q| tally.messages >= q) {
                    tally.finished = Some(Instant::now());
                    return true;
                }
            }
            Phase::Stop => return false,
        }
    }
}
