//! What every peer shares: the command line (`PEER [ADDR] [--workers N]`) and the
//! `listening on IP:PORT` line that `bench/compare.py` reads, as `echopool serve` prints it.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

/// The bytes each connection reads at a time, as `echopool serve`'s default `--buffer-size`.
pub const BUFFER: usize = 16 << 10;

/// A peer's command line.
pub struct Args {
    /// Where to listen; `127.0.0.1:0` when not given.
    pub addr: SocketAddr,
    /// `--workers N`, for the peers that have a pool.
    pub workers: usize,
}

/// Parses `[ADDR] [--workers N]`, exiting with status 2 and a usage line on anything else.
pub fn args(name: &str) -> Args {
    let usage = || -> ! {
        eprintln!("usage: {name} [ADDR (default 127.0.0.1:0)] [--workers N (default 128)]");
        std::process::exit(2)
    };
    let mut parsed = Args {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 128,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--workers" | "-w" => {
                parsed.workers = argv
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage());
            }
            addr => parsed.addr = addr.parse().unwrap_or_else(|_| usage()),
        }
    }
    parsed
}

/// Prints `listening on IP:PORT` for `listener` and flushes it at once.
pub fn announce(listener: &TcpListener) {
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {addr}")
        .and_then(|()| out.flush())
        .expect("stdout");
}

/// Binds `addr`, announces it, or exits with status 1 naming the address.
pub fn bind(addr: SocketAddr) -> TcpListener {
    let listener = TcpListener::bind(addr).unwrap_or_else(|err| {
        eprintln!("cannot listen on {addr}: {err}");
        std::process::exit(1)
    });
    announce(&listener);
    listener
}

/// The blocking echo every thread-based peer runs on a connection: TCP_NODELAY, a
/// [`BUFFER`]-byte buffer, read and write back until end of stream or an error.
pub fn serve(mut conn: std::net::TcpStream) {
    use std::io::Read;
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; BUFFER];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
