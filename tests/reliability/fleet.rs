//! A fleet behind HAProxy (the real one, with `contrib/haproxy/echopool.cfg`): three instances
//! with the PROXY protocol, 200 clients from their own addresses, and a rolling restart (each
//! instance stopped with SIGTERM and started again in turn) that no client notices.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::churn::Churn;
use crate::common::tools::require;
use crate::common::{round_trip, Server, TIMEOUT};
use crate::report;

/// Clients, each from its own address: 127.0.0.2 to 127.0.0.201.
const CLIENTS: u8 = 200;

/// The flags of every instance, but its address.
const INSTANCE: [&str; 8] = [
    "--proxy-protocol",
    "--proxy-from",
    "127.0.0.1",
    "--access-log",
    "--workers",
    "16",
    "--shutdown-timeout",
    "5s",
];

/// HAProxy, stopped when dropped.
struct HaProxy {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl HaProxy {
    fn start(haproxy: &std::path::Path, config: &std::path::Path) -> HaProxy {
        let mut child = Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = Arc::clone(&output);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        HaProxy { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped configuration, with the test's addresses in place of its own.
fn configuration(frontend: SocketAddr, instances: &[SocketAddr]) -> String {
    let shipped = include_str!("../../contrib/haproxy/echopool.cfg");
    let mut config = shipped.to_string();
    let ours = [
        "127.0.0.1:7000",
        "127.0.0.1:7101",
        "127.0.0.1:7102",
        "127.0.0.1:7103",
    ];
    let theirs = std::iter::once(frontend).chain(instances.iter().copied());
    for (shipped, test) in ours.iter().zip(theirs) {
        assert!(
            config.contains(shipped),
            "the shipped config has no {shipped}"
        );
        config = config.replace(shipped, &test.to_string());
    }
    config
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

/// Waits until HAProxy's health check has reached `instance` (it is up for HAProxy then).
fn checked(instance: &Server) {
    instance.wait_for_counters("a health check", |c| c.get("accepted") > 0);
}

#[test]
fn a_rolling_restart_behind_haproxy_loses_no_client() {
    const TEST: &str = "a_rolling_restart_behind_haproxy_loses_no_client";
    let Some(haproxy) = require("haproxy", TEST) else {
        return;
    };
    let mut instances: Vec<Server> = (0..3).map(|_| Server::start(&INSTANCE)).collect();
    let addrs: Vec<SocketAddr> = instances.iter().map(Server::addr).collect();
    let frontend = free_port();
    let dir = std::env::temp_dir().join(format!("echopool-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("echopool.cfg");
    std::fs::write(&config, configuration(frontend, &addrs)).unwrap();
    let proxy = HaProxy::start(&haproxy, &config);
    instances.iter().for_each(checked);
    let deadline = Instant::now() + TIMEOUT;
    while std::net::TcpStream::connect(frontend).is_err() {
        assert!(
            Instant::now() < deadline,
            "haproxy never listened:\n{}",
            proxy.output()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(round_trip(crate::common::connect(frontend), b"hi"), b"hi");

    let churn = Churn::start(
        frontend,
        (2..2 + CLIENTS).map(|n| IpAddr::from([127, 0, 0, n])),
    );
    thread::sleep(Duration::from_millis(500));
    let mut retired = Vec::new();
    let mut stops = Vec::new();
    // Each instance in turn, twice over.
    for (at, addr) in addrs.iter().enumerate().chain(addrs.iter().enumerate()) {
        let signalled = Instant::now();
        instances[at].signal(libc::SIGTERM);
        let code = instances[at].wait_exit(TIMEOUT).code();
        assert_eq!(code, Some(0), "{}", instances[at].stderr());
        stops.push(signalled.elapsed());
        let again = Server::start(&[&INSTANCE[..], &["--listen", &addr.to_string()]].concat());
        let old = std::mem::replace(&mut instances[at], again);
        let counters = old.final_counters();
        assert_eq!(
            counters.get("closed.shutdown"),
            0,
            "cut short: {}",
            counters.line()
        );
        retired.push(old);
        checked(&instances[at]);
    }
    thread::sleep(Duration::from_millis(500));
    let outcome = churn.stop();
    let haproxy_said = proxy.output();
    drop(proxy);
    assert!(
        outcome.failures.is_empty(),
        "{} failures, e.g. {:?}\nhaproxy:\n{haproxy_said}",
        outcome.failures.len(),
        &outcome.failures[..outcome.failures.len().min(5)]
    );
    // Every instance logged the clients' own addresses, never HAProxy's, for their
    // conversations (HAProxy's health checks are served as HAProxy: 127.0.0.1).
    let mut seen = BTreeSet::new();
    for server in retired.iter().chain(&instances) {
        for line in server.stderr().lines().filter(|l| l.contains(" access ")) {
            let fields = line.split(" access ").nth(1).unwrap_or_default();
            let peer = fields
                .split(" peer=")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|peer| peer.parse::<SocketAddr>().ok())
                .unwrap_or_else(|| panic!("no peer in {line}"));
            seen.insert(peer.ip());
        }
    }
    seen.remove(&IpAddr::from([127, 0, 0, 1]));
    let clients: BTreeSet<IpAddr> = (2..2 + CLIENTS)
        .map(|n| IpAddr::from([127, 0, 0, n]))
        .collect();
    assert_eq!(
        seen, clients,
        "the instances saw other addresses than the clients'"
    );
    let _ = std::fs::remove_dir_all(&dir);
    report(
        "fleet behind HAProxy",
        format_args!(
            "HAProxy (send-proxy-v2, tcp-check) over 3 instances, {CLIENTS} clients from their \
             own addresses in short conversations; each instance stopped with SIGTERM and \
             started again in turn, twice (exits after {:.0?} to {:.0?}, none cut short): {} \
             conversations, 0 refused, reset or short; slowest conversation {:.1?} (3 echoes, \
             60 ms); the instances logged all {CLIENTS} client addresses",
            stops.iter().min().unwrap(),
            stops.iter().max().unwrap(),
            outcome.conversations,
            outcome.slowest_conversation
        ),
    );
}
