//! A client in mid-conversation, for shutdowns that must not cut one short.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::clients::{is_closed_by_peer, Pattern};

/// A client in mid-conversation: sends 4 KiB messages of its pattern a millisecond apart
/// until told to stop (then half-closes), while a reader checks the echo until the server
/// closes.
pub struct Talker {
    echoed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    writer: thread::JoinHandle<u64>,
    reader: thread::JoinHandle<u64>,
}

impl Talker {
    /// Starts talking on `stream`, with the pattern of `seed`.
    pub fn start(stream: TcpStream, seed: u64) -> Talker {
        let pattern = Arc::new(Pattern::new(seed));
        let (echoed, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut out = stream.try_clone().unwrap();
        let (sending, stopping) = (Arc::clone(&pattern), Arc::clone(&stop));
        let writer = thread::spawn(move || {
            let mut buf = [0; 4096];
            let mut sent = 0;
            while !stopping.load(Ordering::SeqCst) {
                sending.fill(sent, &mut buf);
                match out.write_all(&buf) {
                    Ok(()) => sent += buf.len() as u64,
                    // Closed by the server at the shutdown deadline (only the stubborn one).
                    Err(err) if is_closed_by_peer(&err) => return sent,
                    Err(err) => panic!("send: {err}"),
                }
                thread::sleep(Duration::from_millis(1));
            }
            let _ = out.shutdown(Shutdown::Write);
            sent
        });
        let counter = Arc::clone(&echoed);
        let reader = thread::spawn(move || {
            let mut stream = stream;
            let mut buf = vec![0; 64 << 10];
            let mut at = 0;
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(n) => n,
                    Err(err) if is_closed_by_peer(&err) => 0,
                    Err(err) => panic!("read the echo: {err}"),
                };
                if n == 0 {
                    return at;
                }
                assert!(pattern.matches(at, &buf[..n]), "wrong echo at byte {at}");
                at += n as u64;
                counter.store(at, Ordering::SeqCst);
            }
        });
        Talker {
            echoed,
            stop,
            writer,
            reader,
        }
    }

    /// Bytes of echo received and checked so far.
    pub fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::SeqCst)
    }

    /// Stops sending; returns (bytes sent, bytes echoed) once the server has closed.
    pub fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        (self.writer.join().unwrap(), self.reader.join().unwrap())
    }

    /// Keeps sending until the server closes the connection; returns (bytes sent, bytes
    /// echoed).
    pub fn talk_until_closed(self) -> (u64, u64) {
        let echoed = self.reader.join().unwrap();
        self.stop.store(true, Ordering::SeqCst);
        (self.writer.join().unwrap(), echoed)
    }
}
