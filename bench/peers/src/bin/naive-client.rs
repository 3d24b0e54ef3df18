//! The yardstick for `echopool bench` itself: the smallest honest `rr` client — C threads, each
//! with one connection (TCP_NODELAY), write S bytes, read S bytes, repeat for D seconds; no
//! checking, no timing, no histogram. `echopool bench` must drive at least as many messages/s.
//!
//! Usage: naive-client ADDR CONNECTIONS SIZE SECONDS  (prints `MSGS_PER_S msg/s`)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let parsed = (argv.len() == 5).then(|| {
        Some((
            argv[1].parse::<std::net::SocketAddr>().ok()?,
            argv[2].parse::<usize>().ok()?,
            argv[3].parse::<usize>().ok()?,
            argv[4].parse::<f64>().ok()?,
        ))
    });
    let Some(Some((addr, connections, size, seconds))) = parsed else {
        eprintln!("usage: naive-client ADDR CONNECTIONS SIZE SECONDS");
        std::process::exit(2);
    };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let total: u64 = thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut conn = TcpStream::connect(addr).expect("connect");
                    conn.set_nodelay(true).unwrap();
                    let out = vec![7u8; size];
                    let mut back = vec![0u8; size];
                    let mut count = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        conn.write_all(&out).unwrap();
                        conn.read_exact(&mut back).unwrap();
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!(
        "{:.0} msg/s",
        total as f64 / started.elapsed().as_secs_f64()
    );
}
