//! The server's certificate and key, loaded once at start and shared by both listeners.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{provider, TlsError};
use crate::config::TlsConfig;

/// What the listeners need to serve TLS. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The rustls configuration, without ALPN: the HTTP API adds its own protocols to a copy.
    pub config: Arc<rustls::ServerConfig>,
    /// Longest a handshake may take before the connection is closed.
    pub handshake_timeout: Duration,
}

impl ServerTls {
    /// Loads `tls.cert` and `tls.key`; `Ok(None)` when TLS is off. Done before anything
    /// binds, so a bad file stops the server at start with a message naming it.
    pub fn load(config: &TlsConfig) -> Result<Option<Self>, TlsError> {
        if !config.enabled() {
            return Ok(None);
        }
        let certs = load_certs(&config.cert)?;
        let key = load_key(&config.key)?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|source| match source {
                rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                    cert: config.cert.clone(),
                    key: config.key.clone(),
                },
                source => TlsError::Rejected {
                    setting: "tls.key",
                    path: config.key.clone(),
                    source,
                },
            })?;
        Ok(Some(Self::new(Arc::new(server), config.handshake_timeout)))
    }

    /// Serves an application's own rustls configuration (for embedding).
    pub fn new(config: Arc<rustls::ServerConfig>, handshake_timeout: Duration) -> Self {
        Self {
            config,
            handshake_timeout,
        }
    }

    /// For the heartbeat listener.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |e| TlsError::from_pem("tls.cert", path, "certificate", e);
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(pem(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::from_pem("tls.key", path, "private key", e))
}
