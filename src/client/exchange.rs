//! One exchange over one connection: a writer thread sends the input while this thread streams
//! the reply out, so a payload larger than both socket buffers cannot deadlock.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// Bytes moved by one [`exchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Bytes of input written to the server.
    pub sent: u64,
    /// Bytes of reply written to the output.
    pub received: u64,
}

/// What the writer thread tells the reader while both run.
struct Shared {
    /// Bytes written to the socket so far.
    sent: AtomicU64,
    /// Nanoseconds after `epoch` of the last write, so that the stall clock starts when bytes
    /// become owed, not when the user last typed.
    last_write: AtomicU64,
    /// Set after the last input byte was written and *before* the write side is shut down, so a
    /// reader that sees the server's EOF without it knows the server closed first.
    input_ended: AtomicBool,
    epoch: Instant,
}

/// Sends everything `input` yields to `stream`, half-closes, and copies the reply to `out` as it
/// arrives (flushing each piece), until the server closes.
///
/// `stall`: fail when the server owes bytes (input has ended, or was written after the last
/// reply byte) and sends nothing for this long; `None` waits forever.
///
/// # Errors
/// A stall, a failed read or write on the connection, a failed input read, the server closing
/// before the input ended, or a failed write to `out` (kept as an [`io::Error`] in the chain, so
/// that a closed stdout can be told apart from a closed connection).
pub fn exchange(
    stream: TcpStream,
    input: Box<dyn Read + Send>,
    out: &mut dyn Write,
    stall: Option<Duration>,
) -> anyhow::Result<Totals> {
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        last_write: AtomicU64::new(0),
        input_ended: AtomicBool::new(false),
        epoch: Instant::now(),
    });
    let writer_stream = stream
        .try_clone()
        .context("cloning the connection for the writer")?;
    let writer = thread::Builder::new()
        .name("client-writer".into())
        .spawn({
            let shared = Arc::clone(&shared);
            move || send_all(input, writer_stream, &shared)
        })
        .context("starting the writer thread")?;

    let result = receive_all(&stream, out, &shared, stall);
    match result {
        Ok(received) if shared.input_ended.load(Ordering::Acquire) => {
            let sent = writer
                .join()
                .map_err(|_| anyhow!("the writer thread panicked"))??;
            Ok(Totals { sent, received })
        }
        outcome => {
            // The writer may be blocked on the socket (unblocked by this shutdown) or on stdin
            // (which nothing can unblock); it is left to end with the process rather than
            // joined, so that an error is reported at once.
            let _ = stream.shutdown(Shutdown::Both);
            let received = outcome?;
            bail!(
                "the server closed the connection before the input ended (sent {} bytes, \
                 received {received})",
                shared.sent.load(Ordering::Acquire)
            )
        }
    }
}

fn send_all(
    mut input: Box<dyn Read + Send>,
    mut stream: TcpStream,
    shared: &Shared,
) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => bail!("reading the input after {sent} bytes: {err}"),
        };
        // Stamp the write before it starts: a write blocked on a full socket already has bytes
        // owed on the wire.
        shared
            .last_write
            .store(nanos_since(shared.epoch), Ordering::Release);
        stream
            .write_all(&buf[..n])
            // As text: an EPIPE from the socket must not look like a closed stdout.
            .map_err(|err| anyhow!("sending to the server after {sent} bytes: {err}"))?;
        sent += n as u64;
        shared.sent.store(sent, Ordering::Release);
        shared
            .last_write
            .store(nanos_since(shared.epoch), Ordering::Release);
    }
    shared.input_ended.store(true, Ordering::Release);
    // The server may already have closed its side; its EOF is what the reader reports on.
    let _ = stream.shutdown(Shutdown::Write);
    Ok(sent)
}

fn receive_all(
    mut stream: &TcpStream,
    out: &mut dyn Write,
    shared: &Shared,
    stall: Option<Duration>,
) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut received = 0u64;
    let mut last_read = Duration::ZERO;
    stream
        .set_read_timeout(stall)
        .context("setting the read timeout")?;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => {
                received += n as u64;
                last_read = shared.epoch.elapsed();
                out.write_all(&buf[..n])
                    .and_then(|()| out.flush())
                    .context("writing the reply to stdout")?;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if is_timeout(&err) => {
                let Some(stall) = stall else { continue };
                let sent = shared.sent.load(Ordering::Acquire);
                let last_write = Duration::from_nanos(shared.last_write.load(Ordering::Acquire));
                let owed = shared.input_ended.load(Ordering::Acquire)
                    || sent > received
                    || last_write > last_read;
                let quiet = shared
                    .epoch
                    .elapsed()
                    .saturating_sub(last_read.max(last_write));
                if owed && quiet >= stall {
                    bail!(
                        "no reply for {} (--timeout): received {received} bytes, sent {sent}",
                        humantime::format_duration(stall)
                    );
                }
                // Sleep only for what is left of the stall window, or a whole one if nothing
                // is owed yet.
                let wait = if owed { stall - quiet } else { stall };
                stream
                    .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                    .context("setting the read timeout")?;
            }
            Err(err) => bail!("reading the reply after {received} bytes: {err}"),
        }
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
