//! Certificates made at run time with rcgen: a CA and a server certificate it signed, for the
//! TLS tests (`tests/tls.rs`) and the HTTPS webhook test (`tests/webhooks.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use heartwatch::config::TlsConfig;
use heartwatch::tls::{ClientTls, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`, as PEM files in a
/// directory of their own, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate, what clients trust.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl Pki {
    /// Makes the files under a directory named after `name` (unique per test).
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hw-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("heartwatch test CA {name}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "heartwatch test server");
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("server certificate");

        let pki = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA");
        std::fs::write(&pki.cert, cert.pem()).expect("write certificate");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
        pki
    }

    pub fn tls_config(&self) -> TlsConfig {
        TlsConfig {
            cert: self.cert.clone(),
            key: self.key.clone(),
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// What the server loads from `tls.cert` and `tls.key`.
    pub fn server_tls(&self) -> ServerTls {
        self.server_tls_with(self.tls_config())
    }

    pub fn server_tls_with(&self, config: TlsConfig) -> ServerTls {
        ServerTls::load(&config)
            .expect("certificate and key load")
            .expect("TLS is on")
    }

    /// A client that trusts this CA and checks the name 127.0.0.1.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls::from_ca_file(&self.ca, "127.0.0.1").expect("CA loads")
    }

    /// The `HEARTWATCH__TLS__*` variables of a server with this certificate.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("HEARTWATCH__TLS__CERT", path_str(&self.cert)),
            ("HEARTWATCH__TLS__KEY", path_str(&self.key)),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_owned()
}
