//! What a heartbeat client needs to know.

use std::time::Duration;

use crate::auth::Secret;
use crate::protocol::Proj;
use crate::tls::ClientTls;

/// Settings of one [`super::HeartbeatClient`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The server, as `host:port` (resolved again at every connect).
    pub server: String,
    /// Who this client is.
    pub proj: Proj,
    /// Time between heartbeats (the first ones, with `follow_server_interval`).
    pub interval: Duration,
    /// Beat at the interval the server suggests in each ack (`interval_ms`, a fraction of
    /// the client's timeout), once it has said one, instead of `interval`.
    pub follow_server_interval: bool,
    /// Each heartbeat's interval varies by up to this fraction either way, so that clients
    /// started together do not beat in lockstep.
    pub jitter: f64,
    /// How long one heartbeat waits for its ack.
    pub ack_timeout: Duration,
    /// Missed acks in a row after which the server is declared down.
    pub retries: u32,
    /// The watchdog timeout to ask the server for (`timeout_ms`), or the server's default.
    pub server_timeout: Option<Duration>,
    /// How long a connect attempt may take.
    pub connect_timeout: Duration,
    /// First reconnect delay bound; it doubles per failed attempt (full jitter).
    pub backoff_initial: Duration,
    /// The cap of the reconnect delay.
    pub backoff_max: Duration,
    /// On shutdown, how long to wait for the ack of the `offline` message.
    pub offline_wait: Duration,
    /// The token to send in a `hello` after each connect, for a server with authentication.
    pub token: Option<Secret>,
    /// Speak TLS to a server that serves it (`tls.cert`); plaintext when `None`. The
    /// handshake counts against `connect_timeout`.
    pub tls: Option<ClientTls>,
}

impl ClientConfig {
    /// A client of `server` as `proj`, beating every 5 s, with the documented defaults.
    pub fn new(server: impl Into<String>, proj: Proj) -> Self {
        Self {
            server: server.into(),
            proj,
            interval: Duration::from_secs(5),
            follow_server_interval: false,
            jitter: 0.1,
            ack_timeout: Duration::from_secs(2),
            retries: 3,
            server_timeout: None,
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            offline_wait: Duration::from_secs(1),
            token: None,
            tls: None,
        }
    }
}
