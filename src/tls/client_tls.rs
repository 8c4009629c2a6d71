//! What a heartbeat client needs to speak TLS: whom to trust and which name to verify.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::{provider, TlsError};

/// A client's TLS settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The rustls configuration (trusted roots, no client certificate).
    pub config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry: a DNS name or an IP address.
    pub server_name: ServerName<'static>,
}

/// Same configuration object and same name: settings compare equal without comparing
/// rustls internals (which have no equality).
impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl ClientTls {
    /// Trusts the certificates of the PEM file `ca` (and only them) and verifies `server_name`.
    ///
    /// There is no fallback to the public web roots: a heartbeat server is usually internal,
    /// with a private CA or a self-signed certificate, and trusting every public CA for it
    /// would only widen who can impersonate it.
    pub fn from_ca_file(ca: &Path, server_name: &str) -> Result<Self, TlsError> {
        let pem = |e| TlsError::from_pem("--ca", ca, "certificate", e);
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(pem)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem)?;
        if certs.is_empty() {
            return Err(pem(rustls::pki_types::pem::Error::NoItemsFound));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|source| TlsError::Rejected {
                setting: "--ca",
                path: ca.to_owned(),
                source,
            })?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rejected {
                setting: "--ca",
                path: ca.to_owned(),
                source,
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::new(Arc::new(config), server_name)
    }

    /// An application's own rustls configuration, verifying `server_name`.
    pub fn new(config: Arc<rustls::ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let server_name =
            ServerName::try_from(server_name.to_owned()).map_err(|_| TlsError::ServerName {
                setting: "--server-name",
                name: server_name.to_owned(),
            })?;
        Ok(Self {
            config,
            server_name,
        })
    }

    /// For the client's connect.
    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }
}
