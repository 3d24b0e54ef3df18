//! What every integration test needs: the real `echopool` binary started on port 0, its ports
//! read back from stdout, its stderr kept for assertions, and nothing that can wait forever.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod clients;
pub mod counters;
pub mod procfs;
pub mod talker;
pub mod tools;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The bound on every wait in the tests: socket reads, child exits, port lines.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_echopool")
}

/// A running `echopool serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// The addresses it printed, in order of its `--listen` flags.
    pub addrs: Vec<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stdout_rest: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `echopool serve ARGS`, adding `--listen 127.0.0.1:0` when ARGS has none, and
    /// waits for every `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(Command::new(binary()), args)
    }

    /// Like [`Server::start`], with a prepared command (environment, a wrapper such as `sh -c`).
    pub fn start_with(mut command: Command, args: &[&str]) -> Server {
        let listeners = args
            .iter()
            .filter(|a| **a == "-l" || **a == "--listen")
            .count();
        command.arg("serve").args(args);
        if listeners == 0 {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        Self::spawn(command, listeners.max(1))
    }

    /// Starts `echopool serve ARGS` as it is, with no `--listen` added (the addresses come from
    /// the environment, say), and waits for `listeners` `listening on` lines.
    pub fn start_listening(mut command: Command, args: &[&str], listeners: usize) -> Server {
        command.arg("serve").args(args);
        Self::spawn(command, listeners)
    }

    fn spawn(mut command: Command, listeners: usize) -> Server {
        clear_inherited_settings(&mut command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start echopool serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let lines = read_lines(child.stdout.take().unwrap());
        let mut server = Server {
            child,
            addrs: Vec::new(),
            stderr,
            stdout_rest: lines,
        };
        for _ in 0..listeners {
            let line = match server.stdout_rest.recv_timeout(TIMEOUT) {
                Ok(line) => line,
                Err(_) => panic!(
                    "no `listening on` line within {TIMEOUT:?}; stderr:\n{}",
                    server.stderr()
                ),
            };
            let addr = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"));
            server.addrs.push(addr.parse().expect("a socket address"));
        }
        server
    }

    /// The first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A connection to the first address, with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// Sends a signal (`libc::SIGTERM`, ...) to the server.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id() as libc::pid_t;
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Waits up to `timeout` for the server to exit; panics (after killing it) if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for echopool") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "echopool did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to [`TIMEOUT`] until stderr contains `needle`; returns all of stderr.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never showed {needle:?}; stderr:\n{text}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stdout lines after the `listening on` lines (the contract says there are none, but for
    /// `metrics on` with `--metrics`).
    pub fn extra_stdout(&self) -> Vec<String> {
        self.stdout_rest.try_iter().collect()
    }

    /// The address of the `metrics on IP:PORT` line that follows the `listening on` lines
    /// (`--metrics`), waiting up to [`TIMEOUT`] for it.
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self
            .stdout_rest
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("no `metrics on` line; stderr:\n{}", self.stderr()));
        line.strip_prefix("metrics on ")
            .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"))
            .parse()
            .expect("a socket address")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to `addr` within [`TIMEOUT`], with read and write timeouts of [`TIMEOUT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to echopool");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Sends `data`, half-closes, and reads the whole reply (a writer thread sends while this
/// thread reads, so a large payload cannot deadlock on full buffers).
pub fn round_trip(stream: TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let payload = data.to_vec();
    let sender = thread::spawn(move || {
        writer.write_all(&payload).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reply = Vec::new();
    (&stream)
        .read_to_end(&mut reply)
        .expect("read the reply within the timeout");
    sender.join().unwrap();
    reply
}

/// Reads exactly `len` bytes, or panics on a timeout or early close.
pub fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).expect("read the echo");
    buf
}

/// Runs `echopool ARGS` to completion with `stdin`, killed after [`TIMEOUT`].
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut command = Command::new(binary());
    command.args(args);
    run_command(command, stdin)
}

/// Runs a prepared command to completion with `stdin`, killed after [`TIMEOUT`].
pub fn run_command(mut command: Command, stdin: &[u8]) -> Output {
    clear_inherited_settings(&mut command);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start echopool");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if done_rx.recv_timeout(TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().expect("wait for echopool");
    drop(done_tx);
    watchdog.join().unwrap();
    feeder.join().unwrap();
    output
}

/// Removes the `ECHOPOOL_*` variables the child would inherit from whoever runs the tests, so
/// that a test sees only the settings it gives; variables the test set itself stay.
fn clear_inherited_settings(command: &mut Command) {
    let own: Vec<_> = command
        .get_envs()
        .map(|(name, _)| name.to_owned())
        .collect();
    for (name, _) in std::env::vars_os() {
        let ours = name.to_string_lossy().starts_with("ECHOPOOL_");
        if ours && !own.contains(&name) {
            command.env_remove(name);
        }
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut text = into.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
}

fn read_lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
