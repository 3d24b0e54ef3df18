//! Clients that the reliability suite needs beyond `connect` and `round_trip`: from a chosen
//! source address, tolerant of being refused, and streams checked without being stored.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::TIMEOUT;

/// Connects to `addr` from `source` (any 127.x.y.z works on Linux loopback), with read and
/// write timeouts of [`TIMEOUT`].
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    try_connect_from(source, addr)
        .unwrap_or_else(|err| panic!("connect from {source} to {addr}: {err}"))
}

/// Like [`connect_from`], returning the error (a refused connect, after a shutdown).
pub fn try_connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    socket.connect_timeout(&SockAddr::from(addr), TIMEOUT)?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Makes the next close of `stream` send a reset (RST) instead of a FIN, dropping whatever is
/// still in flight: the abrupt client.
pub fn set_linger_zero(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("SO_LINGER 0");
}

/// Sends 256 KiB writes on `stream` and never reads, until a send fails (the server gave up on
/// it); the thread returns the bytes sent and that error. Panics after 1 GiB: a server that
/// takes that much from a client that never reads has no write timeout.
pub fn send_without_reading(mut stream: TcpStream) -> std::thread::JoinHandle<(u64, io::Error)> {
    std::thread::spawn(move || {
        let chunk = vec![b'x'; 256 << 10];
        let mut sent: u64 = 0;
        while sent < 1 << 30 {
            match stream.write(&chunk) {
                Ok(n) => sent += n as u64,
                Err(err) => return (sent, err),
            }
        }
        panic!("the server took 1 GiB from a client that never reads");
    })
}

/// Whether an error means the peer closed or reset the connection (as opposed to a timeout).
pub fn is_closed_by_peer(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

/// Sends a short `message`, half-closes, and reads until the server closes. Unlike
/// `round_trip`, a server that refuses the connection (closes or resets it at once) is an
/// answer, not a failure: the reply is then what arrived before that, usually nothing.
/// Panics only on a timeout, so a hung server still fails the test.
pub fn exchange(mut stream: TcpStream, message: &[u8]) -> Vec<u8> {
    // A short message fits the socket buffer: the write cannot block on a server that reads
    // nothing, and fails only if the server has already gone.
    if let Err(err) = stream.write_all(message) {
        assert!(is_closed_by_peer(&err), "send: {err}");
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return reply,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if is_closed_by_peer(&err) => return reply,
            Err(err) => panic!("read the reply: {err} (after {} bytes)", reply.len()),
        }
    }
}

/// A deterministic byte stream of any length that a sender can generate and a receiver can
/// check piece by piece, so gigabytes are verified byte-exact without being stored.
///
/// The stream is 64 KiB blocks of fixed pseudo-random bytes, each block starting with its own
/// index (8 bytes, little-endian): a lost, repeated or reordered block, or a shifted byte, shows.
pub struct Pattern {
    block: Vec<u8>,
}

const BLOCK: u64 = 64 << 10;

impl Pattern {
    /// The stream for `seed`; different seeds give different streams.
    pub fn new(seed: u64) -> Pattern {
        let mut state = seed | 1;
        let block = (0..BLOCK)
            .map(|_| {
                // xorshift64: cheap, and good enough to make every offset look different.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        Pattern { block }
    }

    /// Calls `each` with the stream's bytes from `offset`, `len` of them, in pieces.
    fn pieces(&self, mut offset: u64, mut len: usize, mut each: impl FnMut(&[u8])) {
        while len > 0 {
            let header = (offset / BLOCK).to_le_bytes();
            let within = (offset % BLOCK) as usize;
            let piece = if within < header.len() {
                &header[within..]
            } else {
                &self.block[within..]
            };
            let piece = &piece[..piece.len().min(len)];
            each(piece);
            offset += piece.len() as u64;
            len -= piece.len();
        }
    }

    /// Fills `buf` with the stream's bytes from `offset`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut at = 0;
        self.pieces(offset, buf.len(), |piece| {
            buf[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        });
    }

    /// Whether `data` equals the stream's bytes from `offset`.
    pub fn matches(&self, offset: u64, data: &[u8]) -> bool {
        let mut at = 0;
        let mut same = true;
        self.pieces(offset, data.len(), |piece| {
            same &= data[at..at + piece.len()] == *piece;
            at += piece.len();
        });
        same
    }
}

/// Sends `len` bytes of `pattern` from a writer thread while this thread reads the echo and
/// checks it against the pattern as it arrives. Returns the bytes echoed, all checked; panics
/// at the first byte that differs.
pub fn stream_pattern(stream: TcpStream, pattern: std::sync::Arc<Pattern>, len: u64) -> u64 {
    let mut writer = stream.try_clone().unwrap();
    let sending = std::sync::Arc::clone(&pattern);
    let sender = std::thread::spawn(move || {
        let mut buf = vec![0; 256 << 10];
        let mut sent = 0;
        while sent < len {
            let n = buf.len().min((len - sent) as usize);
            sending.fill(sent, &mut buf[..n]);
            writer.write_all(&buf[..n]).expect("send the stream");
            sent += n as u64;
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = stream;
    let mut buf = vec![0; 256 << 10];
    let mut echoed = 0;
    loop {
        let n = reader
            .read(&mut buf)
            .expect("read the echo within the timeout");
        if n == 0 {
            break;
        }
        assert!(
            pattern.matches(echoed, &buf[..n]),
            "the echo differs from what was sent within bytes {echoed}..{}",
            echoed + n as u64
        );
        echoed += n as u64;
    }
    sender.join().expect("the sender");
    echoed
}
