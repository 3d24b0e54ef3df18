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
//! A handler that must own the raw socket (a protocol with its own framing, or one that passes
//! the socket to a child process) returns [`Opened::Stream`] instead, and gets the `TcpStream`.
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
//! it to the `echopool` crate's server builder.
#![warn(missing_docs)]

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

mod echo;
mod logging;
mod registry;
mod uppercase;

pub use echo::Echo;
pub use logging::Logging;
pub use registry::{Registry, UnknownHandler};
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

/// A handler that takes over the raw socket for the whole connection.
///
/// The server hands over the stream on the worker thread and waits for `serve` to return; the
/// connection counts as live until then. The server keeps a clone of the socket only to shut it
/// down when a graceful stop runs out of time, which makes any blocked read or write return.
pub trait StreamSession: Send {
    /// Serves the connection to its end; the stream is closed when it is dropped.
    ///
    /// # Errors
    ///
    /// An error is logged with the peer and the connection is closed.
    fn serve(self: Box<Self>, stream: TcpStream) -> io::Result<()>;
}

/// What [`Handler::open`] returns: a byte session (the usual case) or a raw-stream session.
pub enum Opened {
    /// The server runs the read loop and feeds the session.
    Session(Box<dyn Session>),
    /// The handler owns the socket.
    Stream(Box<dyn StreamSession>),
}

impl Opened {
    /// Boxes a byte session.
    pub fn session(session: impl Session + 'static) -> Self {
        Opened::Session(Box::new(session))
    }

    /// Boxes a raw-stream session.
    pub fn stream(session: impl StreamSession + 'static) -> Self {
        Opened::Stream(Box::new(session))
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
