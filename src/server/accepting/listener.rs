//! Binding listening sockets with the options a server needs.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::server::serving::limits::ConnLimits;
use crate::server::Config;

/// Binds `addr` and starts listening with room for `config.backlog` pending connections.
///
/// `SO_REUSEADDR` lets a restarted server bind while old connections sit in TIME_WAIT; an IPv6
/// socket is IPv6-only so that `[::]:P` and `0.0.0.0:P` can be listened on side by side;
/// `--reuse-port` sets `SO_REUSEPORT`, so that other processes (of the same user) that set it
/// too can listen on the same port. The listener carries the options its connections start
/// with (see [`ConnLimits::apply_to`]).
pub(crate) fn bind(
    addr: SocketAddr,
    config: &Config,
    limits: &ConnLimits,
) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if config.reuse_port {
        set_reuse_port(&socket)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    if let Some(wait) = config.defer_accept {
        set_defer_accept(&socket, wait)?;
    }
    limits.apply_to(SockRef::from(&socket))?;
    socket.listen(config.backlog)?;
    Ok(socket.into())
}

/// Prepares a socket that is bound and listening already (passed by a service manager) as
/// [`bind`] prepares its own: blocking (its accept loop makes it non-blocking), with the
/// options connections inherit and `--defer-accept`.
pub(crate) fn adopt(
    listener: TcpListener,
    config: &Config,
    limits: &ConnLimits,
) -> io::Result<TcpListener> {
    listener.set_nonblocking(false)?;
    let socket = Socket::from(std::os::fd::OwnedFd::from(listener));
    if let Some(wait) = config.defer_accept {
        set_defer_accept(&socket, wait)?;
    }
    limits.apply_to(SockRef::from(&socket))?;
    Ok(socket.into())
}

/// Sets `TCP_DEFER_ACCEPT` (whole seconds, at least one), which socket2 does not wrap.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_defer_accept(socket: &Socket, wait: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let seconds = libc::c_int::try_from(wait.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket, and a pointer to a c_int that lives across the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(unix)]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(unix))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT needs a Unix system",
    ))
}

#[cfg(not(target_os = "linux"))]
fn set_defer_accept(_socket: &Socket, _wait: Duration) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_DEFER_ACCEPT is Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::thread;
    use std::time::Instant;

    fn bind_with(addr: &str, config: Config) -> io::Result<TcpListener> {
        bind(
            addr.parse().unwrap(),
            &config,
            &ConnLimits::from_config(&config),
        )
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_sockets_inherit_nodelay_and_timeouts() {
        let config = Config {
            idle_timeout: Some(Duration::from_secs(7)),
            write_timeout: Some(Duration::from_secs(3)),
            ..Config::default()
        };
        let listener = bind_with("127.0.0.1:0", config).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        assert_eq!(
            accepted.read_timeout().unwrap(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            accepted.write_timeout().unwrap(),
            Some(Duration::from_secs(3))
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn defer_accept_holds_silent_connects_until_they_speak() {
        use std::io::Write;
        let config = Config {
            defer_accept: Some(Duration::from_secs(30)),
            ..Config::default()
        };
        let listener = bind_with("127.0.0.1:0", config).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        thread::sleep(Duration::from_millis(100));
        let silent = listener.accept();
        assert!(
            silent
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock),
            "a silent connect was accepted: {silent:?}"
        );
        client.write_all(b"hi").unwrap();
        let started = Instant::now();
        while let Err(err) = listener.accept() {
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never accepted"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_adopted_listener_is_blocking_and_passes_on_the_options() {
        let config = Config {
            idle_timeout: Some(Duration::from_secs(9)),
            ..Config::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = adopt(listener, &config, &ConnLimits::from_config(&config)).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        assert_eq!(
            accepted.read_timeout().unwrap(),
            Some(Duration::from_secs(9))
        );
    }

    #[test]
    fn reuse_port_lets_two_listeners_share_a_port_and_only_then() {
        let reusing = || Config {
            reuse_port: true,
            ..Config::default()
        };
        let first = bind_with("127.0.0.1:0", reusing()).unwrap();
        let addr = first.local_addr().unwrap().to_string();
        let second = bind_with(&addr, reusing()).expect("a second listener on the same port");
        assert_eq!(second.local_addr().unwrap(), first.local_addr().unwrap());
        let refused = bind_with(&addr, Config::default()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::AddrInUse, "{refused}");
    }

    #[test]
    fn ipv4_and_ipv6_wildcards_share_a_port() {
        let v4 = bind_with("0.0.0.0:0", Config::default()).unwrap();
        let port = v4.local_addr().unwrap().port();
        match bind_with(&format!("[::]:{port}"), Config::default()) {
            Ok(v6) => assert_eq!(v6.local_addr().unwrap().port(), port),
            // A machine without IPv6 cannot try this.
            Err(err) if err.kind() == io::ErrorKind::AddrNotAvailable => {}
            Err(err) if err.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            Err(err) => panic!("{err}"),
        }
    }
}
