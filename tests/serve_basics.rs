//! `echopool serve` as a user meets it: round trips, handlers, logs and stdout.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use common::{connect, read_exact, round_trip, Server};

#[test]
fn echoes_the_textbook_message() {
    let server = Server::start(&[]);
    assert_eq!(round_trip(server.connect(), b"Echo this!"), b"Echo this!");
}

#[test]
fn echoes_one_mebibyte_of_binary_byte_exact() {
    let server = Server::start(&[]);
    let payload: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let reply = round_trip(server.connect(), &payload);
    assert_eq!(reply.len(), payload.len());
    assert!(reply == payload, "the echo differs from what was sent");
}

#[test]
fn echoes_each_message_of_a_conversation_then_closes_after_half_close() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    for message in [&b"first"[..], b"second message", b"3"] {
        stream.write_all(message).unwrap();
        assert_eq!(read_exact(&mut stream, message.len()), message);
    }
    // After our half-close the server finishes and closes: a read sees the end.
    stream.write_all(b"last").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_exact(&mut stream, 4), b"last");
    assert_eq!(read_exact(&mut stream, 0), b"");
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn uppercases_characters_split_across_reads() {
    let server = Server::start(&["--handler", "uppercase"]);
    let mut stream = server.connect();
    let text = "straße ünd 😀 ok".as_bytes();
    // One byte at a time with pauses, so the server reads multi-byte characters in pieces.
    for byte in text {
        stream.write_all(&[*byte]).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let reply = round_trip(stream, b"\xFFz");
    let mut expected = "STRASSE ÜND 😀 OK".as_bytes().to_vec();
    expected.extend_from_slice(b"\xFFZ"); // invalid UTF-8 passes unchanged
    assert_eq!(reply, expected);
}

#[test]
fn logging_logs_open_and_close_with_the_peer_at_the_default_level() {
    let server = Server::start(&["--handler", "logging:uppercase"]);
    let stream = server.connect();
    let peer = stream.local_addr().unwrap();
    assert_eq!(round_trip(stream, b"abc"), b"ABC");
    let logs = server.wait_for_log("connection closed");
    let opened = format!("connection opened peer={peer}");
    assert!(logs.contains(&opened), "{logs}");
    let close_line = logs
        .lines()
        .find(|l| l.contains("connection closed"))
        .unwrap();
    assert!(
        close_line.contains(&format!("peer={peer}")),
        "span lacks the peer: {close_line}"
    );
    assert!(
        close_line.contains("bytes_in=3 bytes_out=3"),
        "{close_line}"
    );
    assert!(
        !logs.contains("chunk"),
        "chunks are logged at debug only: {logs}"
    );
}

#[test]
fn verbose_logging_shows_each_chunk_with_an_escaped_preview() {
    let server = Server::start(&["--handler", "logging", "-v"]);
    assert_eq!(round_trip(server.connect(), b"hi\n"), b"hi\n");
    let logs = server.wait_for_log("chunk");
    assert!(logs.contains("bytes=3 wrote=3 preview=hi\\n"), "{logs}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let server = Server::start(&["--handler", "logging", "--log-format", "json"]);
    assert_eq!(round_trip(server.connect(), b"x"), b"x");
    let logs = server.wait_for_log("connection closed");
    for line in logs.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

#[test]
fn stdout_has_one_listening_line_per_listener_and_nothing_else() {
    let server = Server::start(&["-l", "127.0.0.1:0", "-l", "[::1]:0", "--handler", "logging"]);
    assert_eq!(server.addrs.len(), 2);
    assert!(server.addrs[0].is_ipv4() && server.addrs[0].port() != 0);
    assert!(server.addrs[1].is_ipv6() && server.addrs[1].port() != 0);
    // Both listeners feed the same pool.
    for addr in &server.addrs {
        assert_eq!(round_trip(connect(*addr), b"both"), b"both");
    }
    server.wait_for_log("connection closed");
    assert_eq!(server.extra_stdout(), Vec::<String>::new());
}

#[test]
fn a_bad_rust_log_filter_is_a_config_error() {
    let mut command = std::process::Command::new(common::binary());
    command
        .args(["serve", "-l", "127.0.0.1:0"])
        .env("RUST_LOG", "=bad=filter[");
    let output = common::run_command(command, b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid RUST_LOG filter"), "{stderr}");
}
