//! `echopool client` against a live `echopool serve` and against fake servers written here that
//! misbehave on purpose.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{run, Server, TIMEOUT};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A one-connection fake server: `serve` gets the accepted stream (with timeouts set).
fn fake_server(serve: impl FnOnce(TcpStream) + Send + 'static) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        serve(stream);
    });
    (addr, handle)
}

/// Reads until the client half-closes; returns what it sent.
fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    stream.read_to_end(&mut data).unwrap();
    data
}

#[test]
fn arguments_are_joined_by_spaces_and_echoed() {
    let server = Server::start(&["-q"]);
    let addr = server.addr().to_string();
    let output = run(&["client", "--addr", &addr, "hello", "big  world"], b"");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"hello big  world\n");

    let output = run(&["client", "--addr", &addr, "-n", "no", "newline"], b"");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"no newline");
}

#[test]
fn stdin_is_sent_when_there_are_no_arguments() {
    let server = Server::start(&["-q"]);
    let output = run(
        &["client", "--addr", &server.addr().to_string()],
        b"from stdin\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"from stdin\n");

    let output = run(&["client", "--addr", &server.addr().to_string()], b"");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
}

#[test]
fn two_mebibytes_of_binary_round_trip_byte_exact() {
    let server = Server::start(&["-q"]);
    // Every byte value, in an order that a swapped or repeated chunk would break.
    let data: Vec<u8> = (0..2u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let output = run(&["client", "--addr", &server.addr().to_string()], &data);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout.len(), data.len());
    assert!(
        output.stdout == data,
        "the reply differs from what was sent"
    );
}

#[test]
fn host_names_and_ipv6_literals_work() {
    let server = Server::start(&["-q", "-l", "127.0.0.1:0", "-l", "[::1]:0"]);
    let port = server.addrs[0].port();
    let output = run(
        &[
            "client",
            "--addr",
            &format!("localhost:{port}"),
            "by",
            "name",
        ],
        b"",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"by name\n");

    let output = run(
        &["client", "--addr", &server.addrs[1].to_string(), "v6"],
        b"",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"v6\n");
}

#[test]
fn a_shorter_reply_is_an_error_naming_both_lengths() {
    let (addr, server) = fake_server(|mut stream| {
        let data = read_all(&mut stream);
        stream.write_all(&data[..data.len() - 3]).unwrap();
    });
    let output = run(
        &["client", "--addr", &addr.to_string(), "-n", "0123456789"],
        b"",
    );
    server.join().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        output.stdout, b"0123456",
        "what did arrive is still printed"
    );
    let err = stderr(&output);
    assert!(err.contains("received 7 bytes, sent 10"), "{err}");
}

#[test]
fn expect_transform_accepts_a_reply_of_another_length() {
    let (addr, server) = fake_server(|mut stream| {
        let data = read_all(&mut stream);
        let text = String::from_utf8(data).unwrap().replace('ß', "SS");
        stream.write_all(text.to_uppercase().as_bytes()).unwrap();
    });
    let output = run(
        &[
            "client",
            "--addr",
            &addr.to_string(),
            "--expect-transform",
            "-n",
            "ßx",
        ],
        b"",
    );
    server.join().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"SSX");
}

#[test]
fn a_refused_connection_is_an_error_naming_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let output = run(&["client", "--addr", &addr, "hi"], b"");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("echopool: error: cannot connect to"),
        "{err}"
    );
    assert!(err.contains(&addr), "{err}");
}

#[test]
fn a_stalled_reply_times_out() {
    let (client_done, wait_for_client) = mpsc::channel::<()>();
    let (addr, server) = fake_server(move |mut stream| {
        // Take the message, then say nothing (and keep the connection) until the client gives up.
        let _ = read_all(&mut stream);
        let _ = wait_for_client.recv_timeout(TIMEOUT);
    });
    let started = Instant::now();
    let output = run(
        &[
            "client",
            "--addr",
            &addr.to_string(),
            "--timeout",
            "300ms",
            "hi",
        ],
        b"",
    );
    let took = started.elapsed();
    drop(client_done);
    server.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no reply for 300ms (--timeout)"), "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn a_server_that_closes_early_is_an_error() {
    let (addr, server) = fake_server(|mut stream| {
        let mut first = [0; 4];
        stream.read_exact(&mut first).unwrap();
        stream.write_all(&first).unwrap();
        // Dropping closes the connection before the client's input has ended.
    });
    // Enough input that it cannot all be written before the close is seen.
    let output = run(
        &["client", "--addr", &addr.to_string()],
        &vec![b'x'; 8 << 20],
    );
    server.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        [
            "closed the connection before the input ended",
            "sending to the server",
            "reset"
        ]
        .iter()
        .any(|reason| err.contains(reason)),
        "{err}"
    );
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    for (args, flag) in [
        (&["--addr", "localhost"][..], "--addr"),
        (&["--addr", "::1:7007"], "--addr"),
        (&["--timeout", "soon"], "--timeout"),
        (&["--connect-timeout", "0"], "--connect-timeout"),
    ] {
        let argv: Vec<&str> = ["client"].iter().chain(args).copied().collect();
        let output = run(&argv, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(flag),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn help_has_examples() {
    let output = run(&["client", "--help"], b"");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("Examples:") && text.contains("--expect-transform"),
        "{text}"
    );
}
