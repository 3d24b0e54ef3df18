//! `--access-log`: one structured info line per connection a worker served, when it ends.
//!
//! Its target is `echopool::access`, so a filter can keep or drop it alone
//! (`RUST_LOG=warn,echopool::access=info`); `echopool serve --access-log` shows it even with
//! `-q`. It is written on the worker that closed the connection, inside its `conn` span.

use std::time::Duration;

use echopool_handlers::{CloseReason, ConnInfo};
use tracing::info;

use super::books::Moved;

/// One connection's line: who, where, which handler, how long it waited for a worker and was
/// served, what it moved, and why it ended.
pub(crate) fn write(
    info: &ConnInfo,
    handler: &str,
    queue_wait: Duration,
    served: Duration,
    moved: Moved,
    reason: CloseReason,
) {
    info!(
        target: "echopool::access",
        id = info.id,
        peer = %info.peer,
        local = %info.local,
        handler = %if handler.is_empty() { "-" } else { handler },
        queue_wait_us = micros(queue_wait),
        served_us = micros(served),
        bytes_in = moved.bytes_in,
        bytes_out = moved.bytes_out,
        %reason,
        "access"
    );
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
