//! The reliability suite (issue 3): the real `echopool` binary under floods, slow and hostile
//! clients and faults, each case asserting what a user would see and printing one outcome line.
//!
//! ```sh
//! cargo test --workspace --test reliability -- --nocapture   # outcome lines on stderr
//! ```
//!
//! `RELIABILITY.md` at the repository root summarises these cases; keep the two in step.
//!
//! Linux only: the cases read `/proc`, bind client sockets to 127.0.0.x sources, use
//! `TCP_DEFER_ACCEPT` and `sh -c 'ulimit -n 64'`.
#![cfg(target_os = "linux")]

#[path = "../common/mod.rs"]
mod common;

mod churn;
mod descriptors;
mod drain;
mod everything;
mod exec;
mod fleet;
mod flood;
mod limits;
mod memory;
mod panics;
mod parking;
mod shutdown;
mod silent;
mod slow_clients;
mod upgrade;

use std::fmt::Display;

/// Prints a case's one-line outcome, so `cargo test -- --nocapture` reads as a report.
fn report(case: &str, outcome: impl Display) {
    eprintln!("reliability | {case:<27} | {outcome}");
}
