//! `echopool bench` against a live `echopool serve`, for a short bounded time in every mode.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::{run, Server, TIMEOUT};
use serde_json::Value;

fn bench_json(server: &Server, args: &[&str]) -> Value {
    let addr = server.addr().to_string();
    let mut argv = vec!["bench", "--addr", &addr, "--json", "--timeout", "2s"];
    argv.extend_from_slice(args);
    let output = run(&argv, b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{argv:?}: {stderr}");
    let text = String::from_utf8(output.stdout).expect("UTF-8 JSON");
    assert_eq!(
        text.lines().count(),
        1,
        "one JSON object on one line: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

fn assert_clean_load(summary: &Value, mode: &str) {
    assert_eq!(summary["mode"], mode, "{summary}");
    assert!(summary["messages"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["msgs_per_s"].as_f64().unwrap() > 0.0, "{summary}");
    assert!(summary["mb_per_s"].as_f64().unwrap() > 0.0, "{summary}");
    assert_eq!(summary["errors"]["total"], 0, "{summary}");
    let latency = &summary["latency_us"];
    for field in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(latency[field].as_f64().unwrap() > 0.0, "{field}: {summary}");
    }
    assert!(
        latency["p50"].as_f64() <= latency["max"].as_f64(),
        "{summary}"
    );
}

#[test]
fn rr_reports_throughput_latency_and_no_errors() {
    let server = Server::start(&["-q"]);
    let summary = bench_json(
        &server,
        &[
            "--mode", "rr", "-c", "4", "-s", "4KiB", "-d", "300ms", "-w", "100ms",
        ],
    );
    assert_clean_load(&summary, "rr");
    assert_eq!(summary["connections"], 4);
    assert_eq!(summary["size"], 4096);
    let duration = summary["duration_s"].as_f64().unwrap();
    assert!((0.29..2.0).contains(&duration), "{summary}");
}

#[test]
fn oneshot_counts_connections() {
    let server = Server::start(&["-q"]);
    let summary = bench_json(&server, &["--mode", "oneshot", "-c", "2", "-d", "300ms"]);
    assert_clean_load(&summary, "oneshot");
    assert_eq!(
        summary["connections_opened"], summary["messages"],
        "{summary}"
    );
    assert!(summary["conns_per_s"].as_f64().unwrap() > 0.0, "{summary}");
}

#[test]
fn stream_moves_data_both_ways() {
    let server = Server::start(&["-q"]);
    let summary = bench_json(
        &server,
        &["--mode", "stream", "-c", "2", "-s", "64KiB", "-d", "300ms"],
    );
    assert_clean_load(&summary, "stream");
    let bytes = summary["bytes"].as_u64().unwrap();
    assert_eq!(
        bytes,
        summary["messages"].as_u64().unwrap() * 65536,
        "{summary}"
    );
}

#[test]
fn requests_stops_at_the_count() {
    let server = Server::start(&["-q"]);
    let summary = bench_json(&server, &["--mode", "rr", "-c", "3", "-n", "1000"]);
    assert_clean_load(&summary, "rr");
    assert_eq!(summary["messages"], 1000, "{summary}");
    assert_eq!(summary["complete"], true, "{summary}");
}

#[test]
fn the_text_summary_names_throughput_latency_and_errors() {
    let server = Server::start(&["-q"]);
    let addr = server.addr().to_string();
    let output = run(&["bench", "--addr", &addr, "-c", "1", "-d", "200ms"], b"");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "msg/s",
        "conn/s",
        "MB/s",
        "p50",
        "p90",
        "p99 ",
        "p99.9",
        "max",
        "errors      0",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    // Not a terminal, so no progress bar on stderr.
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_wrong_echo_is_counted_as_a_mismatch() {
    // A fake server that echoes every byte but flips the last one of each read.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            buf[n - 1] ^= 0xFF;
            if conn.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let output = run(
        &["bench", "--addr", &addr, "--json", "-c", "1", "-d", "200ms"],
        b"",
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        summary["errors"]["mismatch"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(
        summary["errors"]["total"], summary["errors"]["mismatch"],
        "{summary}"
    );
    assert_eq!(summary["messages"], 0, "{summary}");
    assert_eq!(output.status.code(), Some(1), "nothing completed");
}

#[test]
fn a_stalled_server_is_counted_as_a_timeout() {
    // Accepts and reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        while let Ok(1..) = conn.read(&mut [0u8; 64]) {}
    });
    let started = Instant::now();
    let output = run(
        &[
            "bench",
            "--addr",
            &addr,
            "--json",
            "-c",
            "1",
            "-d",
            "100ms",
            "--timeout",
            "300ms",
        ],
        b"",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopping is bounded by --timeout"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        summary["errors"]["timeout"].as_u64().unwrap() >= 1,
        "{summary}"
    );
}

#[test]
fn a_dead_server_is_counted_not_fatal() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let output = run(
        &["bench", "--addr", &addr, "--json", "-c", "2", "-d", "200ms"],
        b"",
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        summary["errors"]["connect"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no message completed"));
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    for (args, flag) in [
        (&["--mode", "burst"][..], "--mode"),
        (&["--connections", "0"], "--connections"),
        (&["--size", "0"], "--size"),
        (&["--size", "1MiB"], "--size"),
        (&["--duration", "0"], "--duration"),
        (&["--requests", "0"], "--requests"),
        (&["--addr", "nowhere"], "--addr"),
        (&["--connections", "5000"], "--connections"),
        (&["-m", "idle", "--connections", "100001"], "--connections"),
        (&["-m", "idle", "--rate", "100"], "--rate"),
        (&["-m", "idle", "--rate", "0%"], "--rate"),
        (&["-m", "rr", "--rate", "1%"], "--rate"),
        (
            &["-m", "stream", "--connect-concurrency", "8"],
            "--connect-concurrency",
        ),
    ] {
        let argv: Vec<&str> = ["bench"].iter().chain(args).copied().collect();
        let output = run(&argv, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// A server that accepts every connection and holds it, reading and answering nothing, until
/// [`TIMEOUT`] has passed.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let mut held = Vec::new();
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((conn, _)) => held.push(conn),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

fn idle_counts(summary: &Value) -> [u64; 5] {
    let idle = &summary["idle"];
    ["scheduled", "sent", "answered", "unanswered", "unsent"].map(|k| {
        idle[k]
            .as_u64()
            .unwrap_or_else(|| panic!("idle.{k}: {summary}"))
    })
}

#[test]
fn idle_holds_many_connections_and_answers_every_message() {
    // The server holds a worker per connection (parking is not there yet): one each.
    let server = Server::start(&["-q", "-w", "256"]);
    let summary = bench_json(
        &server,
        &["-m", "idle", "-c", "200", "--rate", "300/s", "-d", "1s"],
    );
    assert_clean_load(&summary, "idle");
    let [scheduled, sent, answered, unanswered, unsent] = idle_counts(&summary);
    // About 300 messages in the second; the schedule is random but fixed by its seed.
    assert!((200..400).contains(&scheduled), "{summary}");
    assert_eq!(
        (sent, answered, unanswered, unsent),
        (scheduled, scheduled, 0, 0)
    );
    assert_eq!(summary["messages"], answered, "{summary}");
    assert_eq!(summary["bytes"], answered * 64, "{summary}");
    let idle = &summary["idle"];
    assert_eq!(idle["connections_held"], 200, "{summary}");
    assert_eq!(idle["connections_at_end"], 200, "{summary}");
    assert_eq!(idle["connect_failed"], 0, "{summary}");
    assert_eq!(idle["rate"], "300/s", "{summary}");
    assert_eq!(idle["rate_per_s"], 300.0, "{summary}");
    assert!(idle["connect_s"].as_f64().unwrap() > 0.0, "{summary}");
    let lag = &idle["send_lag_us"];
    assert!(lag["p50"].as_f64() <= lag["max"].as_f64(), "{summary}");
    assert_eq!(summary["duration_s"], 1.0, "{summary}");
}

#[test]
fn idle_stops_after_the_requested_messages_and_prints_its_counts() {
    let server = Server::start(&["-q", "-w", "32"]);
    let summary = bench_json(
        &server,
        &["-m", "idle", "-c", "20", "--rate", "500%", "-n", "100"],
    );
    assert_eq!(idle_counts(&summary), [100, 100, 100, 0, 0], "{summary}");
    assert_eq!(summary["idle"]["rate_per_s"], 100.0, "{summary}");
    assert_eq!(summary["complete"], true, "{summary}");

    let addr = server.addr().to_string();
    let argv = [
        "bench", "-a", &addr, "-m", "idle", "-c", "20", "-r", "500%", "-n", "20",
    ];
    let output = run(&argv, b"");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    for needle in [
        "connect     20 of 20 held in",
        "20 scheduled, 20 sent, 20 answered, 0 unanswered",
        "from the scheduled send time",
        "send lag",
        "errors      0",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn idle_counts_what_a_silent_server_never_answers_and_shows_the_wait() {
    let addr = silent_server();
    let started = Instant::now();
    let output = run(
        &[
            "bench",
            "--addr",
            &addr,
            "--json",
            "-m",
            "idle",
            "-c",
            "10",
            "--rate",
            "100/s",
            "-d",
            "300ms",
            "--timeout",
            "200ms",
        ],
        b"",
    );
    // The schedule, then at most --timeout for the last echoes.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by --timeout"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let drain = summary["idle"]["drain_s"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&drain), "{summary}");
    let [scheduled, sent, answered, unanswered, unsent] = idle_counts(&summary);
    assert!(scheduled > 0, "{summary}");
    assert_eq!(
        (sent, answered, unanswered, unsent),
        (scheduled, 0, scheduled, 0)
    );
    assert_eq!(summary["errors"]["timeout"], unanswered, "{summary}");
    assert_eq!(summary["idle"]["connections_at_end"], 10, "{summary}");
    // Not hidden: every message is in the percentiles at the time it was waited for.
    let latency = &summary["latency_us"];
    for field in ["p50", "p99", "max"] {
        assert!(
            latency[field].as_f64().unwrap() >= 200_000.0,
            "{field}: {summary}"
        );
    }
    assert_eq!(output.status.code(), Some(1), "nothing answered");
}

#[test]
fn idle_counts_connections_the_server_closes_and_sends_on_the_others() {
    // Reads what comes first on each connection, then closes it unanswered.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let mut held = Vec::new();
        while Instant::now() < deadline {
            if let Ok((conn, _)) = listener.accept() {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_millis(10)))
                    .unwrap();
                held.push(conn);
            }
            // Kept while its read times out (nothing came yet), dropped once something came.
            held.retain_mut(|conn| conn.read(&mut [0u8; 4096]).is_err());
            thread::sleep(Duration::from_millis(1));
        }
    });
    let output = run(
        &[
            "bench",
            "--addr",
            &addr,
            "--json",
            "-m",
            "idle",
            "-c",
            "4",
            "--rate",
            "200/s",
            "-d",
            "500ms",
            "--timeout",
            "2s",
        ],
        b"",
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let [scheduled, sent, answered, unanswered, unsent] = idle_counts(&summary);
    assert_eq!(answered, 0, "{summary}");
    assert!(unanswered >= 1 && unsent >= 1, "{summary}");
    assert_eq!(scheduled, sent + unsent, "{summary}");
    assert_eq!(sent, unanswered, "{summary}");
    let errors = &summary["errors"];
    let ended = errors["closed"].as_u64().unwrap() + errors["reset"].as_u64().unwrap();
    assert_eq!(ended, 4, "each connection ends once: {summary}");
    assert_eq!(summary["idle"]["connections_held"], 4, "{summary}");
    assert_eq!(summary["idle"]["connections_at_end"], 0, "{summary}");
}

#[test]
fn idle_names_a_descriptor_limit_too_low_for_the_connections() {
    // `ulimit -n` in sh sets both limits, so the soft one cannot be raised past 100.
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 100 && exec \"$0\" \"$@\"",
        common::binary(),
        "bench",
        "-m",
        "idle",
        "-c",
        "500",
        "-a",
        "127.0.0.1:9",
    ]);
    let output = common::run_command(command, b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--connections 500"), "{stderr}");
    assert!(
        stderr.contains("hard limit (ulimit -Hn) is 100"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no summary for a run that did not start"
    );
}
