//! The seed's server: one client at a time, a 32-byte buffer, TCP_NODELAY never set. A 64-byte
//! message is echoed as two 32-byte writes; Nagle holds the second until the client's delayed
//! ACK, which is why it manages a few dozen round trips a second.

use std::io::{Read, Write};

fn main() {
    let args = echopool_peers::args("iterative");
    let listener = echopool_peers::bind(args.addr);
    for mut conn in listener.incoming().flatten() {
        let mut buf = [0u8; 32];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    }
}
