//! What users pick instead: tokio's multi-thread runtime (one worker per core it may run on),
//! a task per connection, TCP_NODELAY, a 16 KiB buffer (echopool's default `--buffer-size`).
//!
//! Usage: tokio-echo [ADDR]   (default 127.0.0.1:0; prints `listening on IP:PORT`, as
//! `echopool serve` does, for `bench/compare.py` to read)

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUFFER: usize = 16 << 10;

async fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; BUFFER];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = match args.as_slice() {
        [] => "127.0.0.1:0".parse().unwrap(),
        [addr] => addr.parse().unwrap_or_else(|_| usage()),
        _ => usage(),
    };
    // Bound with std, as the blocking servers are (same backlog), then handed to tokio.
    let std_listener = std::net::TcpListener::bind(addr).unwrap_or_else(|err| {
        eprintln!("cannot listen on {addr}: {err}");
        std::process::exit(1)
    });
    let bound = std_listener.local_addr().expect("a bound listener has an address");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {bound}")
        .and_then(|()| out.flush())
        .expect("stdout");
    drop(out);
    std_listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let listener = TcpListener::from_std(std_listener).expect("a tokio listener");
    loop {
        if let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn));
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: tokio-echo [ADDR (default 127.0.0.1:0)]");
    std::process::exit(2)
}
