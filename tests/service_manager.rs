//! Starting under a service manager: socket activation with the real `systemd-socket-activate`
//! (and hand-made `LISTEN_*` variables for what it cannot pass), and readiness over a
//! `NOTIFY_SOCKET` the test binds itself.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::tools::require;
use common::{binary, run_command, Server, TIMEOUT};

/// A loopback port that was free a moment ago (`systemd-socket-activate` takes no port 0).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Connects (retrying while the activator is not listening yet), sends `message`, half-closes
/// and returns the reply, on a thread: the activator starts the server only then.
fn first_client(addr: SocketAddr, message: &'static [u8]) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let mut stream = loop {
            match TcpStream::connect_timeout(&addr, TIMEOUT) {
                Ok(stream) => break stream,
                Err(err) => assert!(Instant::now() < deadline, "cannot connect: {err}"),
            }
            thread::sleep(Duration::from_millis(20));
        };
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(message).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        reply
    })
}

fn activated(port: u16) -> Command {
    let mut command = Command::new("systemd-socket-activate");
    command.args([
        "-l",
        &format!("127.0.0.1:{port}"),
        "--fdname=echo",
        "-E",
        "RUST_LOG=info",
        binary(),
    ]);
    command
}

#[test]
fn serves_the_socket_systemd_socket_activate_passes_and_prints_its_line() {
    let test = "serves_the_socket_systemd_socket_activate_passes";
    if require("systemd-socket-activate", test).is_none() {
        return;
    }
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The program reports what of the activation it can see: nothing.
    let probe = "exec:sh -c 'echo ${LISTEN_FDS:-none} ${LISTEN_PID:-none}; cat'";
    let client = first_client(addr, b"hello");
    let server = Server::start_listening(activated(port), &["-H", probe], 1);
    assert_eq!(server.addrs, [addr]);
    assert_eq!(client.join().unwrap(), b"none none\nhello");
    let log = server.wait_for_log("passed by the service manager");
    let line = log
        .lines()
        .find(|l| l.contains("passed by the service manager"))
        .unwrap();
    assert!(
        line.contains("fd=3") && line.contains("name=\"echo\""),
        "{line}"
    );
    // Not the default address as well: one line only.
    thread::sleep(Duration::from_millis(100));
    assert!(server.extra_stdout().is_empty());
}

#[test]
fn an_explicit_listen_adds_to_the_passed_sockets() {
    let test = "an_explicit_listen_adds_to_the_passed_sockets";
    if require("systemd-socket-activate", test).is_none() {
        return;
    }
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = first_client(addr, b"first");
    let server = Server::start_listening(activated(port), &["-l", "127.0.0.1:0"], 2);
    assert_eq!(server.addrs[0], addr, "the passed socket comes first");
    assert_ne!(server.addrs[1].port(), port);
    assert_eq!(client.join().unwrap(), b"first");
    assert_eq!(
        common::round_trip(common::connect(server.addrs[1]), b"x"),
        b"x"
    );
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_tcp_socket_is_a_usage_error() {
    // The shell's pid ($$) is the server's after `exec`.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        r#"LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "$0" serve 3</dev/null"#,
        binary(),
    ]);
    let output = run_command(command, b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LISTEN_FDS=1: descriptor 3 ('web') is not a listening TCP socket"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn variables_meant_for_another_process_are_ignored() {
    let mut command = Command::new(binary());
    command.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    let server = Server::start_with(command, &[]);
    assert_eq!(common::round_trip(server.connect(), b"ok"), b"ok");
}

#[test]
fn notify_socket_gets_ready_status_and_stopping() {
    let dir = std::env::temp_dir().join(format!("echopool-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let _ = std::fs::remove_file(&path);
    let manager = UnixDatagram::bind(&path).unwrap();
    manager.set_read_timeout(Some(TIMEOUT)).unwrap();
    let receive = || {
        let mut buf = [0; 4096];
        let len = manager
            .recv(&mut buf)
            .expect("a notification within the timeout");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    };
    let mut command = Command::new(binary());
    command.env("NOTIFY_SOCKET", &path);
    let probe = "exec:sh -c 'echo ${NOTIFY_SOCKET:-none}; cat'";
    let mut server = Server::start_with(command, &["-H", probe]);
    let ready = receive();
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(
        ready.contains("STATUS=0 active, 0 queued, 0 parked; 0 accepted"),
        "{ready:?}"
    );

    // A connection that stays open shows in the next status; the program does not see the
    // manager's socket.
    let mut stream = server.connect();
    let mut line = [0; 5];
    stream.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"none\n");
    let status = loop {
        let message = receive();
        if message.contains("1 active") {
            break message;
        }
    };
    assert_eq!(status, "STATUS=1 active, 0 queued, 0 parked; 1 accepted");

    server.signal(libc::SIGTERM);
    let stopping = loop {
        let message = receive();
        if !message.starts_with("STATUS=") {
            break message;
        }
    };
    assert_eq!(stopping, "STOPPING=1");
    drop(stream);
    assert!(server.wait_exit(TIMEOUT).success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_notify_socket_that_is_not_a_path_is_a_usage_error() {
    let mut command = Command::new(binary());
    command
        .env("NOTIFY_SOCKET", "relative/notify")
        .args(["serve", "-l", "127.0.0.1:0"]);
    let output = run_command(command, b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NOTIFY_SOCKET: 'relative/notify'"),
        "{stderr}"
    );
}
