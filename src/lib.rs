//! echopool: a blocking thread-pool TCP server with plugin handlers, as a library.
//!
//! [`server`] binds, accepts and serves connections with any [`handlers::Handler`];
//! [`signals`] stops it gracefully on SIGTERM or SIGINT; [`exec`] is the handler that runs a
//! program per connection. The `echopool` binary (its command
//! line, client and load generator) is built on these and is not part of the library.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub use echopool_handlers as handlers;

pub mod exec;
pub mod server;
pub mod signals;
