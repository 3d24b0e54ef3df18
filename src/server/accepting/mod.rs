//! Accepting: the listening sockets, the accept loops, who may connect, and (with the PROXY
//! protocol) who the client behind a load balancer is.

mod accept;
mod access;
mod drain;
pub(crate) mod listener;
mod per_ip;
mod proxy;
mod proxy_header;
mod ready;
mod rejected;
mod throttle;

pub(crate) use accept::{run, AcceptContext};
pub use access::AccessPolicy;
pub(crate) use per_ip::{PerIpLimit, PerIpSlot};
pub(crate) use proxy::ProxyProtocol;
#[cfg(test)]
pub(crate) use ready::{wait, Woken};
pub(crate) use rejected::Rejections;
