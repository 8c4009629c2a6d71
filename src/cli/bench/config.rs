//! What `heartwatch bench` is asked to do.

use std::net::SocketAddr;
use std::time::Duration;

use heartwatch::auth::Secret;
use heartwatch::tls::ClientTls;

/// Settings of one benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// The heartbeat listener under test.
    pub server: SocketAddr,
    /// Persistent connections to open, each one client with its own `proj`.
    pub clients: usize,
    /// Time between two heartbeats of one client (±10% jitter).
    pub interval: Duration,
    /// The measured window, after the ramp and the warm-up.
    pub duration: Duration,
    /// Beating before the measured window starts.
    pub warmup: Duration,
    /// Connections opened per second during the ramp.
    pub ramp_per_sec: u32,
    /// The server's HTTP API: its event stream (for `--silence`) and `process_*` metrics.
    pub http: Option<SocketAddr>,
    /// The server's pid, to read its CPU and memory from `/proc` directly.
    pub pid: Option<u32>,
    /// Fraction of the clients that go silent (hung) during the measured window.
    pub silence: f64,
    /// The watchdog timeout the clients ask for (`timeout_ms`).
    pub timeout: Duration,
    /// How long one heartbeat waits for its answer before it counts as an error.
    pub ack_timeout: Duration,
    /// Source addresses to spread connections over (127.0.0.2 onwards), so that one
    /// source address does not run out of ephemeral ports.
    pub sources: u8,
    /// Prefix of every client's `proj`.
    pub proj_prefix: String,
    /// Permits a server address outside 127.0.0.0/8.
    pub allow_remote: bool,
    /// Speak TLS: every connection does a handshake before its first frame.
    pub tls: Option<ClientTls>,
    /// A cluster's Redis URL: its commands per second during the window are reported (from
    /// `INFO commandstats`).
    pub redis: Option<String>,
    /// Authenticate: every connection sends one `hello` with this token and waits for the
    /// `welcome` before its first heartbeat (the way of persistent clients, docs/auth.md).
    pub token: Option<Secret>,
}

impl BenchConfig {
    /// A run against `server` with the documented defaults.
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            clients: 1000,
            interval: Duration::from_secs(1),
            duration: Duration::from_secs(30),
            warmup: Duration::from_secs(5),
            ramp_per_sec: 5000,
            http: None,
            pid: None,
            silence: 0.0,
            timeout: Duration::from_secs(3),
            ack_timeout: Duration::from_secs(5),
            sources: 200,
            proj_prefix: "bench-".into(),
            allow_remote: false,
            tls: None,
            token: None,
            redis: None,
        }
    }
}

/// A benchmark that cannot run as asked.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target is not on loopback.
    #[error("{0} is not a loopback address; pass --allow-remote to load a remote server")]
    Remote(SocketAddr),
    /// `--silence` needs the event stream.
    #[error("--silence needs --http (the server's event stream)")]
    SilenceNeedsHttp,
    /// A silenced client must be detected within the run.
    #[error(
        "--duration must exceed the client timeout ({timeout:?}) by at least 2s for --silence"
    )]
    WindowTooShort {
        /// The client timeout.
        timeout: Duration,
    },
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
    /// The event stream could not be opened.
    #[error("cannot follow the event stream: {0}")]
    Events(std::io::Error),
}

impl BenchConfig {
    /// Checks the combination before anything connects.
    pub fn validate(&self) -> Result<(), BenchError> {
        if !self.allow_remote {
            for addr in [Some(self.server), self.http].into_iter().flatten() {
                if !addr.ip().is_loopback() {
                    return Err(BenchError::Remote(addr));
                }
            }
        }
        if self.clients == 0 || self.interval.is_zero() || self.ramp_per_sec == 0 {
            return Err(BenchError::Invalid(
                "--clients, --interval and --ramp must be positive".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.silence) {
            return Err(BenchError::Invalid("--silence must be within 0..=1".into()));
        }
        if self.silence > 0.0 {
            if self.http.is_none() {
                return Err(BenchError::SilenceNeedsHttp);
            }
            if self.duration < self.timeout + Duration::from_secs(2) {
                return Err(BenchError::WindowTooShort {
                    timeout: self.timeout,
                });
            }
        }
        Ok(())
    }
}
