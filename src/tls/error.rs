//! Why a TLS configuration could not be built.

use std::path::PathBuf;

/// A certificate, key or CA file that cannot be used. Its message is one line that names the
/// setting (`tls.cert`, `--ca`, ...) and the file, so that an operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be opened or read.
    #[error("{setting}: cannot read {}: {source}", path.display())]
    Read {
        /// The setting that names the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid PEM, or holds no item of the expected kind.
    #[error("{setting}: {}: no valid {what} in PEM format ({detail})", path.display())]
    Pem {
        /// The setting that names the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What was expected: "certificate" or "private key".
        what: &'static str,
        /// What the PEM parser said.
        detail: String,
    },
    /// `tls.key` is not the private key of the certificate in `tls.cert`.
    #[error("tls.key: {} is not the private key of the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the material: an unsupported key type, a CA certificate it cannot parse.
    #[error("{setting}: {}: {source}", path.display())]
    Rejected {
        /// The setting at fault.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The name to verify the server's certificate against is neither a DNS name nor an IP
    /// address.
    #[error("{setting}: {name:?} is not a valid DNS name or IP address")]
    ServerName {
        /// The setting that gave it.
        setting: &'static str,
        /// The name.
        name: String,
    },
}

impl TlsError {
    /// Sorts a PEM parser error into `Read` (I/O) or `Pem` (contents).
    pub(crate) fn from_pem(
        setting: &'static str,
        path: &std::path::Path,
        what: &'static str,
        error: rustls::pki_types::pem::Error,
    ) -> Self {
        match error {
            rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
                setting,
                path: path.to_owned(),
                source,
            },
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::Pem {
                setting,
                path: path.to_owned(),
                what,
                detail: "none found".into(),
            },
            other => TlsError::Pem {
                setting,
                path: path.to_owned(),
                what,
                detail: other.to_string(),
            },
        }
    }
}
