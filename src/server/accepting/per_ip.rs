//! `--max-per-ip`: how many connections one address may hold at once, live plus queued.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts connections per client address and refuses one past the limit.
#[derive(Debug)]
pub(crate) struct PerIpLimit {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIpLimit {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(PerIpLimit {
            max,
            counts: Mutex::default(),
        })
    }

    /// Takes a slot for `ip`, held until the returned guard drops (when the connection closes,
    /// even by a panic); `None` when `ip` holds its maximum already.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpSlot> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap();
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PerIpSlot {
            limit: Arc::clone(self),
            ip,
        })
    }
}

/// One connection's place in its address's count.
#[derive(Debug)]
pub(crate) struct PerIpSlot {
    limit: Arc<PerIpLimit>,
    ip: IpAddr,
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts.lock().unwrap();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            // Forget addresses with no connection, so the map does not grow with every
            // client ever seen.
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_address_separately_and_frees_on_drop() {
        let limit = PerIpLimit::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let first = limit.acquire(a).unwrap();
        let _second = limit.acquire(a).unwrap();
        assert!(limit.acquire(a).is_none());
        assert!(
            limit.acquire(b).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(limit.acquire(a).is_some());
    }

    #[test]
    fn forgets_addresses_with_no_connections() {
        let limit = PerIpLimit::new(1);
        let ip: IpAddr = "::1".parse().unwrap();
        drop(limit.acquire(ip).unwrap());
        assert!(limit.counts.lock().unwrap().is_empty());
    }
}
