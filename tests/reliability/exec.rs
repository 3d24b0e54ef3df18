//! `exec:` programs that never exit: ended with their whole process group at `--max-duration`
//! and at the shutdown deadline (SIGTERM, then SIGKILL for one that ignores it), with nothing
//! left running and nothing left unreaped.

use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::procfs::{children_of, running_in_group, Process};
use crate::common::{Server, TIMEOUT};
use crate::report;

/// A program that ignores SIGTERM, with a background job of its own in its group.
const STUBBORN: &str = r#"exec:sh -c 'trap "" TERM; sleep 1000 & sleep 1000'"#;

/// Waits (bounded) for the server's program and the two sleeps in its group; returns the
/// program.
fn wait_for_program(server: &Server) -> Process {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(program) = children_of(server.pid()).first().copied() {
            if running_in_group(program.pid).len() >= 3 {
                return program;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no program:\n{}",
            server.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) until nothing of `group` runs; returns how long that took.
fn wait_for_group_gone(group: u32) -> Duration {
    let started = Instant::now();
    loop {
        let left = running_in_group(group);
        if left.is_empty() {
            return started.elapsed();
        }
        assert!(started.elapsed() < TIMEOUT, "left running: {left:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn max_duration_ends_a_program_that_never_exits_and_its_group() {
    let server = Server::start(&["-w", "2", "--max-duration", "500ms", "-H", STUBBORN]);
    let mut stream = server.connect();
    let started = Instant::now();
    let program = wait_for_program(&server);
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("closed within the timeout");
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(450),
        "closed early: {closed_after:?}"
    );
    wait_for_group_gone(program.pgrp);
    assert!(
        children_of(server.pid()).is_empty(),
        "a child is left (a zombie?)"
    );
    let log = server.wait_for_log("program killed by a signal");
    assert!(log.contains("ending the program: --max-duration"), "{log}");
    assert!(log.contains("signal=\"SIGKILL\""), "{log}");
    server.wait_for_counters("closed[max-duration=1]", |c| {
        c.get("closed.max-duration") == 1
    });
    report(
        "exec: --max-duration 500ms",
        format_args!(
            "a program ignoring SIGTERM, with a background job: its group got SIGTERM at 500 ms, \
             SIGKILL 1 s later; client closed after {closed_after:.1?}; nothing of the group \
             left, no child left unreaped; closed[max-duration=1]"
        ),
    );
}

#[test]
fn the_shutdown_deadline_ends_programs_and_the_server_exits_soon_after() {
    let mut server = Server::start(&["--shutdown-timeout", "500ms", "-H", STUBBORN]);
    let _stream = server.connect();
    let program = wait_for_program(&server);
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(TIMEOUT);
    let exited_after = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        exited_after < Duration::from_secs(5),
        "exited {exited_after:?} after SIGTERM"
    );
    let gone_after = wait_for_group_gone(program.pgrp);
    let counters = server.final_counters();
    assert_eq!(counters.get("closed.shutdown"), 1, "{}", counters.line());
    assert!(server
        .stderr()
        .contains("ending the program: shutdown timeout"));
    report(
        "exec: SIGTERM, 500ms drain",
        format_args!(
            "a program ignoring SIGTERM, with a background job: ended with its group at the \
             deadline; server exited 0 {exited_after:.1?} after SIGTERM, its group gone \
             {gone_after:.1?} after that; closed[shutdown=1]"
        ),
    );
}
