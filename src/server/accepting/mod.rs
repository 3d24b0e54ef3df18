//! Accepting: the listening sockets, the accept loops, and who may connect.

mod accept;
mod access;
pub(crate) mod listener;
mod per_ip;
mod throttle;

pub(crate) use accept::{run, AcceptContext};
pub use access::AccessPolicy;
pub(crate) use per_ip::{PerIpLimit, PerIpSlot};
