//! The handler plugin API of echopool, and its stock handlers.
//!
//! # Design
//!
//! A server accepts a connection, then asks its [`Handler`] to [`open`](Handler::open) it. The
//! handler is one shared value (`Send + Sync`, used by every worker at once); what it returns is
//! the connection's own state, a [`Session`] that lives exactly as long as the connection.
//!
//! The server owns the socket and the read loop. It reads a chunk, gives it to
//! [`Session::data`] together with an output to write to, and repeats until the peer half-closes
//! (recv returns 0); then it calls [`Session::eof`] so the session can flush what it still holds,
//! closes the connection and reports what happened to [`Session::closed`]. A session therefore
//! never blocks on its own socket, never sees a `TcpStream`, and can be tested with a `Vec<u8>`.
//! Because all per-connection state lives in the session value and not on a worker's stack, a
//! server may park an idle connection and resume it later on another worker.
//!
//! An implementor writes two things: [`Handler::open`] and [`Session::data`]. Everything else has
//! a default.
//!
//! A handler that must own the socket for the whole connection (a protocol that blocks on its own
//! reads, or one that passes the socket to a child process) returns [`Opened::Stream`] instead and
//! gets a [`StreamConnection`]; see [`StreamSession`] for what the server's limits mean then.
//!
//! # Writing a handler
//!
//! A handler that answers every line with the line reversed, keeping a partial line across reads:
//!
//! ```
//! use std::io::{self, Write};
//! use echopool_handlers::{ConnInfo, Handler, Opened, Session};
//!
//! /// Reverses each line; a line may arrive split over many reads.
//! struct ReverseLines;
//!
//! #[derive(Default)]
//! struct ReverseSession {
//!     partial: Vec<u8>,
//! }
//!
//! impl Handler for ReverseLines {
//!     fn open(&self, _conn: &ConnInfo) -> Opened {
//!         Opened::session(ReverseSession::default())
//!     }
//! }
//!
//! impl Session for ReverseSession {
//!     fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
//!         for &byte in input {
//!             if byte == b'\n' {
//!                 self.partial.reverse();
//!                 self.partial.push(b'\n');
//!                 out.write_all(&self.partial)?;
//!                 self.partial.clear();
//!             } else {
//!                 self.partial.push(byte);
//!             }
//!         }
//!         Ok(())
//!     }
//!
//!     fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
//!         // The peer is done sending: answer the last, unterminated line too.
//!         self.partial.reverse();
//!         out.write_all(&self.partial)
//!     }
//! }
//!
//! // Drive it as the server would, with any split of the input.
//! let mut session = ReverseSession::default();
//! let mut out = Vec::new();
//! session.data(b"olleh\ndl", &mut out).unwrap();
//! session.data(b"row", &mut out).unwrap();
//! session.eof(&mut out).unwrap();
//! assert_eq!(out, b"hello\nworld");
//! ```
//!
//! To make it selectable by name on the command line, add it to a [`Registry`]; to run it, pass
//! it to `echopool::server::Server::bind` in the `echopool` crate.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod echo;
mod logging;
mod registry;
mod uppercase;

pub use echo::Echo;
pub use logging::Logging;
pub use registry::{Registry, SpecError, UnknownHandler};
pub use uppercase::Uppercase;

/// A connection handler: one shared value that opens a session per connection.
///
/// Workers call [`open`](Handler::open) concurrently, so a handler is `Send + Sync`; state that
/// belongs to one connection goes in the session it returns.
pub trait Handler: Send + Sync {
    /// Starts serving a newly accepted connection.
    ///
    /// Called on a worker thread, inside the connection's tracing span.
    fn open(&self, conn: &ConnInfo) -> Opened;
}

/// The state of one connection, driven by the server's read loop.
///
/// The server calls [`data`](Session::data) for each chunk it reads, [`eof`](Session::eof)
/// once when the peer half-closes, and [`closed`](Session::closed) exactly once at the end,
/// however the connection ended.
pub trait Session: Send {
    /// Handles one chunk of input, writing any reply to `out`.
    ///
    /// Chunk boundaries are wherever the network put them: a session must give the same output
    /// for any split of the same input. `out` is the connection itself (or a test buffer);
    /// writing to it may block while the peer is slow to read.
    ///
    /// # Errors
    ///
    /// An error closes the connection; return the error from `out` as it is.
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()>;

