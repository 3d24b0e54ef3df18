//! Usage and start-up errors: exit 2 naming the flag, exit 1 naming the address.

mod common;

use std::net::TcpListener;

use common::run;

#[test]
fn every_bad_flag_exits_2_with_a_message_that_names_it() {
    for (args, flag) in [
        (&["--workers", "0"][..], "--workers"),
        (&["--workers", "many"], "--workers"),
        (&["--queue", "0"], "--queue"),
        (&["--handler", "shout"], "--handler"),
        (&["--handler", "logging:shout"], "--handler"),
        (&["--listen", "no-such-host.invalid:7007"], "--listen"),
        (&["--listen", "127.0.0.1"], "--listen"),
        (&["--idle-timeout", "soon"], "--idle-timeout"),
        (&["--shutdown-timeout", "5"], "--shutdown-timeout"),
        (&["--buffer-size", "0"], "--buffer-size"),
        (&["--overflow", "drop"], "--overflow"),
        (&["--log-format", "xml"], "--log-format"),
    ] {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(args);
        let output = run(&argv, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} does not name {flag}: {stderr}"
        );
        assert!(
            stderr.contains(args[1]),
            "{args:?} does not name the value: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[test]
fn an_unknown_handler_lists_the_known_ones() {
    let output = run(&["serve", "--handler", "shout"], b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("echo, uppercase, exec:PROGRAM [ARG...], logging, logging:SPEC"),
        "{stderr}"
    );
}

#[test]
fn a_taken_address_exits_1_naming_it_and_the_os_reason() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run(&["serve", "--listen", &addr], b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "the OS reason, once: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "printed a listening line for a failed start"
    );
}

#[test]
fn more_workers_than_the_system_can_start_exit_1_before_listening() {
    let output = run(
        &["serve", "--listen", "127.0.0.1:0", "--workers", "1000000"],
        b"",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(--workers)"), "{stderr}");
    assert!(stderr.contains("started"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "printed a listening line for a failed start"
    );
}

#[test]
fn help_teaches_the_flags_and_handlers() {
    let output = run(&["serve", "--help"], b"");
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--listen",
        "--workers",
        "--overflow",
        "uppercase",
        "logging[:SPEC]",
        "Examples:",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
