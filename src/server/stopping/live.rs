//! The connections that workers are serving right now, so a shutdown can close them.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// Live connections by id, served or parked. Each socket is shared between its connection and
/// this map, so a shutdown can close it from outside without duplicating a descriptor per
/// connection. Cheap to clone: the clones share the map.
#[derive(Debug, Default, Clone)]
pub(crate) struct LiveConnections {
    streams: Arc<Mutex<HashMap<u64, Arc<TcpStream>>>>,
}

impl LiveConnections {
    /// Adds a connection for as long as the returned handle lives; the socket closes when the
    /// handle drops (even while unwinding from a panic), so the set cannot go stale.
    pub(crate) fn register(&self, id: u64, stream: TcpStream) -> LiveStream {
        let stream = Arc::new(stream);
        self.streams.lock().unwrap().insert(id, Arc::clone(&stream));
        LiveStream {
            live: self.clone(),
            id,
            stream,
        }
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

/// A live connection's socket; dropping it removes the connection from [`LiveConnections`]
/// and closes the socket.
#[derive(Debug)]
pub(crate) struct LiveStream {
    live: LiveConnections,
    id: u64,
    stream: Arc<TcpStream>,
}

impl Deref for LiveStream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        // Our own `Arc` drops right after: the last reference, which closes the socket.
        self.live.streams.lock().unwrap().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn close_all_unblocks_a_reader_and_dropping_deregisters_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (served, _) = listener.accept().unwrap();
        served
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let live = LiveConnections::default();
        let stream = live.register(7, served);
        assert_eq!(live.len(), 1);
        assert_eq!(live.close_all(), 1);
        assert_eq!((&*stream).read(&mut [0; 8]).unwrap(), 0);
        drop(stream);
        assert_eq!(live.len(), 0);
        assert_eq!(
            client.read(&mut [0; 8]).unwrap(),
            0,
            "the socket was closed"
        );
    }
}
