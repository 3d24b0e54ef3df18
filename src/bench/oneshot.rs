//! `oneshot`: the textbook client in a loop: connect, send one message, read its echo, close.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::control::{loopback_source, Control, Phase};
use super::payload::Payload;
use super::tally::{ErrorKind, Tally};

/// Runs one `oneshot` loop until the run stops or `quota` connections are recorded. Latency is
/// from the start of the connect to the last echoed byte.
pub fn run(ctl: &Control, index: usize, quota: Option<u64>) -> Tally {
    let mut tally = Tally::new();
    let mut payload = Payload::new(ctl.size, index as u64);
    let mut echo = vec![0u8; ctl.size];
    let mut backoff = Duration::ZERO;
    let mut number = 0u64;
    while ctl.phase() != Phase::Stop {
        number += 1;
        payload.stamp(number);
        let started = Instant::now();
        let source = if ctl.spread_sources {
            // Each loop starts at its own place in the cycle, so loops do not move in step.
            loopback_source(ctl.target, number.wrapping_add(index as u64 * 31))
        } else {
            None
        };
        let Some(mut conn) = ctl.connect(source, &mut tally, &mut backoff) else {
            continue;
        };
        let exchanged = conn
            .write_all(payload.bytes())
            .and_then(|()| conn.read_exact(&mut echo));
        // Closing first leaves TIME_WAIT here, as the textbook client does; Linux reuses such
        // ports for new loopback connections (`net.ipv4.tcp_tw_reuse`, 2 by default).
        drop(conn);
        let latency = started.elapsed();
        if let Err(err) = exchanged {
            tally.error(ErrorKind::of(&err));
            continue;
        }
        if !payload.matches(&echo) {
            tally.error(ErrorKind::Mismatch);
            continue;
        }
        if ctl.phase() == Phase::Measure {
            tally.connections += 1;
            tally.message(latency, ctl.size);
            ctl.progress[index]
                .0
                .store(tally.messages, Ordering::Relaxed);
            if quota.is_some_and(|q| tally.messages >= q) {
                tally.finished = Some(Instant::now());
                break;
            }
        }
    }
    tally
}
