//! Stopping: the shutdown handle, and the live connections a forced stop closes.

mod live;
mod shutdown;

pub(crate) use live::{LiveConnections, LiveStream};
pub use shutdown::ShutdownHandle;
