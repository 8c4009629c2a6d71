//! The server's certificate and key, swappable while the server runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{provider, read_certs, TlsError};

/// `tls.cert` and `tls.key`, re-read on demand (SIGHUP in the binary).
///
/// rustls asks this resolver for the certificate at every handshake, so a reload takes effect
/// at the next connection, on both listeners (the HTTP API's configuration is a copy that
/// shares this resolver), without a restart: a certificate renewed every 90 days is rotated
/// with `kill -HUP`. Established sessions keep the keys they negotiated. A reload that fails
/// (a file half written, a key that does not match) keeps the certificate in force.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    /// Reads the certificate chain and its key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = provider();
        let current = read(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: ArcSwap::from_pointee(current),
        })
    }

    /// Reads both files again and serves them from the next handshake on; on error, keeps
    /// the current ones.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.cert, &self.key, &self.provider)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs("tls.cert", cert)?;
    let der = load_key(key)?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|source| TlsError::Rejected {
            setting: "tls.key",
            path: key.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|source| match source {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        source => TlsError::Rejected {
            setting: "tls.cert",
            path: cert.to_owned(),
            source,
        },
    })?;
    Ok(certified)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::from_pem("tls.key", path, "private key", e))
}
