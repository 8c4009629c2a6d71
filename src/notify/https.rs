//! Whom a webhook delivery trusts over `https://`.

use std::path::Path;
use std::sync::Arc;

/// The trusted roots of `https://` webhooks could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HttpsRootsError {
    /// `notify.ca` could not be read or holds no certificate.
    #[error(transparent)]
    Ca(#[from] crate::tls::TlsError),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls configuration of webhook deliveries: trusting the PEM certificates of `ca` if
/// set (a private CA), else the operating system's roots (webhooks often go to public HTTPS
/// services, unlike heartbeat clients, which trust only their `--ca`).
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, HttpsRootsError> {
    let mut roots = rustls::RootCertStore::empty();
    if ca.as_os_str().is_empty() {
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            log::warn!(
                "no system root certificates found: https:// webhooks will fail unless \
                 notify.ca names a CA file"
            );
        }
    } else {
        for cert in crate::tls::read_certs("notify.ca", ca)? {
            roots.add(cert)?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
