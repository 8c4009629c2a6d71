//! The frame rate limit of the ingests without connections, per source address.
//!
//! Over TCP each connection has its own budget (`session.max_frame_rate`, `frame_burst`). An
//! HTTP request or a UDP datagram has no connection, so the budget belongs to its source:
//! the IP address (the port changes with every request of a cron job), an IPv6 address by its
//! /64 (one host commonly holds a whole /64, and would otherwise get 2^64 budgets).
//!
//! Memory is bounded: at most `ingest.max_sources` budgets are kept, the least recently seen
//! forgotten first. A forgotten source starts again with a full burst, which is what an idle
//! source has anyway; only a flood from more distinct sources than that can make an active
//! source lose the debt of its bucket.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroUsize;

use lru::LruCache;

use super::tcp::FrameBudget;
use crate::clock::Instant;
use crate::config::SessionConfig;

/// The budgets of the sources seen recently.
pub(crate) struct SourceBudgets {
    budgets: LruCache<IpAddr, FrameBudget>,
}

impl SourceBudgets {
    /// Room for `max_sources` budgets.
    pub(crate) fn new(max_sources: NonZeroUsize) -> Self {
        Self {
            budgets: LruCache::new(max_sources),
        }
    }

    /// Takes one frame's token from `source`'s budget at `now`; false if it has none left.
    pub(crate) fn take(&mut self, source: IpAddr, session: &SessionConfig, now: Instant) -> bool {
        if session.max_frame_rate == 0 {
            return true;
        }
        let key = source_key(source);
        if let Some(budget) = self.budgets.get_mut(&key) {
            return budget.take(session, now);
        }
        let mut budget = FrameBudget::full(session, now);
        let admitted = budget.take(session, now);
        self.budgets.put(key, budget);
        admitted
    }

    /// Sources remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.budgets.len()
    }
}

/// Whose budget a source spends: its IPv4 address (also when written as IPv4-mapped IPv6),
/// or the /64 of its IPv6 address.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn session(rate: u32, burst: u32) -> SessionConfig {
        SessionConfig {
            max_frame_rate: rate,
            frame_burst: burst,
            ..SessionConfig::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_source_has_its_own_burst_then_its_rate() {
        let config = session(10, 3);
        let mut budgets = SourceBudgets::new(NonZeroUsize::new(16).unwrap());
        let t0 = Instant::now();
        let a = (0..5)
            .filter(|_| budgets.take(ip("127.0.0.2"), &config, t0))
            .count();
        let b = (0..5)
            .filter(|_| budgets.take(ip("127.0.0.3"), &config, t0))
            .count();
        assert_eq!(
            (a, b),
            (3, 3),
            "one source's flood does not spend another's budget"
        );
        let later = t0 + Duration::from_millis(100);
        assert!(budgets.take(ip("127.0.0.2"), &config, later), "refilled");
        assert!(!budgets.take(ip("127.0.0.2"), &config, later));
    }

    #[test]
    fn the_port_does_not_matter_and_ipv6_counts_by_its_64() {
        let config = session(10, 1);
        let mut budgets = SourceBudgets::new(NonZeroUsize::new(16).unwrap());
        let t0 = Instant::now();
        assert!(budgets.take(ip("2001:db8::1"), &config, t0));
        assert!(
            !budgets.take(ip("2001:db8::ffff:2"), &config, t0),
            "same /64"
        );
        assert!(
            budgets.take(ip("2001:db8:0:1::1"), &config, t0),
            "another /64"
        );
        assert!(budgets.take(ip("192.0.2.1"), &config, t0));
        assert!(
            !budgets.take(ip("::ffff:192.0.2.1"), &config, t0),
            "IPv4-mapped is the IPv4 address"
        );
    }

    #[test]
    fn memory_is_bounded_and_the_least_recently_seen_is_forgotten() {
        let config = session(10, 1);
        let mut budgets = SourceBudgets::new(NonZeroUsize::new(100).unwrap());
        let t0 = Instant::now();
        assert!(budgets.take(ip("10.0.0.1"), &config, t0));
        for i in 0..10_000u32 {
            let source = IpAddr::V4((0x0b00_0000 + i).into());
            budgets.take(source, &config, t0);
            // The first source stays recent: it keeps its (empty) budget.
            if i % 50 == 0 {
                assert!(!budgets.take(ip("10.0.0.1"), &config, t0));
            }
        }
        assert_eq!(budgets.len(), 100);
        assert!(
            budgets.take(ip("11.0.0.0"), &config, t0),
            "forgotten long ago: a full burst again"
        );
    }

    #[test]
    fn a_zero_rate_is_no_limit_and_keeps_nothing() {
        let config = session(0, 1);
        let mut budgets = SourceBudgets::new(NonZeroUsize::new(4).unwrap());
        let t0 = Instant::now();
        assert!((0..1000).all(|_| budgets.take(ip("127.0.0.1"), &config, t0)));
        assert_eq!(budgets.len(), 0);
    }
}
