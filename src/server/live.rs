//! The connections that workers are serving right now, so a shutdown can close them.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;

use tracing::warn;

/// Live connections by id, each a clone of its socket that can shut it down from outside.
#[derive(Debug, Default)]
pub(crate) struct LiveConnections {
    streams: Mutex<HashMap<u64, TcpStream>>,
}

impl LiveConnections {
    /// Adds a connection for as long as the returned guard lives. Dropping the guard, even while
    /// unwinding from a panic, removes it, so the set cannot go stale.
    pub(crate) fn register(&self, id: u64, stream: &TcpStream) -> LiveGuard<'_> {
        match stream.try_clone() {
            Ok(clone) => {
                self.streams.lock().unwrap().insert(id, clone);
            }
            // Out of descriptors: the connection is served, but a forced shutdown cannot
            // reach it; its own timeouts still end it.
            Err(err) => warn!(error = %err, "cannot track connection for shutdown"),
        }
        LiveGuard { live: self, id }
    }

    /// Shuts down every live connection, so blocked reads return 0 and writes fail; returns
    /// how many there were.
    pub(crate) fn close_all(&self) -> usize {
        let streams = self.streams.lock().unwrap();
        for stream in streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        streams.len()
    }

    /// How many connections are live.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.streams.lock().unwrap().len()
    }
}

/// Keeps one connection in [`LiveConnections`] until dropped.
pub(crate) struct LiveGuard<'a> {
    live: &'a LiveConnections,
    id: u64,
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.live.streams.lock().unwrap().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn close_all_unblocks_a_reader_and_guards_deregister() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut served, _) = listener.accept().unwrap();
        served
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let live = LiveConnections::default();
        {
            let _guard = live.register(7, &served);
            assert_eq!(live.len(), 1);
            assert_eq!(live.close_all(), 1);
            assert_eq!(served.read(&mut [0; 8]).unwrap(), 0);
        }
        assert_eq!(live.len(), 0);
    }
}
