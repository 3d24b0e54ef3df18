//! A listening socket passed in (as a service manager passes one) is reopened to new connects
//! after the graceful stop has taken its queue: the service manager keeps it for the next
//! instance, which must find it accepting.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use echopool::handlers::Echo;
use echopool::server::{Config, Server};

#[test]
fn a_passed_socket_outlives_the_stop_open_to_new_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The service manager's own copy.
    let kept = listener.try_clone().unwrap();
    let config = Config {
        listen: Vec::new(),
        ..Config::default()
    };
    let server = Server::bind_with(config, vec![listener], Arc::new(Echo))
        .unwrap()
        .spawn()
        .unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"before").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut echo = String::new();
    client.read_to_string(&mut echo).unwrap();
    assert_eq!(echo, "before");
    let stats = server.stop();
    assert_eq!(stats.accepted, 1);
    // The next instance's first client: queued by the kernel, not dropped by a stale filter.
    let next = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("the passed socket takes connections again");
    let (_, peer) = kept.accept().unwrap();
    assert_eq!(peer, next.local_addr().unwrap());
}
