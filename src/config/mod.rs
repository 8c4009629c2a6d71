//! Typed configuration: what `config/default.toml` documents, key for key.

mod loader;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use loader::{ConfigError, ConfigLoader, DEFAULT_TOML};
pub(crate) use validate::{validate_detection, validate_http_tokens, validate_parts};

use crate::auth::Secret;
pub use crate::cluster::ClusterConfig;
pub use crate::events::{DetectorKind, FlapConfig, OutageConfig, OutageWebhooks};
pub use crate::ingest::IngestConfig;
pub use crate::notify::{NotifyConfig, WebhookConfig};
pub use crate::storage::{FsyncPolicy, HistoryConfig, StorageConfig};
pub use crate::supervision::PhiConfig;
use crate::supervision::TimeoutPolicy;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The listeners, the protocol limits and how silent clients are judged.
    pub server: ServerConfig,
    /// The phi-accrual detector (`server.detector = "phi"`).
    pub phi: PhiConfig,
    /// Flap damping.
    pub flap: FlapConfig,
    /// Grouping of correlated offlines.
    pub outage: OutageConfig,
    /// What the history endpoint keeps.
    pub history: HistoryConfig,
    /// Per-connection liveness: pings, deadlines, TCP keepalive.
    pub session: SessionConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// The durable event log.
    pub storage: StorageConfig,
    /// Webhooks.
    pub notify: NotifyConfig,
    /// TLS for both listeners.
    pub tls: TlsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Cluster mode (Redis); off unless `cluster.redis` is set.
    pub cluster: ClusterConfig,
    /// HTTP and UDP ingest; both off unless their address is set.
    pub ingest: IngestConfig,
}

/// `[auth]`: who may read, and who may beat for which `proj`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer token for the HTTP API's reads; empty for none.
    pub http_token: String,
    /// Bearer token for the HTTP API's writes (it reads too); empty for none.
    #[serde(default)]
    pub http_admin_token: String,
    /// Protocol token valid for every `proj`; empty for none.
    #[serde(default)]
    pub token: Secret,
    /// Protocol tokens by `proj` glob pattern.
    #[serde(default)]
    pub proj_tokens: BTreeMap<String, Secret>,
    /// More `pattern = token` lines, re-read on SIGHUP; empty for none.
    #[serde(default)]
    pub tokens_file: PathBuf,
}

impl AuthConfig {
    /// Whether heartbeat connections need tokens: any of `token`, `proj_tokens`,
    /// `tokens_file` is set.
    pub fn protocol_auth(&self) -> bool {
        !self.token.is_empty()
            || !self.proj_tokens.is_empty()
            || !self.tokens_file.as_os_str().is_empty()
    }
}

/// Never prints a token: the patterns and the file are shown, the tokens only as set or not.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "http_token",
                &if self.http_token.is_empty() {
                    ""
                } else {
                    "<set>"
                },
            )
            .field(
                "http_admin_token",
                &if self.http_admin_token.is_empty() {
                    ""
                } else {
                    "<set>"
                },
            )
            .field("token", &self.token)
            .field("proj_tokens", &self.proj_tokens)
            .field("tokens_file", &self.tokens_file)
            .finish()
    }
}

/// `[tls]`: one certificate for both listeners, the heartbeat port and the HTTP API. There is
/// deliberately no switch per listener: the API carries the same client names and addresses
/// as the heartbeats, and the bearer token of `auth.http_token`, so encrypting only one of the
/// two would leave exactly what TLS is meant to protect readable on the other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first; empty: TLS off.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate; empty: TLS off.
    pub key: PathBuf,
    /// Longest a TLS handshake may take. Bounded on its own, not by
    /// `session.first_frame_timeout`, because that one may be off while a half-done handshake
    /// still holds a socket and rustls state.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Whether TLS is on (a certificate is configured).
    pub fn enabled(&self) -> bool {
        !self.cert.as_os_str().is_empty()
    }
}

/// `[session]`: per-connection liveness. A zero duration turns the feature off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Inbound silence after which the server pings; zero: never.
    #[serde(with = "humantime_serde")]
    pub idle_ping: Duration,
    /// How long a ping waits for its answer.
    #[serde(with = "humantime_serde")]
    pub pong_timeout: Duration,
    /// Unanswered pings in a row after which the connection is closed.
    pub ping_retries: u32,
    /// Deadline for the first complete frame of a connection; zero: none.
    #[serde(with = "humantime_serde")]
    pub first_frame_timeout: Duration,
    /// Frames per second one connection may send on average; zero: no limit.
    pub max_frame_rate: u32,
    /// Frames one connection may send at once.
    pub frame_burst: u32,
    /// TCP keepalive idle time; zero: keepalive off.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// Interval between keepalive probes.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before the kernel drops the connection.
    pub keepalive_retries: u32,
    /// TCP_USER_TIMEOUT (Linux); zero: the OS default.
    #[serde(with = "humantime_serde")]
    pub user_timeout: Duration,
}

impl Default for SessionConfig {
    /// The defaults of `config/default.toml`.
    fn default() -> Self {
        Config::default().session
    }
}

/// `[server]`: listeners, timeouts, limits, detection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// Open connections at most.
    pub max_connections: usize,
    /// Online clients at most.
    pub max_clients: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Bind the heartbeat listener with SO_REUSEPORT, so that several nodes on one machine can
    /// share one port (the kernel spreads new connections over them).
    pub reuse_port: bool,
    /// Session arbiters; 0 means one per core.
    pub workers: usize,
    /// HTTP worker threads.
    pub http_workers: usize,
    /// How a silent client is judged offline: `fixed` (its timeout) or `phi` (adaptive).
    pub detector: DetectorKind,
    /// Fraction of the time to its offline verdict after which a silent client is `late`;
    /// 0 turns late verdicts off.
    pub late_ratio: f64,
    /// A timer firing later than this, or a wall-clock jump this large, means the server itself
    /// stalled; 0 turns stall detection off.
    #[serde(with = "humantime_serde")]
    pub stall_threshold: Duration,
    /// How long verdicts are deferred after a stall.
    #[serde(with = "humantime_serde")]
    pub stall_grace: Duration,
    /// The heartbeat interval suggested in acks (`interval_ms`): the client's timeout times
    /// this.
    pub interval_ratio: f64,
    /// Heartbeats that may wait for the registry at once (first heartbeats, mostly); past it, a
    /// new client is answered `unavailable` with a `retry_after_ms`.
    pub max_pending: usize,
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
