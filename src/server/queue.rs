//! The hand-off between the stages: what an accept loop puts in the bounded queue and a worker
//! takes out.

use std::net::TcpStream;

use echopool_handlers::ConnInfo;
use tracing::Span;

use super::accepting::PerIpSlot;
use super::stats::{InGauge, Ticket};

/// A connection accepted and waiting for a worker, with everything that must end with it.
pub(crate) struct Accepted {
    pub(crate) stream: TcpStream,
    pub(crate) info: ConnInfo,
    /// The `conn` span, made on the accept thread so that every line about this connection,
    /// from any thread, carries its id and peer.
    pub(crate) span: Span,
    /// Its entry in the books, spent when it closes or is refused.
    pub(crate) ticket: Ticket,
    /// Its place in its address's `--max-per-ip` count, freed when it closes.
    pub(crate) per_ip_slot: Option<PerIpSlot>,
    /// Its place in the `queued` count, left when a worker takes it (or it is dropped).
    pub(crate) queued: InGauge,
}
