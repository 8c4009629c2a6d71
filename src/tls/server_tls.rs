//! The server's TLS configuration, shared by both listeners.

use std::sync::Arc;
use std::time::Duration;

use super::cert_store::CertStore;
use super::{provider, TlsError};
use crate::config::TlsConfig;

/// What the listeners need to serve TLS. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The rustls configuration, without ALPN: the HTTP API adds its own protocols to a copy.
    pub config: Arc<rustls::ServerConfig>,
    /// Longest a handshake may take before the connection is closed.
    pub handshake_timeout: Duration,
    /// The certificate files, when loaded from `tls.cert`/`tls.key` (not for an application's
    /// own configuration): what [`ServerTls::reload`] re-reads.
    certs: Option<Arc<CertStore>>,
}

impl ServerTls {
    /// Loads `tls.cert` and `tls.key`; `Ok(None)` when TLS is off. Done before anything
    /// binds, so a bad file stops the server at start with a message naming it.
    pub fn load(config: &TlsConfig) -> Result<Option<Self>, TlsError> {
        if !config.enabled() {
            return Ok(None);
        }
        let certs = Arc::new(CertStore::load(&config.cert, &config.key)?);
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rejected {
                setting: "tls.key",
                path: config.key.clone(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        Ok(Some(Self {
            config: Arc::new(server),
            handshake_timeout: config.handshake_timeout,
            certs: Some(certs),
        }))
    }

    /// Serves an application's own rustls configuration (for embedding).
    pub fn new(config: Arc<rustls::ServerConfig>, handshake_timeout: Duration) -> Self {
        Self {
            config,
            handshake_timeout,
            certs: None,
        }
    }

    /// Re-reads `tls.cert` and `tls.key` (see `CertStore`): new connections get the new
    /// certificate; on error the current one stays. `Ok(false)` for an application's own
    /// configuration, which has no files to re-read.
    pub fn reload(&self) -> Result<bool, TlsError> {
        match &self.certs {
            Some(certs) => certs.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// For the heartbeat listener.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}
