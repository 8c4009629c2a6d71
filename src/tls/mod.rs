//! TLS with rustls, for the heartbeat listener, the HTTP API and the heartbeat client.
//!
//! Every configuration here is built with [`provider`], rustls' ring backend, passed
//! explicitly: rustls' own default (aws-lc-rs) needs cmake and nasm to build, and a library
//! must not depend on, nor install, the process-wide default provider of the application
//! that embeds it.

mod cert_store;
mod client_tls;
mod error;
mod server_tls;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use crate::notify::https::client_config as https_client_config;
pub(crate) use client_tls::hint;
pub use client_tls::ClientTls;
pub use error::TlsError;
pub use server_tls::ServerTls;

/// The certificates of the PEM file `path`, named `setting` in errors (`tls.cert`, `--ca`,
/// `notify.ca`); a file without any certificate is an error.
pub(crate) fn read_certs(
    setting: &'static str,
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let pem = |e| TlsError::from_pem(setting, path, "certificate", e);
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(pem(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The crypto provider of every heartwatch TLS configuration: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
