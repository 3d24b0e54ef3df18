//! What users pick instead: tokio's multi-thread runtime (one worker per core it may run on),
//! a task per connection, TCP_NODELAY, a 16 KiB buffer.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; echopool_peers::BUFFER];
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
    let args = echopool_peers::args("tokio-echo");
    let std_listener = echopool_peers::bind(args.addr);
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
