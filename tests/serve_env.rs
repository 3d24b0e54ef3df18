//! `ECHOPOOL_<FLAG>`: `serve` flags from the environment, as a container passes them. The
//! helpers drop any `ECHOPOOL_*` the test process inherited, so each test sees only its own.

mod common;

use std::io::Read;
use std::net::IpAddr;
use std::process::{Command, Output};

use common::clients::{connect_from, exchange};
use common::{binary, round_trip, run_command, Server};

/// `echopool serve` with `vars` set, expected to exit at once with a usage error.
fn serve_fails(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command.arg("serve").args(args);
    // Should a bad value be taken after all, the server binds here, not on 7007 (and the
    // watchdog ends it).
    if !args.contains(&"--listen") {
        command.env("ECHOPOOL_LISTEN", "127.0.0.1:0");
    }
    command.envs(vars.iter().copied());
    run_command(command, b"")
}

fn with_env(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary());
    command.envs(vars.iter().copied());
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_variable_sets_its_flag() {
    let server = Server::start_with(with_env(&[("ECHOPOOL_HANDLER", "uppercase")]), &["-q"]);
    assert_eq!(round_trip(server.connect(), b"hello"), b"HELLO");
}

#[test]
fn the_command_line_wins_over_the_variable() {
    let env = with_env(&[("ECHOPOOL_HANDLER", "uppercase")]);
    let server = Server::start_with(env, &["-q", "--handler", "echo"]);
    assert_eq!(round_trip(server.connect(), b"hello"), b"hello");
}

#[test]
fn a_bad_variable_does_not_matter_when_its_flag_is_given() {
    let env = with_env(&[
        ("ECHOPOOL_IDLE_TIMEOUT", "soon"),
        ("ECHOPOOL_ALLOW", "nowhere"),
    ]);
    let server = Server::start_with(env, &["-q", "--idle-timeout", "5s", "--allow", "127.0.0.1"]);
    assert_eq!(round_trip(server.connect(), b"hello"), b"hello");
}

#[test]
fn idle_timeout_from_the_environment_closes_a_silent_connection() {
    // The default is 60s; the read below gives up after the tests' 10s timeout.
    let env = with_env(&[("ECHOPOOL_IDLE_TIMEOUT", "200ms")]);
    let server = Server::start_with(env, &["-q"]);
    let mut stream = server.connect();
    let mut buf = [0; 16];
    let read = stream.read(&mut buf);
    assert!(matches!(read, Ok(0)), "expected a close, got {read:?}");
}

#[test]
fn listen_takes_a_comma_list_from_its_variable() {
    let env = with_env(&[("ECHOPOOL_LISTEN", "127.0.0.1:0,127.0.0.1:0")]);
    let server = Server::start_listening(env, &["-q"], 2);
    assert_ne!(server.addrs[0], server.addrs[1]);
    for addr in &server.addrs {
        assert_eq!(round_trip(common::connect(*addr), b"hi"), b"hi", "{addr}");
    }
}

#[test]
fn deny_takes_a_comma_list_and_applies_every_entry() {
    let env = with_env(&[("ECHOPOOL_DENY", "10.0.0.0/8,127.0.0.2")]);
    let server = Server::start_with(env, &["-q"]);
    let served = |source: [u8; 4]| {
        let stream = connect_from(IpAddr::from(source), server.addr());
        exchange(stream, b"who am I") == b"who am I"
    };
    assert!(!served([127, 0, 0, 2]), "127.0.0.2 was served");
    assert!(served([127, 0, 0, 1]), "127.0.0.1 was refused");
}

#[test]
fn a_bad_variable_exits_2_naming_the_variable_and_the_value() {
    for (var, value, bad, flag) in [
        ("ECHOPOOL_IDLE_TIMEOUT", "soon", "soon", "--idle-timeout"),
        ("ECHOPOOL_OVERFLOW", "drop", "drop", "--overflow"),
        ("ECHOPOOL_WORKERS", "0", "0", "--workers"),
        ("ECHOPOOL_HANDLER", "shout", "shout", "--handler"),
        // In a list, the entry that is wrong.
        (
            "ECHOPOOL_ALLOW",
            "10.0.0.0/8,10.0.0.0/33",
            "10.0.0.0/33",
            "--allow",
        ),
    ] {
        let output = serve_fails(&[(var, value)], &[]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(var), "{var}={value}: {err}");
        assert!(err.contains(&format!("'{bad}'")), "{var}={value}: {err}");
        assert!(!err.contains(flag), "{var}={value} names the flag: {err}");
    }
}

#[test]
fn a_variable_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let mut command = Command::new(binary());
    command.args(["serve", "--listen", "127.0.0.1:0"]).env(
        "ECHOPOOL_MAX_BYTES",
        std::ffi::OsStr::from_bytes(b"10\xffMiB"),
    );
    let output = run_command(command, b"");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("ECHOPOOL_MAX_BYTES"), "{err}");
}

#[test]
fn a_bad_flag_is_still_named_as_the_flag() {
    let output = serve_fails(
        &[("ECHOPOOL_IDLE_TIMEOUT", "5s")],
        &["--idle-timeout", "soon"],
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("--idle-timeout"), "{err}");
    assert!(!err.contains("ECHOPOOL_IDLE_TIMEOUT"), "{err}");
}

/// Read from `serve --help`, which is made from the definition, so a flag added later is
/// covered without touching this test: every variable with a value no flag accepts is a usage
/// error that names that variable.
#[test]
fn every_variable_names_itself_when_its_value_is_bad() {
    let help = common::run(&["serve", "--help"], b"");
    let help = String::from_utf8_lossy(&help.stdout);
    let variables: Vec<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split_once('=').map(|(var, _)| var.to_string()))
        .collect();
    assert!(variables.len() >= 15, "only {variables:?}");
    for var in &variables {
        let output = serve_fails(&[(var, "not a value!")], &[]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains(var), "{var}: {err}");
        assert!(err.contains("'not a value!'"), "{var}: {err}");
    }
}

#[test]
fn help_shows_each_variable() {
    let output = common::run(&["serve", "--help"], b"");
    let help = String::from_utf8_lossy(&output.stdout);
    for line in [
        "[env: ECHOPOOL_LISTEN=]",
        "[env: ECHOPOOL_IDLE_TIMEOUT=]",
        "ECHOPOOL_<FLAG>",
    ] {
        assert!(help.contains(line), "no {line} in\n{help}");
    }
}
