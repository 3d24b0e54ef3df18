//! Running a block as a reader would: `bash -euo pipefail`, from the repository root, with the
//! programs the setup block builds on the `PATH`; in a process group of its own, so that a
//! block that hangs, or leaves a server behind, is caught and everything it started is killed.

use std::fs::{self, File};
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The longest a block may run; the slowest takes about 4 s.
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long what a block started in the background may take to end after it (`sleep 2`).
const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the examples may take to build.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// A folder of links to the programs the setup block builds (`echopool` and every example),
/// removed when dropped.
pub struct Programs {
    pub dir: PathBuf,
}

impl Programs {
    /// Builds the examples in the profile this test was built in (a no-op when `cargo test`
    /// built them already) and links them, with `echopool`, into a new folder.
    pub fn build(repo: &Path) -> Programs {
        let dir = std::env::temp_dir().join(format!("echopool-docs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the programs folder");
        let programs = Programs { dir };
        let echopool = Path::new(env!("CARGO_BIN_EXE_echopool"));
        symlink(echopool, programs.dir.join("echopool")).expect("link echopool");
        for (name, path) in build_examples(repo) {
            symlink(&path, programs.dir.join(&name)).expect("link an example");
        }
        programs
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `cargo build --examples` into this test's own target folder and profile; returns each
/// example's name and executable, as cargo reports them.
fn build_examples(repo: &Path) -> Vec<(String, PathBuf)> {
    let cargo = std::env::var("CARGO").expect("CARGO is set: run this test with `cargo test`");
    let exe = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/<this test>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let mut command = Command::new(cargo);
    command.current_dir(repo).args([
        "build",
        "--examples",
        "--message-format=json-render-diagnostics",
    ]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
        None => panic!("no profile folder in {}", exe.display()),
    }
    let target_dir = profile_dir.parent().expect("the target folder");
    if target_dir.join("CACHEDIR.TAG").exists() {
        command.arg("--target-dir").arg(target_dir);
    }
    let log = std::env::temp_dir().join(format!("echopool-docs-build-{}", std::process::id()));
    command
        .stdin(Stdio::null())
        .stdout(File::create(&log).expect("create the build log"))
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("start cargo build --examples");
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cargo build --examples took longer than {BUILD_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let messages = fs::read_to_string(&log).expect("read the build log");
    let _ = fs::remove_file(&log);
    assert!(status.success(), "cargo build --examples failed: {status}");
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "example"))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_string();
            Some((name, PathBuf::from(m["executable"].as_str()?)))
        })
        .collect()
}

/// Runs `code` as a block of the page; on failure says why, with everything it printed.
pub fn block(code: &str, programs: &Programs, repo: &Path, name: &str) -> Result<(), String> {
    bounded(code, &programs.dir, repo, name, BLOCK_TIMEOUT)
}

/// Runs `code` from `work_dir` with `programs` first on the `PATH`, for at most `timeout`.
fn bounded(
    code: &str,
    programs: &Path,
    work_dir: &Path,
    name: &str,
    timeout: Duration,
) -> Result<(), String> {
    let script = programs.join(format!("{name}.sh"));
    let output = programs.join(format!("{name}.out"));
    fs::write(&script, code).expect("write the block");
    let out = File::create(&output).expect("create the block's output");
    let path = format!(
        "{}:{}",
        programs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail"])
        .arg(&script)
        .current_dir(work_dir)
        .env("PATH", path)
        // What a reader's shell would not have: these change the programs' output or behaviour
        // (`ECHOPOOL_*` would set the servers' flags).
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .env_remove("RUST_MIN_STACK");
    for (key, _) in std::env::vars() {
        if key.starts_with("ECHOPOOL_") {
            command.env_remove(key);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("share the output file"))
        .stderr(out)
        .process_group(0);
    let mut child = command.spawn().expect("start bash");
    let group = child.id() as i32;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let left = match status {
        Some(_) => wait_for_group(group, LEFTOVER_TIMEOUT),
        None => Vec::new(),
    };
    // Whatever happened, nothing the block started outlives it.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let printed = fs::read_to_string(&output).unwrap_or_default();
    match status {
        None => Err(format!(
            "ran longer than {timeout:?}; it printed:\n{printed}"
        )),
        Some(status) if !status.success() => {
            Err(format!("exited with {status}; it printed:\n{printed}"))
        }
        Some(_) if !left.is_empty() => Err(format!(
            "left these running {LEFTOVER_TIMEOUT:?} after it ended: {left:?}; it printed:\n\
             {printed}"
        )),
        Some(_) => Ok(()),
    }
}

/// Waits up to `timeout` for every live process of `group` to end; returns the command lines
/// of those still running. Zombies do not count: their parent is gone and something else reaps
/// them.
fn wait_for_group(group: i32, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let running = members(group);
        if running.is_empty() || Instant::now() > deadline {
            return running;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The command lines of the processes of `group` that are not zombies, from `/proc`.
fn members(group: i32) -> Vec<String> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(is_number))
        .filter_map(|entry| {
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid pgrp ...: the name may hold spaces, so read after `)`.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let (state, pgrp) = (fields.first()?, fields.get(2)?.parse::<i32>().ok()?);
            (pgrp == group && *state != "Z").then(|| {
                let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            })
        })
        .collect()
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn a_failure_a_hang_or_a_leftover_fails_the_block_and_nothing_outlives_it() {
    let dir = std::env::temp_dir().join(format!("echopool-docs-runner-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let run = |code: &str| bounded(code, &dir, &dir, "probe", Duration::from_secs(2));
    assert_eq!(run("echo fine\n"), Ok(()));
    let failed = run("echo before\nfalse\necho after\n").unwrap_err();
    assert!(
        failed.contains("exit status: 1") && failed.contains("before"),
        "{failed}"
    );
    assert!(!failed.contains("after"), "set -e: {failed}");
    assert!(run("false | true\n").is_err(), "pipefail");
    assert!(run("echo $undefined\n").is_err(), "set -u");
    let hung = run("sleep 1000 & sleep 1000\n").unwrap_err();
    assert!(hung.contains("ran longer than"), "{hung}");
    let left = run("sleep 1000 &\n").unwrap_err();
    assert!(
        left.contains("left these running") && left.contains("sleep 1000"),
        "{left}"
    );
    thread::sleep(Duration::from_millis(200));
    let sleepers = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x001000\x00"))
        .count();
    assert_eq!(sleepers, 0, "a killed block's processes are all gone");
    let _ = fs::remove_dir_all(&dir);
}
