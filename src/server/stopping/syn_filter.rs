//! Closing the door without emptying the room: a socket filter that makes a listening socket
//! drop new connection attempts (SYNs) while it keeps, and lets the server accept, the
//! connections the kernel has already queued.
//!
//! The obvious ways to stop a listener lose those queued connections: `shutdown(2)` and
//! `close(2)` of a listening socket reset every connection still in its accept queue, though
//! each client saw its connect succeed and may have sent its request (through a load balancer
//! that counted it as delivered). On Linux, a classic BPF program attached with
//! `SO_ATTACH_FILTER` runs on every packet the socket receives, and for TCP it runs before the
//! listener looks at the packet, with the TCP header at offset 0 (`tcp_filter()` in the
//! kernel). This one drops packets with the SYN flag: new connects get no answer (the client
//! retries its SYN a second later, by which time the listener is closed and refuses it, and a
//! load balancer has tried another server), while the final ACKs of handshakes in flight still
//! pass, so those connections join the queue too.
//!
//! Sockets created from the listener after this (the handshakes that complete while the queue
//! is drained) inherit the filter; it is harmless there, as an established connection never
//! receives a SYN.

use std::io;
use std::net::TcpListener;

/// Makes `listener` drop every new connection attempt; connections already queued, and
/// handshakes in flight, are kept for `accept`.
///
/// # Errors
///
/// When the kernel refuses the filter (never on Linux for a valid socket), and on systems
/// without socket filters.
pub(crate) fn refuse_new_connections(listener: &TcpListener) -> io::Result<()> {
    attach(listener)
}

#[cfg(target_os = "linux")]
fn attach(listener: &TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).attach_filter(&program())
}

#[cfg(not(target_os = "linux"))]
fn attach(_listener: &TcpListener) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "socket filters (SO_ATTACH_FILTER) are Linux-only",
    ))
}

/// Takes the filter off again: for a socket that outlives this process (one passed in by a
/// service manager, which keeps its own copy for the next instance).
#[cfg(target_os = "linux")]
pub(crate) fn allow_new_connections(listener: &TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).detach_filter()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn allow_new_connections(_listener: &TcpListener) -> io::Result<()> {
    Ok(())
}

/// The program: `if (tcp.flags & SYN) drop; else keep the whole packet`.
#[cfg(target_os = "linux")]
fn program() -> [libc::sock_filter; 4] {
    /// Offset of the flags byte in the TCP header (after ports, sequence and ack numbers,
    /// and the data-offset byte).
    const TCP_FLAGS: u32 = 13;
    const SYN: u32 = 0x02;
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    [
        // A = the TCP flags byte.
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, TCP_FLAGS),
        // SYN set: go to the next instruction (drop); else skip it (keep).
        op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 0, 1, SYN),
        // Returning 0 bytes drops the packet.
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        // Returning more than the packet keeps all of it.
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
    ]
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::time::Duration;

    fn connect(listener: &TcpListener) -> io::Result<TcpStream> {
        TcpStream::connect_timeout(&listener.local_addr().unwrap(), Duration::from_millis(300))
    }

    fn echo_once(client: &mut TcpStream, served: &mut TcpStream) {
        client.write_all(b"still here").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        served.read_to_end(&mut got).unwrap();
        served.write_all(&got).unwrap();
        drop(got);
        served.shutdown(Shutdown::Write).unwrap();
        let mut echo = Vec::new();
        client.read_to_end(&mut echo).unwrap();
        assert_eq!(echo, b"still here");
    }

    fn with_timeouts(stream: TcpStream) -> TcpStream {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    #[test]
    fn new_connects_get_no_answer_while_queued_and_live_connections_are_kept() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut live_client = with_timeouts(connect(&listener).unwrap());
        let (live_served, _) = listener.accept().unwrap();
        let mut live_served = with_timeouts(live_served);
        let mut queued_client = with_timeouts(connect(&listener).unwrap());
        queued_client.write_all(b"sent before").unwrap();

        refuse_new_connections(&listener).unwrap();

        let refused = connect(&listener).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::TimedOut, "{refused}");
        let (queued_served, _) = listener.accept().unwrap();
        let mut queued_served = with_timeouts(queued_served);
        let mut early = [0; 11];
        queued_served.read_exact(&mut early).unwrap();
        assert_eq!(&early, b"sent before");
        echo_once(&mut queued_client, &mut queued_served);
        echo_once(&mut live_client, &mut live_served);

        allow_new_connections(&listener).unwrap();
        let mut later = with_timeouts(connect(&listener).expect("accepting again"));
        let (later_served, _) = listener.accept().unwrap();
        echo_once(&mut later, &mut with_timeouts(later_served));
    }

    #[test]
    fn ipv6_listeners_drop_syns_too() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        let queued = connect(&listener).unwrap();
        refuse_new_connections(&listener).unwrap();
        let refused = connect(&listener).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::TimedOut, "{refused}");
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer, queued.local_addr().unwrap());
    }
}
