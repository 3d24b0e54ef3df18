//! Resource exhaustion: out of file descriptors, and one huge stream in flat memory.

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::{stream_pattern, Pattern};
use crate::common::procfs::{cpu_time, mib, rss_bytes};
use crate::common::{binary, connect, read_exact, round_trip, Server, TIMEOUT};
use crate::report;

const CLIENTS: usize = 100;

#[test]
fn out_of_descriptors_the_server_backs_off_without_spinning_and_serves_everyone() {
    // `exec` keeps the pid, so /proc/PID is the server's own.
    let mut command = Command::new("sh");
    command.args(["-c", r#"ulimit -n 64 && exec "$0" "$@""#, binary()]);
    let mut server = Server::start_with(command, &["--workers", "128", "--queue", "128"]);
    let addr = server.addr();
    // Clients keep their connection (and so a server descriptor) until released.
    let release = Arc::new(RwLock::new(()));
    let held = release.write().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (release, served) = (Arc::clone(&release), Arc::clone(&served));
            thread::spawn(move || {
                let mut stream = connect(addr);
                // Those beyond the descriptors wait in the backlog through the whole test.
                stream.set_read_timeout(Some(2 * TIMEOUT)).unwrap();
                let message = format!("client {i:03}");
                stream.write_all(message.as_bytes()).unwrap();
                assert_eq!(read_exact(&mut stream, message.len()), message.as_bytes());
                served.fetch_add(1, Ordering::SeqCst);
                drop(release.read());
            })
        })
        .collect();
    server.wait_for_log("accept failed");
    // Under EMFILE pressure: CPU and log lines over one second.
    let (cpu_before, logs_before) = (cpu_time(server.pid()), accept_failures(&server));
    thread::sleep(Duration::from_secs(1));
    let cpu = cpu_time(server.pid()) - cpu_before;
    let logged = accept_failures(&server) - logs_before;
    let served_under_pressure = served.load(Ordering::SeqCst);
    assert!(
        cpu < Duration::from_millis(500),
        "the server used {cpu:?} of CPU in 1 s out of descriptors: it spins"
    );
    assert!(logged <= 10, "{logged} `accept failed` lines in 1 s");
    assert!(
        served_under_pressure < CLIENTS,
        "never ran out of descriptors?"
    );
    // Free the descriptors: everyone still waiting must now be served.
    let released = Instant::now();
    drop(held);
    for client in clients {
        client.join().expect("a client was not served");
    }
    let recovered_in = released.elapsed();
    assert_eq!(round_trip(server.connect(), b"after"), b"after");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
    let counters = server.final_counters();
    assert_eq!(
        counters.get("closed.eof"),
        CLIENTS as u64 + 1,
        "{}",
        counters.line()
    );
    report(
        "ulimit -n 64, 100 clients",
        format_args!(
            "`accept failed` logged ({logged} lines in 1 s), {} ms of CPU in 1 s of EMFILE, \
             {served_under_pressure} served under pressure; all {CLIENTS} served {:.1?} after \
             descriptors freed; exit 0",
            cpu.as_millis(),
            recovered_in
        ),
    );
}

fn accept_failures(server: &Server) -> usize {
    server.stderr().matches("accept failed").count()
}

/// The stream's size: 1 GiB (about a second in a debug build on a 2-core machine), or
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
    let echoed = stream_pattern(server.connect(), Arc::new(Pattern::new(1)), size, |_| {});
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
