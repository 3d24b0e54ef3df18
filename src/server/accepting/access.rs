//! Who may connect: `--allow` and `--deny` address ranges.

use std::net::IpAddr;

use ipnet::IpNet;

/// Allow and deny lists of address ranges. A denied range always wins; with any allowed range,
/// every address outside the allowed ranges is denied; with none, all are allowed.
///
/// ```
/// use echopool::server::AccessPolicy;
///
/// let policy = AccessPolicy {
///     allow: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
///     deny: vec!["10.9.0.0/16".parse().unwrap()],
/// };
/// assert!(policy.permits("10.1.2.3".parse().unwrap()));
/// assert!(!policy.permits("10.9.0.1".parse().unwrap())); // deny wins
/// assert!(!policy.permits("192.0.2.1".parse().unwrap())); // not allowed
/// assert!(policy.permits("::1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Ranges that may connect; empty means every address.
    pub allow: Vec<IpNet>,
    /// Ranges that may not connect, whatever `allow` says.
    pub deny: Vec<IpNet>,
}

impl AccessPolicy {
    /// Whether `ip` may connect. An IPv4-mapped IPv6 address is judged as the IPv4 address.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn empty_policy_permits_all() {
        let policy = AccessPolicy::default();
        assert!(policy.permits("203.0.113.9".parse().unwrap()));
        assert!(policy.permits("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn deny_only_denies_its_ranges() {
        let policy = AccessPolicy {
            allow: vec![],
            deny: vec![net("127.0.0.2/32"), net("2001:db8::/32")],
        };
        assert!(!policy.permits("127.0.0.2".parse().unwrap()));
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("2001:db8::5".parse().unwrap()));
    }

    #[test]
    fn mapped_ipv4_is_judged_as_ipv4() {
        let policy = AccessPolicy {
            allow: vec![net("127.0.0.0/8")],
            deny: vec![],
        };
        assert!(policy.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("::ffff:192.0.2.1".parse().unwrap()));
    }

    proptest! {
        #[test]
        fn deny_always_wins(a in any::<u32>(), prefix in 0u8..=32) {
            let ip = IpAddr::from(a.to_be_bytes());
            let range = IpNet::new(ip, prefix).unwrap().trunc();
            let policy = AccessPolicy { allow: vec![range], deny: vec![range] };
            prop_assert!(!policy.permits(ip));
        }

        #[test]
        fn allow_admits_exactly_its_range(a in any::<u32>(), b in any::<u32>(), prefix in 0u8..=32) {
            let inside = IpAddr::from(a.to_be_bytes());
            let range = IpNet::new(inside, prefix).unwrap().trunc();
            let other = IpAddr::from(b.to_be_bytes());
            let policy = AccessPolicy { allow: vec![range], deny: vec![] };
            prop_assert!(policy.permits(inside));
            prop_assert_eq!(policy.permits(other), range.contains(&other));
        }
    }
}
