//! `rr`: one persistent connection, write a message, read the whole echo, repeat.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::control::{Control, Phase};
use super::payload::Payload;
use super::tally::{ErrorKind, Tally};

/// Runs one `rr` connection until the run stops or `quota` messages are recorded.
pub fn run(ctl: &Control, index: usize, quota: Option<u64>) -> Tally {
    let mut tally = Tally::new();
    let mut payload = Payload::new(ctl.size, index as u64);
    let mut echo = vec![0u8; ctl.size];
    let mut stream: Option<TcpStream> = None;
    let mut backoff = Duration::ZERO;
    let mut number = 0u64;
    // One clock read per message: the end of one is the start of the next (what lies between is
    // a few nanoseconds of bookkeeping).
    let mut started = Instant::now();
    loop {
        let phase = ctl.phase();
        if phase == Phase::Stop {
            break;
        }
        let conn = match &mut stream {
            Some(conn) => conn,
            None => match ctl.connect(None, &mut tally, &mut backoff) {
                Some(conn) => {
                    if phase == Phase::Measure {
                        tally.connections += 1;
                    }
                    started = Instant::now();
                    stream.insert(conn)
                }
                None => continue,
            },
        };
        number += 1;
        payload.stamp(number);
        if let Err(err) = conn
            .write_all(payload.bytes())
            .and_then(|()| conn.read_exact(&mut echo))
        {
            tally.error(ErrorKind::of(&err));
            stream = None;
            continue;
        }
        let now = Instant::now();
        let latency = now - started;
        started = now;
        if !payload.matches(&echo) {
            tally.error(ErrorKind::Mismatch);
            continue;
        }
        if ctl.phase() == Phase::Measure {
            tally.message(latency, ctl.size);
            ctl.progress[index]
                .0
                .store(tally.messages, std::sync::atomic::Ordering::Relaxed);
            if quota.is_some_and(|q| tally.messages >= q) {
                tally.finished = Some(now);
                break;
            }
        }
    }
    tally
}