    /// The peer has finished sending (recv returned 0); write whatever is still held back.
    ///
    /// Not called when the connection ends any other way (a timeout, a reset, a shutdown).
    ///
    /// # Errors
    ///
    /// As for [`data`](Session::data).
    fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let _ = out;
        Ok(())
    }

    /// The connection is closed; `summary` says how it ended. Called exactly once.
    fn closed(&mut self, summary: &CloseSummary) {
        let _ = summary;
    }
}

/// A session that serves the whole connection itself, blocking on its own reads and writes.
///
/// Prefer a byte [`Session`]: it needs no socket, is tested with a `Vec<u8>`, and its connection
/// can leave the worker while it is quiet. A stream session holds its worker from
/// [`serve`](StreamSession::serve) to its return, so it is for what a byte session cannot do: a
/// protocol library that wants a `Read + Write`, or a child process that takes the socket as its
/// standard input and output.
///
/// # What the server's limits mean here
///
/// Reads and writes through the [`StreamConnection`] get what a byte session gets:
/// `--idle-timeout` (a read that waits longer fails), `--write-timeout` (so does a write),
/// `--max-duration` (no read waits past the deadline; after it, reads fail), `--max-bytes` (a
/// read returns at most what is left, the next one fails), the byte counts, and a close reason
/// that says which limit ended the connection. Return the error such a read or write gave you;
/// the server knows what it meant.
///
/// I/O done on [`StreamConnection::socket`] directly, or by a child process given a duplicate of
/// it, is neither counted nor limited: the socket still carries the idle and write timeouts, but
/// a session that waits on anything else (a child) must watch
/// [`deadline`](StreamConnection::deadline) itself, and return an error of kind
/// [`io::ErrorKind::TimedOut`] once it has passed (the server then counts the end as
/// `max-duration`). When a graceful stop runs out of time, the server shuts the socket down, so
/// that blocked reads return 0 and writes fail, and makes
/// [`stop_signal`](StreamConnection::stop_signal) readable, for a session that waits on
/// something else; return then.
pub trait StreamSession: Send {
    /// Serves the connection to its end; the server closes the socket after it returns.
    ///
    /// # Errors
    ///
    /// An error ends the connection; it is logged, and counted as the limit it came from or as
    /// an error.
    fn serve(&mut self, conn: &mut dyn StreamConnection) -> io::Result<()>;

    /// The connection is closed; `summary` says how it ended. Called exactly once, after
    /// [`serve`](StreamSession::serve) returned.
    fn closed(&mut self, summary: &CloseSummary) {
        let _ = summary;
    }
}

/// The connection a [`StreamSession`] serves: read it and write it like a socket.
///
/// A plain `TcpStream` is one too, with no deadline, which is how a stream session is tested
/// without a server.
pub trait StreamConnection: Read + Write {
    /// The socket, for what reading and writing cannot do (socket options, a duplicate for a
    /// child process). I/O done on it directly is not counted or limited.
    fn socket(&self) -> &TcpStream;

    /// When `--max-duration` ends this connection, if it has one.
    fn deadline(&self) -> Option<Instant>;

    /// A descriptor that becomes readable, and stays so, when the server ends the connection
    /// from outside (its graceful stop ran out of time). `None` when only the socket will tell
    /// (a plain `TcpStream`).
    ///
    /// For a session that waits on something other than its connection, such as a child
    /// process that holds the socket: wait with `poll(2)` on this descriptor beside the other
    /// (a pidfd, say), with a timeout until [`deadline`](Self::deadline), and end the
    /// connection when either comes. There is nothing to read from it.
    #[cfg(unix)]
    fn stop_signal(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl StreamConnection for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// What [`Handler::open`] returns: a byte session (the usual case) or a raw-stream session.
pub enum Opened {
    /// The server runs the read loop and feeds the session.
    Session(Box<dyn Session>),
    /// The session serves the connection itself.
    Stream(Box<dyn StreamSession>),
}

impl Opened {
    /// Boxes a byte session.
    pub fn session(session: impl Session + 'static) -> Self {
        Opened::Session(Box::new(session))
    }

    /// Boxes a stream session.
    pub fn stream(session: impl StreamSession + 'static) -> Self {
        Opened::Stream(Box::new(session))
    }

    /// The byte session, or `None` for a stream session; handy in tests:
    ///
    /// ```
    /// use echopool_handlers::{ConnInfo, Echo, Handler};
    ///
    /// let mut session = Echo.open(&ConnInfo::example()).into_session().unwrap();
    /// let mut out = Vec::new();
    /// session.data(b"hi", &mut out).unwrap();
    /// assert_eq!(out, b"hi");
    /// ```
    pub fn into_session(self) -> Option<Box<dyn Session>> {
        match self {
            Opened::Session(session) => Some(session),
            Opened::Stream(_) => None,
        }
    }

    /// The stream session, or `None` for a byte session.
    pub fn into_stream(self) -> Option<Box<dyn StreamSession>> {
        match self {
            Opened::Stream(session) => Some(session),
            Opened::Session(_) => None,
        }
    }
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Opened::Session(_) => "Opened::Session(..)",
            Opened::Stream(_) => "Opened::Stream(..)",
        })
    }
}

