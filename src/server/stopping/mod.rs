//! Stopping: the shutdown handle, the socket filter that closes the listeners to new connects
//! while their queues are taken, and the live connections a forced stop closes.

mod live;
mod shutdown;
mod syn_filter;

pub(crate) use live::{LiveConnections, LiveStream};
pub use shutdown::ShutdownHandle;
pub(crate) use syn_filter::allow_new_connections as reopen;
