//! The floor for a blocking design's per-message cost: a new thread for every connection,
//! TCP_NODELAY, a 16 KiB buffer, read and write back until EOF.

use std::thread;

fn main() {
    let args = echopool_peers::args("thread-per-conn");
    let listener = echopool_peers::bind(args.addr);
    for conn in listener.incoming().flatten() {
        thread::spawn(move || echopool_peers::serve(conn));
    }
}
