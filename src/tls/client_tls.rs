//! What a heartbeat client needs to speak TLS: whom to trust and which name to verify.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::{provider, read_certs, TlsError};

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
        let certs = read_certs("--ca", ca)?;
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

    /// A connector for this configuration, for a client of one's own (the heartbeat client
    /// and `heartwatch bench` use it).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }
}

/// A plain-words reading of the handshake failures an operator meets most, appended to
/// rustls' own message (which names the variant, e.g. `UnknownIssuer`, not the fix).
pub(crate) fn hint(error: &std::io::Error) -> Option<&'static str> {
    use rustls::{CertificateError, Error, OtherError};
    let rustls_error = error.get_ref()?.downcast_ref::<Error>()?;
    let Error::InvalidCertificate(cause) = rustls_error else {
        return None;
    };
    match cause {
        CertificateError::UnknownIssuer => Some("the certificate is not signed by a trusted CA"),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            Some("the certificate has expired")
        }
        CertificateError::Other(OtherError(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            Some("the server presents a CA certificate (basicConstraints CA:TRUE) as its own")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_issuer_gets_a_hint_and_other_errors_do_not() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        assert_eq!(
            hint(&io),
            Some("the certificate is not signed by a trusted CA")
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(hint(&plain), None);
    }

    #[test]
    fn the_server_name_must_be_a_name_or_an_address() {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let config = Arc::new(config);
        assert!(ClientTls::new(config.clone(), "127.0.0.1").is_ok());
        assert!(ClientTls::new(config.clone(), "hw.example.com").is_ok());
        let e = ClientTls::new(config, "not a name")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--server-name") && e.contains("not a name"),
            "{e}"
        );
    }
}
