//! The floor for a blocking design's per-message cost: a new thread for every connection,
//! TCP_NODELAY, a 16 KiB buffer, read and write back until EOF.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;

fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; echopool_peers::BUFFER];
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

fn main() {
    let args = echopool_peers::args("thread-per-conn");
    let listener = echopool_peers::bind(args.addr);
    for conn in listener.incoming().flatten() {
        thread::spawn(move || serve(conn));
    }
}
