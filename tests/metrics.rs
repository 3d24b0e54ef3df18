//! `--metrics`: the Prometheus endpoint, scraped during a small load and read with a real
//! parser (the official Python client's), against what the test did.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::clients::{connect_from, exchange};
use common::{connect, read_exact, round_trip, run, Server, TIMEOUT};

/// One sample as the parser read it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: serde_json::Map<String, serde_json::Value>,
    value: f64,
}

/// The samples of a scrape, parsed by `tests/support/parse_metrics.py`; `None` (the test is
/// skipped) when Python or its `prometheus_client` is missing outside CI.
fn parse(text: &str, test: &str) -> Option<Vec<Sample>> {
    let python = common::tools::require("python3", test)?;
    let has_client = Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !has_client {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: Python's prometheus_client is missing, and under CI this test must run"
        );
        eprintln!("{test}: skipped, Python's prometheus_client is missing (CI installs it)");
        return None;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/parse_metrics.py"
    );
    let mut child = Command::new(python)
        .arg(script)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let sample: serde_json::Value = serde_json::from_str(line).unwrap();
            Sample {
                name: sample["name"].as_str().unwrap().to_string(),
                labels: sample["labels"].as_object().unwrap().clone(),
                value: sample["value"].as_f64().unwrap(),
            }
        })
        .collect();
    Some(samples)
}

/// The value of the sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).and_then(|l| l.as_str()) == Some(v))
    });
    found
        .unwrap_or_else(|| panic!("no {name}{labels:?} among {samples:#?}"))
        .value
}

/// Sends an HTTP/1.1 request and returns the status line and the body.
fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = connect(addr);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no blank line in {response:?}"));
    (head.lines().next().unwrap().to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: echopool\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

#[test]
fn a_scrape_during_load_parses_and_matches_what_the_clients_did() {
    const TEST: &str = "a_scrape_during_load_parses_and_matches_what_the_clients_did";
    let server = Server::start(&[
        "--metrics",
        "127.0.0.1:0",
        "--workers",
        "4",
        "--deny",
        "127.0.0.2",
        "--idle-timeout",
        "1s",
    ]);
    let metrics = server.metrics_addr();
    assert!(server.extra_stdout().is_empty(), "more on stdout");
    // 20 echoes of known sizes, from four threads at once.
    let addr = server.addr();
    let sent: u64 = thread::scope(|scope| {
        let senders: Vec<_> = (0..4)
            .map(|t| {
                scope.spawn(move || {
                    (0..5)
                        .map(|i| {
                            let message = vec![b'a' + t as u8; 100 * (t * 5 + i + 1)];
                            let reply = round_trip(connect(addr), &message);
                            assert_eq!(reply, message);
                            message.len() as u64
                        })
                        .sum::<u64>()
                })
            })
            .collect();
        senders.into_iter().map(|s| s.join().unwrap()).sum()
    });
    // A refused client, and one closed for its silence.
    let denied = connect_from(IpAddr::from([127, 0, 0, 2]), server.addr());
    assert!(exchange(denied, b"let me in").is_empty());
    let mut silent = server.connect();
    assert_eq!(
        silent.read(&mut [0; 8]).unwrap(),
        0,
        "closed for its silence"
    );
    // A client sees its close a moment before the server counts it: wait until the last one
    // is in.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let Some(samples) = parse(&scrape(metrics), TEST) else {
            return;
        };
        let closes = value(&samples, "echopool_connection_duration_seconds_count", &[]);
        if closes == 21.0 || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    // One conversation still open during the scrape (read at once; parsed after).
    let mut live = server.connect();
    live.write_all(b"still here").unwrap();
    assert_eq!(read_exact(&mut live, 10), b"still here");
    let text = scrape(metrics);
    let Some(samples) = parse(&text, TEST) else {
        return;
    };
    let get = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(get("echopool_connections_accepted_total", &[]), 23.0);
    assert_eq!(
        get(
            "echopool_connections_rejected_total",
            &[("reason", "denied")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "echopool_connections_rejected_total",
            &[("reason", "queue-full")]
        ),
        0.0
    );
    assert_eq!(
        get("echopool_connections_closed_total", &[("reason", "eof")]),
        20.0
    );
    assert_eq!(
        get(
            "echopool_connections_closed_total",
            &[("reason", "idle-timeout")]
        ),
        1.0
    );
    let held = ["active", "queued", "parked"]
        .map(|gauge| get(&format!("echopool_connections_{gauge}"), &[]))
        .iter()
        .sum::<f64>();
    assert_eq!(
        held, 1.0,
        "the live conversation is active, queued or parked"
    );
    // Bytes are counted when a connection closes: the live one's are not in yet.
    assert_eq!(get("echopool_bytes_received_total", &[]), sent as f64);
    assert_eq!(get("echopool_bytes_sent_total", &[]), sent as f64);
    assert_eq!(get("echopool_connection_duration_seconds_count", &[]), 21.0);
    assert_eq!(
        get(
            "echopool_connection_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        21.0
    );
    assert!(get("echopool_connection_duration_seconds_sum", &[]) >= 1.0);
    assert_eq!(get("echopool_queue_wait_seconds_count", &[]), 22.0);
    for histogram in ["connection_duration_seconds", "queue_wait_seconds"] {
        let name = format!("echopool_{histogram}_bucket");
        let buckets: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .collect();
        assert!(buckets.len() > 5, "{name}: {buckets:?}");
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{name}: {buckets:?}"
        );
    }
    assert_eq!(get("echopool_accept_errors_total", &[]), 0.0);
    assert_eq!(get("echopool_workers", &[]), 4.0);
    assert_eq!(
        get(
            "echopool_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    live.shutdown(Shutdown::Write).unwrap();
    assert_eq!(live.read(&mut [0; 8]).unwrap(), 0);
}

#[test]
fn only_get_metrics_is_served() {
    let server = Server::start(&["--metrics", "127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET /metrics/more HTTP/1.1\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ] {
        let (status, _) = http(metrics, request);
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{request:?}");
    }
    let (status, body) = http(metrics, "GET /metrics?format=text HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("# TYPE echopool_connections_accepted_total counter"));
}

#[test]
fn scrapers_that_stall_hold_neither_the_endpoint_nor_the_server() {
    let server = Server::start(&["--metrics", "127.0.0.1:0", "--workers", "2"]);
    let metrics = server.metrics_addr();
    // Four scrapers that connect and say nothing take every scrape slot...
    let stalled: Vec<TcpStream> = (0..4).map(|_| connect(metrics)).collect();
    thread::sleep(Duration::from_millis(100));
    // ...so the next is turned away at once, not kept waiting,
    let started = Instant::now();
    let (status, _) = http(metrics, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(started.elapsed() < TIMEOUT);
    // and the server serves on.
    assert_eq!(round_trip(server.connect(), b"unbothered"), b"unbothered");
    drop(stalled);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, _) = http(metrics, "GET /metrics HTTP/1.1\r\n\r\n");
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(Instant::now() < deadline, "the slots never came back");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_metrics_address_in_use_is_a_start_up_error_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run(&["serve", "-l", "127.0.0.1:0", "--metrics", &addr], b"");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    let bad = run(&["serve", "--metrics", "localhost"], b"");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--metrics"));
}
