//! Typed configuration: what `config/default.toml` documents, key for key.

mod loader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use loader::{ConfigError, ConfigLoader, DEFAULT_TOML};

use crate::supervision::TimeoutPolicy;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The listeners and the protocol limits.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`: listeners, timeouts, limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// TCP address for heartbeat connections.
    pub listen: SocketAddr,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Default watchdog timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Shortest timeout a client may ask for.
    #[serde(with = "humantime_serde")]
    pub min_timeout: Duration,
    /// Longest timeout a client may ask for.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Longest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Reply bytes that may wait for a peer that does not read.
    pub max_write_backlog: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Session arbiters; 0 means one per core.
    pub workers: usize,
    /// HTTP worker threads.
    pub http_workers: usize,
}

/// `[log]`: where logging is configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// log4rs YAML file; console logging at `level` if it does not exist.
    pub config: PathBuf,
    /// Console level when `config` does not exist.
    #[serde(deserialize_with = "level_filter")]
    pub level: log::LevelFilter,
}

fn level_filter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<log::LevelFilter, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown level {name:?}, expected off, error, warn, info, debug or trace"
        ))
    })
}

impl Default for Config {
    /// The defaults of `config/default.toml` (compiled in).
    fn default() -> Self {
        ConfigLoader::new()
            .without_env()
            .load()
            .expect("config/default.toml is valid")
    }
}

impl ServerConfig {
    /// The watchdog timeout rules.
    pub fn timeout_policy(&self) -> TimeoutPolicy {
        TimeoutPolicy {
            default: self.timeout,
            min: self.min_timeout,
            max: self.max_timeout,
        }
    }

    /// Session arbiters to start: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}
