//! A served connection's socket: in the live set while it is open, watched by the parking
//! lot's poller from its first park on, and taken out of the poller before it closes.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::os::fd::AsRawFd;

use super::transport::Transport;
use crate::server::stopping::LiveStream;

/// The socket of a connection that may be parked.
#[derive(Debug)]
pub(crate) struct Socket {
    stream: LiveStream,
    /// The poller watching it, once it has been parked.
    watched_by: Option<Arc<Registry>>,
}

impl Socket {
    pub(crate) fn new(stream: LiveStream) -> Self {
        Socket {
            stream,
            watched_by: None,
        }
    }

    /// Has the poller behind `registry` watch this socket under `key`, edge-triggered, for
    /// input, room to write, and the peer's close; once for its whole life (a socket watched
    /// already stays watched).
    pub(crate) fn watch(&mut self, registry: &Arc<Registry>, key: usize) -> io::Result<()> {
        if self.watched_by.is_some() {
            return Ok(());
        }
        let fd = self.stream.as_raw_fd();
        registry.register(
            &mut SourceFd(&fd),
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.watched_by = Some(Arc::clone(registry));
        Ok(())
    }

    /// Whether a poller watches this socket.
    pub(crate) fn is_watched(&self) -> bool {
        self.watched_by.is_some()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Out of the poller before the descriptor closes (after this, as the `LiveStream`
        // field drops): a closed descriptor's number may be reused at once.
        if let Some(registry) = &self.watched_by {
            let fd = self.stream.as_raw_fd();
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
    }
}

impl Transport for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Transport::read(&mut &*self.stream, buf)
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Transport::read_now(&mut &*self.stream, buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Transport::write(&mut &*self.stream, buf)
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        Transport::write_now(&mut &*self.stream, buf)
    }

    fn wait_writable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        Transport::wait_writable(&mut &*self.stream, timeout)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        Transport::set_read_timeout(&mut &*self.stream, timeout)
    }
}
