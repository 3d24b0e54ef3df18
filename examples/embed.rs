//! Embedding the server in a program: bind on a free port, run it on a thread of its own, talk
//! to it, and stop it. `cargo run --example embed`

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use echopool::handlers::{Echo, Logging};
use echopool::server::{Config, Server};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let config = Config {
        listen: vec!["127.0.0.1:0".parse()?],
        workers: NonZeroUsize::new(4).unwrap(),
        idle_timeout: Some(Duration::from_secs(5)),
        ..Config::default()
    };
    // Handlers are plain values: here the logging decorator around echo.
    let server = Server::bind(config, Arc::new(Logging::new(Echo)))?.spawn()?;
    let addr = server.local_addrs()[0];

    let mut client = TcpStream::connect(addr)?;
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    client.write_all(b"Echo this!")?;
    client.shutdown(Shutdown::Write)?;
    let mut reply = String::new();
    client.read_to_string(&mut reply)?;
    println!("{addr} replied {reply:?}");

    let stats = server.stop();
    println!("served: {stats}");
    Ok(())
}
