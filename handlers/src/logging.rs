//! `logging`: a decorator that logs each connection around any handler.

use std::fmt;
use std::io::{self, Write};

use tracing::{debug, info};

use crate::{
    CloseSummary, ConnInfo, Echo, Handler, Opened, Session, StreamConnection, StreamSession,
};

/// How many bytes of each chunk the debug log shows.
const PREVIEW_LEN: usize = 32;

/// Logs, through `tracing`, each connection's open (peer), every chunk (size and a short escaped
/// preview, at debug level) and its close (bytes in and out, duration, reason), then lets the
/// inner handler do the work. Open and close are logged at info level.
///
/// The server runs each connection inside a `conn` span that carries the peer, so these lines
/// can be found beside everything else logged about the connection.
///
/// ```
/// use echopool_handlers::{Handler, Logging, Uppercase};
///
/// let handler = Logging::new(Uppercase);
/// # let _ = handler.open(&echopool_handlers::ConnInfo::example());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Logging<H = Echo> {
    inner: H,
}

impl<H: Handler> Logging<H> {
    /// Wraps `inner`.
    pub fn new(inner: H) -> Self {
        Logging { inner }
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: Handler> Handler for Logging<H> {
    fn open(&self, conn: &ConnInfo) -> Opened {
        info!(peer = %conn.peer, local = %conn.local, "connection opened");
        match self.inner.open(conn) {
            Opened::Session(inner) => Opened::session(LoggingSession {
                inner,
                bytes_out: 0,
            }),
            Opened::Stream(inner) => Opened::stream(LoggingStream { inner }),
        }
    }
}

struct LoggingSession {
    inner: Box<dyn Session>,
    /// What the inner session wrote, counted here so the chunk log can show it.
    bytes_out: u64,
}

impl Session for LoggingSession {
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
        let before = self.bytes_out;
        let mut counted = CountingWriter {
            inner: out,
            count: &mut self.bytes_out,
        };
        let result = self.inner.data(input, &mut counted);
        debug!(
            bytes = input.len(),
            wrote = self.bytes_out - before,
            preview = %Preview(input),
            "chunk"
        );
        result
    }

    fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
        debug!("peer finished sending");
        let mut counted = CountingWriter {
            inner: out,
            count: &mut self.bytes_out,
        };
        self.inner.eof(&mut counted)
    }

    fn closed(&mut self, summary: &CloseSummary) {
        self.inner.closed(summary);
        log_close(summary);
    }
}

struct LoggingStream {
    inner: Box<dyn StreamSession>,
}

impl StreamSession for LoggingStream {
    fn serve(&mut self, conn: &mut dyn StreamConnection) -> io::Result<()> {
        let result = self.inner.serve(conn);
        if let Err(err) = &result {
            debug!(error = %err, "stream session returned an error");
        }
        result
    }

    fn closed(&mut self, summary: &CloseSummary) {
        self.inner.closed(summary);
        log_close(summary);
    }
}

fn log_close(summary: &CloseSummary) {
    info!(
        bytes_in = summary.bytes_in,
        bytes_out = summary.bytes_out,
        elapsed_ms = summary.duration.as_millis() as u64,
        reason = %summary.reason,
        "connection closed"
    );
}

/// Passes writes through, adding up the bytes written.
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    count: &'a mut u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        *self.count += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The first bytes of a chunk, escaped like a Rust byte string, with `...` when cut.
struct Preview<'a>(&'a [u8]);

impl fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(PREVIEW_LEN)];
        write!(f, "{}", shown.escape_ascii())?;
        if shown.len() < self.0.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_escapes_and_cuts() {
        assert_eq!(Preview(b"hi\n\x00").to_string(), "hi\\n\\x00");
        let long = [b'a'; 40];
        assert_eq!(Preview(&long).to_string(), format!("{}...", "a".repeat(32)));
    }
}
