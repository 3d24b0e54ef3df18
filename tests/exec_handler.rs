//! `-H 'exec:PROGRAM [ARG...]'` through the real binary: the socket is the program's stdin and
//! stdout, tcpserver's environment is set, stderr reaches the log inside the connection's span,
//! exits are logged and counted, every program is reaped, and a missing program is a usage
//! error. (Programs killed at the deadlines: `tests/reliability/exec.rs`.)
#![cfg(target_os = "linux")]

mod common;

use std::io::Read;
use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::clients::connect_from;
use common::procfs::children_of;
use common::{round_trip, run, Server, TIMEOUT};

/// Waits (bounded) until the server has no child process left, zombies included.
fn wait_for_no_children(server: &Server) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let children = children_of(server.pid());
        if children.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "children left: {children:?}\n{}",
            server.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn exec_cat_echoes_binary_data_and_a_10_mib_stream_byte_exact() {
    let server = Server::start(&["-H", "exec:cat"]);
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(256 * 4).collect();
    assert_eq!(round_trip(server.connect(), &every_byte), every_byte);
    let stream: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let reply = round_trip(server.connect(), &stream);
    assert_eq!(reply.len(), stream.len());
    assert!(reply == stream, "the 10 MiB echo differs");
    wait_for_no_children(&server);
    server.wait_for_counters("closed[eof=2]", |c| c.get("closed.eof") == 2);
}

#[test]
fn more_clients_than_workers_are_all_served_and_every_program_reaped() {
    let server = Server::start(&["-w", "2", "-H", "exec:cat"]);
    let addr = server.addr();
    let clients: Vec<_> = (0..12u8)
        .map(|n| {
            thread::spawn(move || {
                let message: Vec<u8> = (0..64 << 10).map(|i| (i as u8) ^ n).collect();
                let reply = round_trip(common::connect(addr), &message);
                reply == message
            })
        })
        .collect();
    for client in clients {
        assert!(client.join().unwrap(), "a client got a different echo");
    }
    wait_for_no_children(&server);
    server.wait_for_counters("closed[eof=12]", |c| c.get("closed.eof") == 12);
}

#[test]
fn the_program_sees_the_clients_address_in_tcpservers_variables() {
    let server = Server::start(&[
        "-H",
        r#"exec:sh -c 'echo "$PROTO $TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT"'"#,
    ]);
    let source: IpAddr = "127.0.0.2".parse().unwrap();
    let mut stream = connect_from(source, server.addr());
    let client_port = stream.local_addr().unwrap().port();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(
        reply,
        format!(
            "TCP 127.0.0.2 {client_port} 127.0.0.1 {}\n",
            server.addr().port()
        )
    );
}

#[test]
fn stderr_lines_reach_the_log_with_the_connection_and_failures_are_counted() {
    let server = Server::start(&[
        "-H",
        "logging:exec:sh -c 'echo first line >&2; printf \"second\\n\" >&2; exit 3'",
    ]);
    let mut stream = server.connect();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply.is_empty());
    // The client sees the end when the program exits; the server logs the close after it.
    let log = server.wait_for_log("connection closed");
    let line = |needle: &str| {
        log.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
            .to_string()
    };
    for needle in ["stderr: first line", "stderr: second", "program exited"] {
        assert!(line(needle).contains("conn{id=1 "), "{}", line(needle));
    }
    assert!(line("program exited").contains("status=3"));
    // The logging decorator's lines around it.
    assert!(line("connection opened").contains("conn{id=1 "));
    assert!(line("connection closed").contains("reason=error"));
    server.wait_for_counters("closed[error=1]", |c| c.get("closed.error") == 1);
}

#[test]
fn a_missing_or_unrunnable_program_is_a_usage_error_naming_it() {
    let missing = run(&["serve", "-H", "exec:no-such-program-here --flag"], b"");
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--handler"), "{stderr}");
    assert!(
        stderr.contains("no program 'no-such-program-here' on PATH"),
        "{stderr}"
    );
    assert!(missing.stdout.is_empty(), "it listened");

    let notes = std::env::temp_dir().join(format!("echopool-notes-{}", std::process::id()));
    std::fs::write(&notes, "#!/bin/sh\necho never\n").unwrap();
    let spec = format!("logging:exec:{}", notes.display());
    let not_executable = run(&["serve", "-H", &spec], b"");
    std::fs::remove_file(&notes).unwrap();
    assert_eq!(not_executable.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&not_executable.stderr);
    assert!(stderr.contains("is not executable"), "{stderr}");

    let bad_words = run(&["serve", "-H", "exec:cat | tr a-z A-Z"], b"");
    assert_eq!(bad_words.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_words.stderr);
    assert!(stderr.contains("exec:sh -c"), "{stderr}");
}

#[test]
fn running_programs_as_root_without_user_warns_naming_user() {
    // SAFETY: geteuid only reads the process's id.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the warning is only given to root");
        return;
    }
    let server = Server::start(&["-H", "exec:cat"]);
    let log = server.wait_for_log("--user");
    assert!(log.contains("WARN"), "{log}");
    let quiet = Server::start(&["-H", "logging:echo"]);
    thread::sleep(Duration::from_millis(100));
    assert!(!quiet.stderr().contains("--user"), "{}", quiet.stderr());
}
