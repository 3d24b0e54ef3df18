//! echopool: a blocking thread-pool TCP server with plugin handlers.
//!
//! The binary's subcommands live here as modules so that they can be tested and embedded.
#![warn(missing_docs)]

pub use echopool_handlers as handlers;

pub mod bench;
pub mod cli;
pub mod client;
pub mod completions;
pub mod duration_arg;
pub mod env_vars;
pub mod logs;
pub mod manpages;
pub mod serve;
pub mod server;
pub mod signals;
pub mod size_arg;
