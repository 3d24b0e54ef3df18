//! A served connection's socket: in the live set while it is open, registered with the
//! parking lot's poller from its first park on, and taken out of the poller before it closes.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Poller};

use super::transport::Transport;
use crate::server::stopping::LiveStream;

/// The socket of a connection that may be parked.
#[derive(Debug)]
pub(crate) struct Socket {
    stream: LiveStream,
    /// The poller it is registered with, once it has been parked.
    poller: Option<Arc<Poller>>,
}

impl Socket {
    pub(crate) fn new(stream: LiveStream) -> Self {
        Socket {
            stream,
            poller: None,
        }
    }

    /// Asks `poller` for one `event` on this socket (oneshot: the interest is cleared when it
    /// is delivered, so no two threads ever hold the connection).
    pub(crate) fn arm(&mut self, poller: &Arc<Poller>, event: Event) -> io::Result<()> {
        if self.poller.is_some() {
            return poller.modify(&*self.stream, event);
        }
        self.poller = Some(Arc::clone(poller));
        register(poller, &self.stream, event)
    }
}

/// Adds `stream` to `poller`.
#[allow(unsafe_code)]
fn register(poller: &Poller, stream: &TcpStream, event: Event) -> io::Result<()> {
    // SAFETY: the socket is deleted from the poller before it is closed: `Socket::drop` runs
    // before its `LiveStream` field drops, and the live set closes sockets only by
    // `shutdown(2)`, never by closing the descriptor.
    unsafe { poller.add(stream, event) }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            let _ = poller.delete(&*self.stream);
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