/// What a handler is told about a connection when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// A number unique to this connection within one server run, starting at 1.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The server address the client connected to.
    pub local: SocketAddr,
}

impl ConnInfo {
    /// A `ConnInfo` for tests and examples: id 1, peer `127.0.0.1:40000`, local `127.0.0.1:7007`.
    pub fn example() -> Self {
        ConnInfo {
            id: 1,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            local: SocketAddr::from(([127, 0, 0, 1], 7007)),
        }
    }
}

/// How a connection ended, given to [`Session::closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseSummary {
    /// Bytes received from the peer.
    pub bytes_in: u64,
    /// Bytes written to the peer.
    pub bytes_out: u64,
    /// Time from the session's open to its close.
    pub duration: Duration,
    /// Why the connection closed.
    pub reason: CloseReason,
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer half-closed and all output was written.
    Eof,
    /// The peer sent nothing for the idle timeout.
    IdleTimeout,
    /// The peer did not read our output for the write timeout.
    WriteTimeout,
    /// The connection reached its maximum duration.
    MaxDuration,
    /// The peer sent more than the per-connection byte limit.
    MaxBytes,
    /// The server's graceful stop ran out of time.
    Shutdown,
    /// A read or write failed (a reset, a broken pipe, ...).
    Error,
    /// The handler panicked.
    Panic,
}

impl CloseReason {
    /// Every reason, in declaration order: for counters kept per reason.
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Eof,
        CloseReason::IdleTimeout,
        CloseReason::WriteTimeout,
        CloseReason::MaxDuration,
        CloseReason::MaxBytes,
        CloseReason::Shutdown,
        CloseReason::Error,
        CloseReason::Panic,
    ];

    /// This reason's position in [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        match self {
            CloseReason::Eof => 0,
            CloseReason::IdleTimeout => 1,
            CloseReason::WriteTimeout => 2,
            CloseReason::MaxDuration => 3,
            CloseReason::MaxBytes => 4,
            CloseReason::Shutdown => 5,
            CloseReason::Error => 6,
            CloseReason::Panic => 7,
        }
    }

    /// A short lowercase name for logs and counters, e.g. `idle-timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Eof => "eof",
            CloseReason::IdleTimeout => "idle-timeout",
            CloseReason::WriteTimeout => "write-timeout",
            CloseReason::MaxDuration => "max-duration",
            CloseReason::MaxBytes => "max-bytes",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Error => "error",
            CloseReason::Panic => "panic",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Shared handlers: a server holds its handler behind an `Arc<dyn Handler>`, and decorators such
// as `Logging<H>` accept any of these.
impl<H: Handler + ?Sized> Handler for Arc<H> {
    fn open(&self, conn: &ConnInfo) -> Opened {
        (**self).open(conn)
    }
}

impl<H: Handler + ?Sized> Handler for Box<H> {
    fn open(&self, conn: &ConnInfo) -> Opened {
        (**self).open(conn)
    }
}

impl<H: Handler + ?Sized> Handler for &H {
    fn open(&self, conn: &ConnInfo) -> Opened {
        (**self).open(conn)
    }
}

impl<S: Session + ?Sized> Session for Box<S> {
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
        (**self).data(input, out)
    }

    fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
        (**self).eof(out)
    }

    fn closed(&mut self, summary: &CloseSummary) {
        (**self).closed(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_once_at_its_index() {
        for (at, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), at, "{reason}");
        }
        let mut names: Vec<_> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), CloseReason::ALL.len());
    }
}
