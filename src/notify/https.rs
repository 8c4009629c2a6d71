//! Whom a webhook delivery trusts over `https://`.

use std::path::Path;
use std::sync::Arc;

use crate::tls::{provider, read_certs, TlsError};

/// The rustls configuration of webhook deliveries: trusting the PEM certificates of `ca` if
/// set (a private CA), else the operating system's roots (webhooks often go to public HTTPS
/// services, unlike heartbeat clients, which trust only their `--ca`).
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let rejected = |source| TlsError::Rejected {
        setting: "notify.ca",
        path: ca.to_owned(),
        source,
    };
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
        for cert in read_certs("notify.ca", ca)? {
            roots.add(cert).map_err(rejected)?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
