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
    ] {
        let argv: Vec<&str> = ["bench"].iter().chain(args).copied().collect();
        let output = run(&argv, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
