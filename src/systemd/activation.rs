//! Socket activation: the service manager binds the listening sockets and passes them as
//! descriptors 3, 4, ... with `LISTEN_PID` (our pid), `LISTEN_FDS` (how many) and
//! `LISTEN_FDNAMES` (their names, `:`-separated), as `sd_listen_fds(3)` describes.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, Socket, Type};

use crate::cli::ConfigError;

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// A listening socket passed by the service manager.
#[derive(Debug)]
pub struct Passed {
    /// The socket, close-on-exec (no program run for a connection inherits it).
    pub listener: TcpListener,
    /// Its descriptor number as passed.
    pub fd: RawFd,
    /// Its name from `LISTEN_FDNAMES` (`FileDescriptorName=`), if given.
    pub name: Option<String>,
}

/// Takes the listening sockets passed to this process, if `LISTEN_PID` is our pid, and removes
/// the three variables from the environment either way, so that no program run for a
/// connection sees them.
///
/// Call it before any other thread starts (it changes the environment).
///
/// # Errors
///
/// A [`ConfigError`] (exit 2) when a variable is malformed, or a passed descriptor is not an
/// open, listening TCP socket; the message names the descriptor and its name.
pub fn take_passed_listeners() -> Result<Vec<Passed>, ConfigError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for variable in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(variable);
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| ConfigError(format!("LISTEN_PID: '{pid}' is not a process id")))?;
    if pid != std::process::id() {
        // Meant for another process (a parent that did not clear them).
        return Ok(Vec::new());
    }
    let count: RawFd = count
        .trim()
        .parse()
        .ok()
        .filter(|&count| (0..=4096).contains(&count))
        .ok_or_else(|| ConfigError(format!("LISTEN_FDS: '{count}' is not a descriptor count")))?;
    let names: Vec<&str> = names
        .as_deref()
        .map_or(Vec::new(), |n| n.split(':').collect());
    (0..count)
        .map(|index| {
            let fd = FIRST_FD + index;
            let name = names
                .get(index as usize)
                .filter(|name| !name.is_empty())
                .map(|name| name.to_string());
            let listener = adopt(fd).map_err(|why| {
                let named = name.as_ref().map_or(String::new(), |n| format!(" ('{n}')"));
                ConfigError(format!(
                    "LISTEN_FDS={count}: descriptor {fd}{named} is not a listening TCP socket: \
                     {why}"
                ))
            })?;
            Ok(Passed { listener, fd, name })
        })
        .collect()
}

/// Owns descriptor `fd` if it is an open, listening TCP socket; says what it is otherwise.
#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> Result<TcpListener, String> {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF if it is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!(
            "it is not open ({})",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the descriptor is open, was passed to this process for it to use, and nothing
    // else in the process owns it: it is taken once, here.
    let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // The manager passes it without close-on-exec, so that it survives exec into us; no
    // program of ours should inherit it.
    socket
        .set_cloexec(true)
        .map_err(|err| format!("cannot set close-on-exec: {err}"))?;
    let kind = match (socket.domain(), socket.r#type()) {
        (Ok(domain), Ok(kind)) => (domain, kind),
        (Err(err), _) | (_, Err(err)) if err.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err("it is not a socket".to_string())
        }
        (Err(err), _) | (_, Err(err)) => return Err(err.to_string()),
    };
    match kind {
        (Domain::IPV4 | Domain::IPV6, Type::STREAM) => {}
        (Domain::UNIX, _) => return Err("it is a Unix socket".to_string()),
        (Domain::IPV4 | Domain::IPV6, Type::DGRAM) => return Err("it is a UDP socket".to_string()),
        (domain, kind) => return Err(format!("it is a {domain:?} {kind:?} socket")),
    }
    match socket.is_listener() {
        Ok(true) => {}
        Ok(false) => return Err("it is not listening (Accept=yes passes connections)".into()),
        Err(err) => return Err(err.to_string()),
    }
    // The accept loop blocks; a manager may pass it non-blocking.
    socket
        .set_nonblocking(false)
        .map_err(|err| err.to_string())?;
    Ok(socket.into())
}
