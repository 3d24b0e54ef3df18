//! `--access-log`: one structured line per connection served, in text and JSON.

mod common;

use std::time::Instant;

use common::{round_trip, Server, TIMEOUT};

/// Waits for `count` access lines on the server's stderr and returns them.
fn access_lines(server: &Server, count: usize, marker: &str) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let lines: Vec<String> = server
            .stderr()
            .lines()
            .filter(|l| l.contains(marker))
            .map(String::from)
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} access lines of {count}:\n{}",
            lines.len(),
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_text_line_per_connection_names_everything_even_with_quiet() {
    let server = Server::start(&["--access-log", "-q", "-H", "uppercase"]);
    let client = server.connect();
    let client_addr = client.local_addr().unwrap();
    assert_eq!(round_trip(client, b"hello"), b"HELLO");
    let lines = access_lines(&server, 1, " access ");
    let line = &lines[0];
    for field in [
        "id=1 ".to_string(),
        format!("peer={client_addr} "),
        format!("local={} ", server.addr()),
        "handler=uppercase ".to_string(),
        "bytes_in=5 ".to_string(),
        "bytes_out=5 ".to_string(),
        "reason=eof".to_string(),
    ] {
        assert!(line.contains(&field), "{field:?} missing in {line}");
    }
    for timed in ["queue_wait_us=", "served_us="] {
        let value: u64 = line
            .split(timed)
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {timed} in {line}"));
        assert!(value < 60_000_000, "{timed}{value}");
    }
    assert!(line.contains(" INFO "), "{line}");
}

#[test]
fn json_lines_carry_the_same_fields() {
    let server = Server::start(&["--access-log", "--log-format", "json"]);
    let clients: Vec<_> = (0..3).map(|_| server.connect()).collect();
    for (n, client) in clients.into_iter().enumerate() {
        let message = vec![b'x'; 10 * (n + 1)];
        assert_eq!(round_trip(client, &message), message);
    }
    let lines = access_lines(&server, 3, "\"message\":\"access\"");
    let mut ids = Vec::new();
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let fields = &event["fields"];
        assert_eq!(event["level"], "INFO");
        assert_eq!(fields["handler"], "echo");
        assert_eq!(fields["reason"], "eof");
        assert_eq!(fields["local"], server.addr().to_string());
        assert!(fields["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert_eq!(fields["bytes_in"], fields["bytes_out"]);
        assert!(fields["queue_wait_us"].is_u64() && fields["served_us"].is_u64());
        ids.push(fields["id"].as_u64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
}

#[test]
fn without_the_flag_there_is_no_access_line() {
    let mut server = Server::start(&[]);
    assert_eq!(round_trip(server.connect(), b"quiet"), b"quiet");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(TIMEOUT).code(), Some(0));
    let logs = server.wait_for_log(" stopped stats=");
    assert!(!logs.contains(" access "), "{logs}");
}
