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
    loop {
        let phase = ctl.phase();
        if phase == Phase::Stop {
            break;
        }
        let conn = match &mut stream {
            Some(conn) => conn,
            None => match ctl.connect(&mut tally, &mut backoff) {
                Some(conn) => {
                    if phase == Phase::Measure {
                        tally.connections += 1;
                    }
                    stream.insert(conn)
                }
                None => continue,
            },
        };
        number += 1;
        payload.stamp(number);
        let started = Instant::now();
        if let Err(err) = conn
            .write_all(payload.bytes())
            .and_then(|()| conn.read_exact(&mut echo))
        {
            tally.error(ErrorKind::of(&err));
            stream = None;
            continue;
        }
        let latency = started.elapsed();
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
                tally.finished = Some(Instant::now());
                break;
            }
        }
    }
    tally
}
