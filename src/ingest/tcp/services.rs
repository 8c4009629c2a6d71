//! What every heartbeat connection shares.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::config::SessionConfig;
use crate::extension::Handlers;
use crate::metrics::Metrics;
use crate::supervision::Heartbeats;

/// Read-only after start, except the count of open connections.
pub(crate) struct TcpServices {
    /// Where heartbeats and offlines go.
    pub heartbeats: Heartbeats,
    pub handlers: Handlers,
    pub metrics: Arc<Metrics>,
    pub max_frame_bytes: usize,
    pub max_write_backlog: usize,
    pub session: SessionConfig,
    /// Connections accepted and not yet closed (for `server.max_connections`), kept by
    /// [`super::slot::Slot`] guards.
    pub open: AtomicUsize,
    pub max_connections: usize,
    /// The protocol tokens; `None` when authentication is off.
    pub auth: Option<Arc<Authenticator>>,
    /// Set when the heartbeat listener serves TLS.
    pub tls: Option<TlsAcceptor>,
}

/// What the accept side needs to run TLS handshakes.
#[derive(Clone)]
pub(crate) struct TlsAcceptor {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub handshake_timeout: Duration,
}
