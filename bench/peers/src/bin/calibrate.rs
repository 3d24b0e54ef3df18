//! A fixed amount of work — arithmetic, then small system calls — timed on the CPU it is pinned
//! to. `bench/compare.py` runs it on both CPUs before each measurement: on a shared or virtual
//! machine the same work sometimes takes twice as long (a busy neighbour on the host), and a run
//! measured in such a period says more about the host than about the server.
//!
//! Prints the nanoseconds taken, e.g. `8123456 ns`.

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let started = Instant::now();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..4_000_000u64 {
        x = black_box(x.rotate_left(7) ^ i).wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    // A cheap system call, as every message costs a few of them.
    for _ in 0..20_000 {
        black_box(std::process::id());
        let _ = black_box(std::fs::metadata("/"));
    }
    println!("{} ns", started.elapsed().as_nanos());
    black_box(x);
}
