//! Opens N connections, makes one 64-byte round trip on each (so every server has really taken
//! the connection on), prints `ready N`, then holds them, silent, until stdin closes.
//!
//! Usage: idle-conns ADDR N

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let parsed = (argv.len() == 3).then(|| {
        Some((
            argv[1].parse::<std::net::SocketAddr>().ok()?,
            argv[2].parse::<usize>().ok()?,
        ))
    });
    let Some(Some((addr, count))) = parsed else {
        eprintln!("usage: idle-conns ADDR N");
        std::process::exit(2);
    };
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|err| panic!("connection {i}: {err}"));
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.set_nodelay(true).unwrap();
        let mut back = [0u8; 64];
        conn.write_all(&[b'x'; 64])
            .and_then(|()| conn.read_exact(&mut back))
            .unwrap_or_else(|err| panic!("round trip {i}: {err}"));
        held.push(conn);
    }
    println!("ready {count}");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
