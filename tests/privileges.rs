//! `--user`: bind a port below 1024 as root, then serve as `nobody`, threads and programs
//! included. Needs root (tests here run as root); otherwise each test says it was skipped.
#![cfg(target_os = "linux")]

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;

use common::{run, Server};

fn is_root() -> bool {
    // SAFETY: geteuid only reads the process's id.
    unsafe { libc::geteuid() == 0 }
}

/// `id -u nobody` and `id -g nobody`, from the system's own tool.
fn nobody() -> (String, String) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        assert!(out.status.success(), "no user nobody here");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    (id("-u"), id("-g"))
}

/// A free privileged port on loopback.
fn low_port() -> u16 {
    (900..1024)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below 1024")
}

#[test]
fn binds_a_low_port_then_every_thread_and_program_runs_as_nobody() {
    if !is_root() {
        eprintln!("binds_a_low_port_then_...: skipped, needs root (binding below 1024, setuid)");
        return;
    }
    let (uid, gid) = nobody();
    let listen = format!("127.0.0.1:{}", low_port());
    let server = Server::start(&["-l", &listen, "--user", "nobody", "-H", "exec:id -u"]);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap();
    let mut threads = 0;
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap();
        let field = |key: &str| {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace()
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(field("Uid:"), [uid.as_str(); 4], "{status}");
        assert_eq!(field("Gid:"), [gid.as_str(); 4], "{status}");
        assert!(!field("Groups:").contains(&"0".to_string()), "{status}");
        threads += 1;
    }
    assert!(threads > 2, "only {threads} threads checked");
    let mut reply = String::new();
    server.connect().read_to_string(&mut reply).unwrap();
    assert_eq!(reply.trim(), uid, "the program's uid");
    server.wait_for_log("dropped privileges");
}

#[test]
fn a_program_the_user_may_not_run_is_refused_before_serving() {
    if !is_root() {
        eprintln!("a_program_the_user_may_not_run_...: skipped, needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("echopool-private-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("tool");
    std::fs::write(&program, "#!/bin/sh\ncat\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let spec = format!("exec:{}", program.display());
    let output = run(
        &[
            "serve",
            "-l",
            "127.0.0.1:0",
            "--user",
            "nobody",
            "-H",
            &spec,
        ],
        b"",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--user nobody") && stderr.contains("tool"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "it printed a listening line");
}

#[test]
fn an_unknown_user_is_a_usage_error() {
    let output = run(&["serve", "--user", "no-such-user-here"], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--user") && stderr.contains("no such user"),
        "{stderr}"
    );
}
