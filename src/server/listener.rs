//! Binding listening sockets with the options a server needs.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `addr` and starts listening with room for `backlog` pending connections.
///
/// `SO_REUSEADDR` lets a restarted server bind while old connections sit in TIME_WAIT; an IPv6
/// socket is IPv6-only so that `[::]:P` and `0.0.0.0:P` can be listened on side by side.
pub(crate) fn bind(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Makes a thread blocked in `accept` on this listener return, and refuses new connects.
///
/// On Linux, `shutdown` of a listening socket wakes every `accept` on it with an error and
/// takes the socket out of the listen table at once, with no self-connect and no polling.
pub(crate) fn stop(listener: &TcpListener) {
    let socket = socket2::SockRef::from(listener);
    // ENOTCONN here only means it was stopped already.
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::thread;
    use std::time::{Duration, Instant};

    #[test]
    fn stop_wakes_a_blocked_accept_and_refuses_new_connects() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let stopper = listener.try_clone().unwrap();
        let started = Instant::now();
        let waker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            stop(&stopper);
        });
        assert!(listener.accept().is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
        waker.join().unwrap();
        let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        assert!(refused.is_err(), "a stopped listener accepted a connect");
    }

    #[test]
    fn ipv4_and_ipv6_wildcards_share_a_port() {
        let v4 = bind("0.0.0.0:0".parse().unwrap(), 16).unwrap();
        let port = v4.local_addr().unwrap().port();
        match bind(SocketAddr::from(([0u16; 8], port)), 16) {
            Ok(v6) => assert_eq!(v6.local_addr().unwrap().port(), port),
            // A machine without IPv6 cannot try this.
            Err(err) if err.kind() == io::ErrorKind::AddrNotAvailable => {}
            Err(err) if err.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            Err(err) => panic!("{err}"),
        }
    }
}
