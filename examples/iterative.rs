//! Before echopool, step 1: the textbook's iterative echo server (Donahoo & Calvert, *TCP/IP
//! Sockets in C*, `TCPEchoServer.c`), call for call. One client at a time, a 32-byte receive
//! buffer, and Nagle's algorithm left on, as in the book.
//!
//! ```text
//! cargo run --example iterative [ADDR]      # default 127.0.0.1:7007; port 0 = any free port
//! ```
//!
//! What goes wrong with it, and what echopool does instead: `docs/from-the-textbook.md`.
//! `bench/compare.sh` measures this same file against echopool.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::exit;

/// The textbook's `RCVBUFSIZE`: the most bytes one `recv` takes.
const RCVBUFSIZE: usize = 32;

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
    loop {
        // accept(): the next client. Until `handle_client` returns, nobody else is served.
        match listener.accept() {
            Ok((client, _peer)) => handle_client(client),
            Err(err) => {
                eprintln!("accept() failed: {err}");
                exit(1) // the textbook's DieWithSystemMessage
            }
        }
    }
}

/// The textbook's `HandleTCPClient`: recv() and send() back until recv() returns 0 (the client
/// has closed its side), then close().
fn handle_client(mut client: TcpStream) {
    let mut buffer = [0u8; RCVBUFSIZE];
    loop {
        // recv(): up to 32 bytes of whatever has arrived.
        let received = match client.read(&mut buffer) {
            Ok(0) => break, // the client is done
            Ok(received) => received,
            // The textbook dies on a failed recv() or send(); ending only this connection
            // keeps one client that hangs up rudely from stopping the server.
            Err(_) => break,
        };
        // send(): all of it back. A 64-byte message goes out as two 32-byte sends.
        if client.write_all(&buffer[..received]).is_err() {
            break;
        }
    }
    // close(): dropping `client` closes the socket.
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
    eprintln!("iterative: {problem}\nusage: iterative [ADDR]   (default 127.0.0.1:7007)");
    exit(2)
}
