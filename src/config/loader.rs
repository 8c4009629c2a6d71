//! Layered loading and validation.

use std::collections::HashMap;
use std::path::PathBuf;
#[cfg(test)]
use std::time::Duration;

use config::{Environment, File, FileFormat};

use super::validate::validate;
use super::Config;
use crate::auth::AuthError;

/// The compiled-in `config/default.toml`: the bottom layer, and the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration that cannot be used. Its message is one line naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value could not be parsed.
    #[error("invalid configuration: {0}")]
    Source(#[from] config::ConfigError),
    /// The protocol tokens cannot be used (a bad pattern, an unreadable `auth.tokens_file`).
    #[error("invalid configuration: {0}")]
    Auth(#[from] AuthError),
    /// A certificate file cannot be used (its message names the setting and the file).
    #[error("invalid configuration: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A value parsed but is not acceptable.
    #[error("invalid configuration: {key}: {problem}")]
    Value {
        /// The key, e.g. `server.timeout`.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// Builds a [`Config`] from the layers: defaults < file < environment < overrides.
#[derive(Debug, Default)]
pub struct ConfigLoader {
    file: Option<PathBuf>,
    env: Option<HashMap<String, String>>,
    no_env: bool,
    overrides: Vec<(String, String)>,
}

impl ConfigLoader {
    /// Defaults and the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a TOML file above the defaults; it must exist.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Reads `HEARTWATCH__*` variables from `vars` instead of the process environment.
    pub fn env(mut self, vars: HashMap<String, String>) -> Self {
        self.env = Some(vars);
        self
    }

    /// Ignores the environment.
    pub fn without_env(mut self) -> Self {
        self.no_env = true;
        self
    }

    /// Sets `key` (e.g. `server.listen`) above every other layer, as a command-line flag does.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Reads every layer and validates the result.
    pub fn load(self) -> Result<Config, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = &self.file {
            builder = builder.add_source(File::from(path.clone()).format(FileFormat::Toml));
        }
        if !self.no_env {
            builder = builder.add_source(
                Environment::with_prefix("HEARTWATCH")
                    .prefix_separator("__")
                    .separator("__")
                    .source(self.env),
            );
        }
        for (key, value) in self.overrides {
            builder = builder.set_override(key, value)?;
        }
        let config: Config = builder.build()?.try_deserialize()?;
        validate(&config)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = ConfigLoader::new().without_env().load().unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:7700".parse().unwrap());
        assert_eq!(c.server.http, "127.0.0.1:7701".parse().unwrap());
        assert_eq!(c.server.timeout, Duration::from_secs(20));
        assert_eq!(c.server.min_timeout, Duration::from_millis(100));
        assert_eq!(c.server.max_timeout, Duration::from_secs(24 * 3600));
        assert_eq!(c.server.max_frame_bytes, 65536);
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("hw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("layers.toml");
        std::fs::write(
            &file,
            "[server]\ntimeout = \"5s\"\nmax_frame_bytes = 1000\n",
        )
        .unwrap();
        let c = ConfigLoader::new()
            .file(&file)
            .env(env(&[
                ("HEARTWATCH__SERVER__MAX_FRAME_BYTES", "128"),
                ("HEARTWATCH__SERVER__TIMEOUT", "7s"),
            ]))
            .set("server.timeout", "9s")
            .load()
            .unwrap();
        assert_eq!(c.server.max_frame_bytes, 128, "env beats file");
        assert_eq!(c.server.timeout, Duration::from_secs(9), "flag beats env");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn error(loader: ConfigLoader) -> String {
        loader.without_env().load().unwrap_err().to_string()
    }

    #[test]
    fn the_admin_token_must_differ_from_the_read_token_and_is_never_printed() {
        let e = error(
            ConfigLoader::new()
                .set("auth.http_token", "same-secret")
                .set("auth.http_admin_token", "same-secret"),
        );
        assert!(e.contains("auth.http_admin_token"), "{e}");
        assert!(!e.contains("same-secret"), "{e}");
        let c = ConfigLoader::new()
            .without_env()
            .set("auth.http_token", "read-secret")
            .set("auth.http_admin_token", "admin-secret")
            .load()
            .unwrap();
        assert_eq!(c.auth.http_admin_token, "admin-secret");
        let shown = format!("{:?}", c.auth);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("http_admin_token"), "{shown}");
    }

    #[test]
    fn errors_name_the_key_on_one_line() {
        let cases = [
            ("server.timeout", "soon", "server.timeout"),
            ("server.timeout", "2d", "outside"),
            ("server.min_timeout", "0s", "server.min_timeout"),
            ("server.listen", "nowhere", "server.listen"),
            ("server.max_frame_bytes", "-1", "server.max_frame_bytes"),
            ("server.max_frame_bytes", "10", "server.max_frame_bytes"),
            ("server.typo", "1", "typo"),
            ("log.level", "loud", "log.level"),
            ("tls.cert", "/etc/heartwatch/cert.pem", "tls.key"),
            ("tls.key", "/etc/heartwatch/key.pem", "tls.cert"),
            ("tls.handshake_timeout", "never", "tls.handshake_timeout"),
        ];
        for (key, value, needle) in cases {
            let e = error(ConfigLoader::new().set(key, value));
            assert!(e.contains(needle), "{key}={value}: {e}");
            assert!(!e.contains('\n'), "{key}={value}: not one line: {e}");
        }
    }

    #[test]
    fn proj_token_patterns_keep_their_case_and_punctuation() {
        let dir = std::env::temp_dir().join(format!("hw-config-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("auth.toml");
        std::fs::write(
            &file,
            "[auth.proj_tokens]\n\"A-*\" = \"tok-a\"\n\"svc.Db[0-9]\" = \"tok-db\"\n",
        )
        .unwrap();
        let c = ConfigLoader::new()
            .without_env()
            .file(&file)
            .load()
            .unwrap();
        let patterns: Vec<&str> = c.auth.proj_tokens.keys().map(String::as_str).collect();
        assert_eq!(patterns, ["A-*", "svc.Db[0-9]"]);
        assert!(c.auth.protocol_auth());
        assert!(!format!("{:?}", c.auth).contains("tok-"), "{:?}", c.auth);
        std::fs::write(&file, "[auth.proj_tokens]\n\"A-[\" = \"tok-a\"\n").unwrap();
        let e = error(ConfigLoader::new().file(&file));
        assert!(e.contains("auth.proj_tokens") && e.contains("A-["), "{e}");
        assert!(!e.contains("tok-a") && !e.contains('\n'), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unreadable_tokens_file_is_an_error_naming_it() {
        let e = error(ConfigLoader::new().set("auth.tokens_file", "/nonexistent/hw-tokens.toml"));
        assert!(e.contains("auth.tokens_file"), "{e}");
        assert!(e.contains("/nonexistent/hw-tokens.toml"), "{e}");
        assert!(!ConfigLoader::new()
            .without_env()
            .load()
            .unwrap()
            .auth
            .protocol_auth());
    }

    #[test]
    fn tls_is_off_by_default_and_needs_a_handshake_deadline() {
        let c = ConfigLoader::new().without_env().load().unwrap();
        assert!(!c.tls.enabled());
        assert_eq!(c.tls.handshake_timeout, Duration::from_secs(10));
        let e = error(
            ConfigLoader::new()
                .set("tls.cert", "c.pem")
                .set("tls.key", "k.pem")
                .set("tls.handshake_timeout", "0s"),
        );
        assert!(e.contains("tls.handshake_timeout"), "{e}");
    }

    #[test]
    fn storage_and_webhook_mistakes_name_their_key() {
        let e = error(ConfigLoader::new().set("notify.ca", "/nonexistent/hw-ca.pem"));
        assert_eq!(e.matches("notify.ca").count(), 1, "named once: {e}");
        assert!(
            e.contains("/nonexistent/hw-ca.pem") && !e.contains('\n'),
            "{e}"
        );
        let e = error(ConfigLoader::new().set("storage.segment_bytes", "0"));
        assert!(e.contains("storage.segment_bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hooks.toml");
        let hook = "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/x\"\n";
        std::fs::write(&file, format!("[storage]\npath = \"\"\n{hook}")).unwrap();
        let e = error(ConfigLoader::new().without_env().file(&file));
        assert!(
            e.contains("notify.webhook") && e.contains("storage.path"),
            "{e}"
        );
        std::fs::write(&file, hook.replace("http://", "ftp://")).unwrap();
        let e = error(ConfigLoader::new().without_env().file(&file));
        assert!(e.contains("notify.webhook.url"), "{e}");
    }

    #[test]
    fn cluster_keys_come_from_the_environment_and_are_checked() {
        let c = ConfigLoader::new()
            .env(env(&[
                ("HEARTWATCH__CLUSTER__REDIS", "redis://127.0.0.1:6390/0"),
                ("HEARTWATCH__CLUSTER__NODE", "n1"),
                ("HEARTWATCH__CLUSTER__KEY_PREFIX", "hw-test"),
                ("HEARTWATCH__CLUSTER__RENEW_INTERVAL", "200ms"),
                ("HEARTWATCH__CLUSTER__DEAD_AFTER", "1s"),
                ("HEARTWATCH__SERVER__REUSE_PORT", "true"),
            ]))
            .load()
            .unwrap();
        assert!(c.cluster.enabled());
        assert_eq!(c.cluster.node, "n1");
        assert_eq!(c.cluster.key_prefix, "hw-test");
        assert_eq!(c.cluster.renew_interval, Duration::from_millis(200));
        assert_eq!(c.cluster.dead_after, Duration::from_secs(1));
        assert_eq!(c.cluster.dead_rounds(), 5);
        assert!(c.server.reuse_port);
        assert!(!Config::default().server.reuse_port);
        let on = |l: ConfigLoader| l.set("cluster.redis", "redis://127.0.0.1:6390");
        let e = error(on(ConfigLoader::new()).set("cluster.dead_after", "1s"));
        assert!(e.contains("cluster.dead_after"), "{e}");
        let e = error(on(ConfigLoader::new()).set("cluster.node", "a b"));
        assert!(e.contains("cluster.node"), "{e}");
        let e = error(ConfigLoader::new().set("cluster.redis", "http://x"));
        assert!(e.contains("cluster.redis"), "{e}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let e = error(ConfigLoader::new().file("/nonexistent/heartwatch.toml"));
        assert!(e.contains("/nonexistent/heartwatch.toml"), "{e}");
    }
}
