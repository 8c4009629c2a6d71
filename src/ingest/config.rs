//! `[ingest]`: the listeners for clients that are not long-lived TCP programs.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use crate::config::{Config, ConfigError};

/// `[ingest]`: HTTP pings and UDP heartbeats, each on its own listener, both off by default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Address of the HTTP ingest (`/ping/{proj}`); `None` (an empty string): off.
    #[serde(deserialize_with = "optional_addr")]
    pub http: Option<SocketAddr>,
    /// Threads of the HTTP ingest.
    pub http_workers: usize,
    /// Address of the UDP ingest (one datagram, one frame); `None` (an empty string): off.
    #[serde(deserialize_with = "optional_addr")]
    pub udp: Option<SocketAddr>,
    /// Whether UDP datagrams are answered (acks and errors). Off by default: an answer to a
    /// spoofed source address is a reflection vector.
    pub udp_ack: bool,
    /// Source addresses whose frame budget each of the two ingests remembers (the least
    /// recently seen is forgotten first).
    pub max_sources: usize,
    /// Clients whose actor each of the two ingests remembers, so that their heartbeats go
    /// straight to it instead of through the registry.
    pub route_cache: usize,
}

impl Default for IngestConfig {
    /// The defaults of `config/default.toml`: both ingests off.
    fn default() -> Self {
        Config::default().ingest
    }
}

impl IngestConfig {
    /// Whether any ingest is on.
    pub fn enabled(&self) -> bool {
        self.http.is_some() || self.udp.is_some()
    }

    /// The rules both the configuration loader and [`crate::Builder::start`] apply.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("ingest.http_workers", self.http_workers),
            ("ingest.max_sources", self.max_sources),
            ("ingest.route_cache", self.route_cache),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Value {
                    key,
                    problem: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}

/// An address, or an empty string for none.
fn optional_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address like 0.0.0.0:7702 (or empty for off)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigLoader;

    #[test]
    fn both_ingests_are_off_by_default_and_turned_on_by_the_environment() {
        let c = ConfigLoader::new().without_env().load().unwrap();
        assert_eq!(c.ingest.http, None);
        assert_eq!(c.ingest.udp, None);
        assert!(!c.ingest.udp_ack);
        assert!(!c.ingest.enabled());
        let env = [
            ("HEARTWATCH__INGEST__HTTP", "127.0.0.1:7702"),
            ("HEARTWATCH__INGEST__UDP", "127.0.0.1:7700"),
            ("HEARTWATCH__INGEST__UDP_ACK", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let c = ConfigLoader::new().env(env).load().unwrap();
        assert_eq!(c.ingest.http, Some("127.0.0.1:7702".parse().unwrap()));
        assert_eq!(c.ingest.udp, Some("127.0.0.1:7700".parse().unwrap()));
        assert!(c.ingest.udp_ack);
        assert!(c.ingest.enabled());
    }

    #[test]
    fn mistakes_name_their_key() {
        for (key, value) in [
            ("ingest.http", "nowhere"),
            ("ingest.udp", "7700"),
            ("ingest.max_sources", "0"),
            ("ingest.route_cache", "0"),
            ("ingest.http_workers", "0"),
        ] {
            let e = ConfigLoader::new()
                .without_env()
                .set(key, value)
                .load()
                .unwrap_err()
                .to_string();
            assert!(e.contains(key.rsplit('.').next().unwrap()), "{key}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
