//! Memory under a huge stream: one connection echoing a gigabyte stays as small as one
//! echoing a kilobyte.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{stream_pattern, Pattern};
use crate::common::procfs::{mib, rss_bytes};
use crate::common::{round_trip, Server};
use crate::report;

/// The stream's size: 1 GiB (1 to 6 s in a debug build on a busy 2-core machine), or
/// `RELIABILITY_STREAM_MIB` mebibytes for a slower machine or a longer run.
fn stream_size() -> u64 {
    let mib: u64 = std::env::var("RELIABILITY_STREAM_MIB")
        .ok()
        .map_or(1024, |v| {
            v.parse().expect("RELIABILITY_STREAM_MIB: a number")
        });
    mib << 20
}

#[test]
fn a_large_stream_is_echoed_byte_exact_in_flat_memory() {
    const RSS_BOUND: u64 = 64 << 20;
    let server = Server::start(&["--workers", "2"]);
    let pid = server.pid();
    assert_eq!(round_trip(server.connect(), &[b'k'; 1024]), [b'k'; 1024]);
    let after_1kib = rss_bytes(pid);
    let size = stream_size();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        thread::spawn(move || {
            let mut samples = 0;
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_bytes(pid), Ordering::SeqCst);
                samples += 1;
                thread::sleep(Duration::from_millis(20));
            }
            samples
        })
    };
    let started = Instant::now();
    let echoed = stream_pattern(server.connect(), Arc::new(Pattern::new(1)), size);
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert_eq!(echoed, size);
    assert!(samples >= 5, "only {samples} memory samples");
    assert!(peak < RSS_BOUND, "resident memory reached {}", mib(peak));
    // Flat: the stream costs no more than a 1 KiB echo, give or take allocator noise.
    assert!(
        peak <= after_1kib + (4 << 20),
        "resident memory grew from {} after 1 KiB to {} during the stream",
        mib(after_1kib),
        mib(peak)
    );
    report(
        "large stream",
        format_args!(
            "{} echoed byte-exact in {elapsed:.1?}; server RSS {} after 1 KiB, peak {} over \
             {samples} samples during the stream",
            mib(size),
            mib(after_1kib),
            mib(peak)
        ),
    );
}
