//! Out of file descriptors (`ulimit -n 64`): the accept loop backs off without spinning, and
//! the server recovers, or shuts down on time, as if nothing had happened.

use std::io::{ErrorKind, Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::is_closed_by_peer;
use crate::common::procfs::cpu_time;
use crate::common::{binary, connect, read_exact, round_trip, Server, TIMEOUT};
use crate::report;

const CLIENTS: usize = 100;

#[test]
fn out_of_descriptors_the_server_backs_off_without_spinning_and_serves_everyone() {
    let mut server = start_with_64_descriptors(&[]);
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
        cpu < Duration::from_millis(250),
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

/// Starts the server with 64 descriptors, and more workers, queue and `--max-connections` than
/// that allows, so that descriptors run out first. `exec` keeps the pid, so /proc/PID is the
/// server's own.
fn start_with_64_descriptors(args: &[&str]) -> Server {
    let mut command = Command::new("sh");
    command.args(["-c", r#"ulimit -n 64 && exec "$0" "$@""#, binary()]);
    let mut all = vec![
        "--workers",
        "128",
        "--queue",
        "128",
        "--max-connections",
        "1000",
    ];
    all.extend_from_slice(args);
    Server::start_with(command, &all)
}

fn accept_failures(server: &Server) -> usize {
    server.stderr().matches("accept failed").count()
}

#[test]
fn out_of_descriptors_the_shutdown_timeout_still_closes_every_live_connection() {
    let mut server = start_with_64_descriptors(&["--shutdown-timeout", "500ms"]);
    // Each client says hello and then idles; those the server has no descriptor for wait in
    // the backlog.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(b"hi").unwrap();
            stream
        })
        .collect();
    server.wait_for_log("accept failed");
    // Before the signal, every connection the server took has been served (its hello echoed),
    // so that what the deadline closes are idle live connections, however slow the machine.
    let mut echoed = vec![false; clients.len()];
    let deadline = Instant::now() + TIMEOUT;
    let live = loop {
        for (stream, echoed) in clients.iter().zip(echoed.iter_mut()).filter(|(_, e)| !**e) {
            stream.set_nonblocking(true).unwrap();
            *echoed = match stream.peek(&mut [0; 2]) {
                Ok(2) => true,
                Ok(_) => false, // half of it, or a close: the read after exit tells
                Err(err) if err.kind() == ErrorKind::WouldBlock => false,
                Err(err) => panic!("{err}"),
            };
            stream.set_nonblocking(false).unwrap();
        }
        let echoed = echoed.iter().filter(|e| **e).count() as u64;
        if echoed > 0 && echoed == server.counters_now().get("accepted") {
            break echoed;
        }
        assert!(
            Instant::now() < deadline,
            "accepted connections left unserved"
        );
        thread::sleep(Duration::from_millis(20));
    };
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
    // Every client hears the end: its echo then the close (served), or only the close.
    let mut echoed = 0;
    for mut stream in clients {
        let mut reply = Vec::new();
        match stream.read_to_end(&mut reply) {
            Ok(_) => {}
            Err(err) if is_closed_by_peer(&err) => {}
            Err(err) => panic!("{err}"),
        }
        match reply.as_slice() {
            b"hi" => echoed += 1,
            b"" => {}
            other => panic!("unexpected reply {other:?}"),
        }
    }
    // The drain takes from the backlog what the descriptors freed at the shutdown allow (the
    // shutdown handle's copy of the listener, say); the rest is refused when it closes.
    assert!(
        echoed >= live,
        "served before the signal, yet no echo after it: {echoed} < {live}"
    );
    let logs = server.stderr();
    assert!(
        !logs.contains("did not return"),
        "the deadline left workers blocked:\n{logs}"
    );
    // Every accepted connection was served, then closed by the deadline and counted.
    let counters = server.final_counters();
    assert_eq!(counters.get("active"), 0, "{}", counters.line());
    assert_eq!(counters.get("accepted"), echoed, "{}", counters.line());
    assert_eq!(
        counters.get("closed.shutdown"),
        echoed,
        "{}",
        counters.line()
    );
    report(
        "ulimit -n 64, SIGTERM",
        format_args!(
            "{live} idle connections served when descriptors ran out: SIGTERM closed all \
             {echoed} at the 500 ms deadline (closed[shutdown={echoed}]; {} taken from the \
             backlog by the drain), the {} left in the backlog were refused; exit 0",
            echoed - live,
            CLIENTS as u64 - echoed
        ),
    );
}
