//! Refusing a connection before its handler sees it: counted by reason, and logged at most
//! once a second per reason, so a flood of one kind can neither flood the log nor hide another.

use std::time::Duration;

use tracing::{warn, Span};

use super::throttle::Throttle;
use crate::server::stats::{RejectReason, Ticket};

/// The log throttles of refused connections, one per reason; shared by the accept loops and
/// the workers (which refuse connections by the address in their PROXY header).
#[derive(Debug)]
pub(crate) struct Rejections {
    logs: [Throttle; RejectReason::ALL.len()],
}

impl Rejections {
    pub(crate) fn new() -> Self {
        Rejections {
            logs: RejectReason::ALL.map(|_| Throttle::new(Duration::from_secs(1))),
        }
    }

    /// Counts the connection as refused for `reason` and logs why (with `detail`, when there is
    /// more to say), inside its span; the caller drops the stream, which closes it.
    pub(crate) fn reject(
        &self,
        ticket: Ticket,
        reason: RejectReason,
        span: &Span,
        detail: Option<&str>,
    ) {
        ticket.reject(reason);
        let Some(held_back) = self.logs[reason.index()].allow() else {
            return;
        };
        let _entered = span.enter();
        let why = match reason {
            RejectReason::QueueFull => "queue full (--overflow reject)",
            RejectReason::Denied => "address not allowed (--allow/--deny)",
            RejectReason::PerIpLimit => "too many connections from this address (--max-per-ip)",
            RejectReason::MaxConnections => {
                "the server holds --max-connections (--overflow reject)"
            }
            RejectReason::NotAProxy => "not from a --proxy-from address (--proxy-protocol)",
            RejectReason::ProxyHeader => "no valid PROXY header (--proxy-protocol)",
        };
        match detail {
            Some(detail) => warn!(
                %reason,
                detail,
                also_rejected_since_last_log = held_back,
                "connection rejected: {why}"
            ),
            None => warn!(
                %reason,
                also_rejected_since_last_log = held_back,
                "connection rejected: {why}"
            ),
        }
    }
}
