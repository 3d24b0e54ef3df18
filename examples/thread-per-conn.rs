//! Before echopool, step 2: a thread per connection (the textbook's `TCPEchoServer-Thread.c`).
//! The accept loop starts a new thread for every client and goes straight back to accept(), so
//! clients no longer wait for each other; there are as many threads as clients.
//!
//! ```text
//! cargo run --example thread-per-conn [ADDR]   # default 127.0.0.1:7007; port 0 = any free port
//! ```
//!
//! What goes wrong with it, and what echopool does instead: `docs/from-the-textbook.md`.
//! `bench/compare.sh` measures this same file against echopool.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::exit;
use std::thread;

/// The most bytes one recv() takes: echopool's default `--buffer-size`.
const BUFFER_SIZE: usize = 16 * 1024;

fn main() {
    let addr = address_argument();
    // socket(), bind() and listen(), in one call.
    let listener = TcpListener::bind(addr).unwrap_or_else(|err| {
        eprintln!("cannot listen on {addr}: {err}");
        exit(1)
    });
    let bound = listener
        .local_addr()
        .expect("a bound socket has an address");
    println!("listening on {bound}");
    // accept(), forever.
    for accepted in listener.incoming() {
        // The textbook dies when accept() fails. Skipping the error is the usual fix, and out
        // of file descriptors it spins: the same error comes back at once, again and again.
        let Ok(client) = accepted else { continue };
        // pthread_create(): this client gets a thread of its own. When the system refuses one
        // (memory, a thread limit), `spawn` panics, and on this thread that ends the server.
        thread::spawn(move || handle_client(client));
    }
}

/// recv() and send() back until recv() returns 0, then close(), on the client's own thread.
fn handle_client(mut client: TcpStream) {
    // TCP_NODELAY: send small replies at once (docs/from-the-textbook.md, "Small writes").
    let _ = client.set_nodelay(true);
    let mut buffer = vec![0u8; BUFFER_SIZE];
    loop {
        let received = match client.read(&mut buffer) {
            Ok(0) | Err(_) => break, // the client is done, or gone
            Ok(received) => received,
        };
        if client.write_all(&buffer[..received]).is_err() {
            break;
        }
    }
    // close(): dropping `client` closes the socket; the thread ends here.
}

/// The command line, `[ADDR]`: where to listen (default 127.0.0.1:7007).
fn address_argument() -> SocketAddr {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = match args.as_slice() {
        [] => "127.0.0.1:7007",
        [addr] => addr,
        _ => usage("one argument at most"),
    };
    text.parse()
        .unwrap_or_else(|_| usage(&format!("ADDR {text:?} is not IP:PORT")))
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "thread-per-conn: {problem}\nusage: thread-per-conn [ADDR]   (default 127.0.0.1:7007)"
    );
    exit(2)
}
