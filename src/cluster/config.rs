//! `[cluster]`: where the cluster's Redis is and who this node is.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[cluster]`: cluster mode on Redis. Off (single node) while `redis` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Redis URL (`redis://host:port/db`); empty: single node.
    pub redis: String,
    /// This node's name, unique in the cluster; empty: host name and heartbeat port.
    pub node: String,
    /// Prefix of every key; keys are `{prefix}:...` (one hash slot).
    pub key_prefix: String,
    /// How often this node renews its liveness.
    #[serde(with = "humantime_serde")]
    pub renew_interval: Duration,
    /// Without a renewal for this long, a node is declared dead by its peers.
    #[serde(with = "humantime_serde")]
    pub dead_after: Duration,
    /// Entries kept in the event stream (approximate trimming).
    pub stream_max_len: u64,
}

impl Default for ClusterConfig {
    /// The defaults of `config/default.toml`: cluster mode off.
    fn default() -> Self {
        crate::Config::default().cluster
    }
}

/// Names a node may not take: they would break the control channel's and the keys' syntax.
const NAME_FORBIDDEN: &[char] = &['{', '}', ' ', '\t', '\n', '\r'];

/// Longest node name.
const MAX_NAME_BYTES: usize = 128;

impl ClusterConfig {
    /// Whether cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.redis.is_empty()
    }

    /// The node's name: `node`, or `<host name>:<port of listen>`.
    pub fn node_name(&self, listen: SocketAddr) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}:{}", listen.port())
    }

    /// Rounds of renewals without a change after which a peer is declared dead:
    /// `dead_after / renew_interval`, rounded up.
    pub fn dead_rounds(&self) -> u32 {
        let r = self.renew_interval.as_millis().max(1);
        let rounds = self.dead_after.as_millis().div_ceil(r);
        u32::try_from(rounds).unwrap_or(u32::MAX).max(2)
    }

    /// The key-syntax and timing checks; a message naming the key at fault.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled() {
            return Ok(());
        }
        if let Err(e) = redis::Client::open(self.redis.as_str()) {
            return Err(("cluster.redis", format!("not a Redis URL: {e}")));
        }
        if self.node.len() > MAX_NAME_BYTES || self.node.contains(NAME_FORBIDDEN) {
            return Err((
                "cluster.node",
                format!("at most {MAX_NAME_BYTES} bytes, without braces or white space"),
            ));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(NAME_FORBIDDEN) {
            return Err((
                "cluster.key_prefix",
                "must be non-empty, without braces or white space".into(),
            ));
        }
        if self.renew_interval < Duration::from_millis(10) {
            return Err(("cluster.renew_interval", "must be at least 10ms".into()));
        }
        if self.dead_after < self.renew_interval * 2 {
            return Err((
                "cluster.dead_after",
                "must be at least twice cluster.renew_interval".into(),
            ));
        }
        if self.stream_max_len < 1000 {
            return Err(("cluster.stream_max_len", "must be at least 1000".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_with_the_documented_values() {
        let c = ClusterConfig::default();
        assert!(!c.enabled());
        assert_eq!(c.key_prefix, "heartwatch");
        assert_eq!(c.renew_interval, Duration::from_secs(1));
        assert_eq!(c.dead_after, Duration::from_secs(5));
        assert_eq!(c.dead_rounds(), 5);
    }

    #[test]
    fn the_default_name_is_the_host_and_the_port() {
        let c = ClusterConfig::default();
        let name = c.node_name("0.0.0.0:7700".parse().unwrap());
        assert!(name.ends_with(":7700"), "{name}");
        let named = ClusterConfig {
            node: "n1".into(),
            ..c
        };
        assert_eq!(named.node_name("0.0.0.0:7700".parse().unwrap()), "n1");
    }
}
