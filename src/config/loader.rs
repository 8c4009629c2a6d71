//! Layered loading and validation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use config::{Environment, File, FileFormat};

use super::Config;
use crate::auth::{AuthError, Authenticator};

/// The compiled-in `config/default.toml`: the bottom layer, and the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Smallest `server.max_frame_bytes`: a frame must at least hold a heartbeat with a long proj.
const MIN_FRAME_BYTES: usize = 64;

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

fn validate(config: &Config) -> Result<(), ConfigError> {
    let s = &config.server;
    let fmt = |d: Duration| humantime::format_duration(d).to_string();
    if s.min_timeout.is_zero() {
        return Err(value("server.min_timeout", "must be greater than zero"));
    }
    if s.max_timeout < s.min_timeout {
        return Err(value(
            "server.max_timeout",
            format!(
                "{} is shorter than server.min_timeout ({})",
                fmt(s.max_timeout),
                fmt(s.min_timeout)
            ),
        ));
    }
    if s.timeout < s.min_timeout || s.timeout > s.max_timeout {
        return Err(value(
            "server.timeout",
            format!(
                "{} is outside server.min_timeout ..= server.max_timeout ({} ..= {})",
                fmt(s.timeout),
                fmt(s.min_timeout),
                fmt(s.max_timeout)
            ),
        ));
    }
    if s.max_frame_bytes < MIN_FRAME_BYTES {
        return Err(value(
            "server.max_frame_bytes",
            format!(
                "{} is below the minimum of {MIN_FRAME_BYTES}",
                s.max_frame_bytes
            ),
        ));
    }
    if s.max_write_backlog < s.max_frame_bytes {
        return Err(value(
            "server.max_write_backlog",
            format!(
                "{} is below server.max_frame_bytes ({})",
                s.max_write_backlog, s.max_frame_bytes
            ),
        ));
    }
    if s.max_connections == 0 {
        return Err(value("server.max_connections", "must be greater than zero"));
    }
    if s.max_clients == 0 {
        return Err(value("server.max_clients", "must be greater than zero"));
    }
    if config.session.max_frame_rate > 0 && config.session.frame_burst == 0 {
        return Err(value(
            "session.frame_burst",
            "must be at least 1 when session.max_frame_rate is on",
        ));
    }
    if s.backlog == 0 {
        return Err(value("server.backlog", "must be greater than zero"));
    }
    if s.http_workers == 0 {
        return Err(value("server.http_workers", "must be greater than zero"));
    }
    let session = &config.session;
    if !session.idle_ping.is_zero() {
        if session.pong_timeout.is_zero() {
            return Err(value(
                "session.pong_timeout",
                "must be greater than zero when session.idle_ping is on",
            ));
        }
        if session.ping_retries == 0 {
            return Err(value(
                "session.ping_retries",
                "must be at least 1 when session.idle_ping is on",
            ));
        }
    }
    if !session.keepalive.is_zero()
        && (session.keepalive_interval.is_zero() || session.keepalive_retries == 0)
    {
        return Err(value(
            "session.keepalive_interval",
            "keepalive_interval and keepalive_retries must be positive when keepalive is on",
        ));
    }
    let tls = &config.tls;
    match (
        tls.cert.as_os_str().is_empty(),
        tls.key.as_os_str().is_empty(),
    ) {
        (false, true) => return Err(value("tls.key", "must be set when tls.cert is")),
        (true, false) => return Err(value("tls.cert", "must be set when tls.key is")),
        _ => {}
    }
    if tls.enabled() && tls.handshake_timeout.is_zero() {
        return Err(value(
            "tls.handshake_timeout",
            "must be greater than zero when TLS is on",
        ));
    }
    validate_storage(config)?;
    validate_notify(config)?;
    config
        .cluster
        .check()
        .map_err(|(key, problem)| value(key, problem))?;
    // Compiles the patterns and reads the tokens file once, so that a mistake stops the start
    // with a configuration error instead of refusing every client.
    Authenticator::from_config(&config.auth, None)?;
    Ok(())
}

fn validate_storage(config: &Config) -> Result<(), ConfigError> {
    let storage = &config.storage;
    if storage.fsync == crate::storage::FsyncPolicy::Interval && storage.fsync_interval.is_zero() {
        return Err(value(
            "storage.fsync_interval",
            "must be greater than zero with storage.fsync = \"interval\"",
        ));
    }
    if storage.segment_bytes == 0 {
        return Err(value("storage.segment_bytes", "must be greater than zero"));
    }
    if storage.max_bytes < storage.segment_bytes {
        return Err(value(
            "storage.max_bytes",
            format!(
                "{} is below storage.segment_bytes ({})",
                storage.max_bytes, storage.segment_bytes
            ),
        ));
    }
    Ok(())
}

fn validate_notify(config: &Config) -> Result<(), ConfigError> {
    let notify = &config.notify;
    if notify.retry_initial.is_zero() || notify.retry_max < notify.retry_initial {
        return Err(value(
            "notify.retry_initial",
            "must be greater than zero and at most notify.retry_max",
        ));
    }
    if notify.timeout.is_zero() {
        return Err(value("notify.timeout", "must be greater than zero"));
    }
    if !notify.ca.as_os_str().is_empty() {
        crate::notify::client_config(&notify.ca)?;
    }
    if !notify.webhook.is_empty() && !config.storage.enabled() && !config.cluster.enabled() {
        return Err(value(
            "notify.webhook",
            "webhooks are delivered from the event log: set storage.path (or cluster.redis)",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for hook in &notify.webhook {
        let uri: Result<actix_web::http::Uri, _> = hook.url.parse();
        let scheme_ok = uri
            .as_ref()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !scheme_ok {
            return Err(value(
                "notify.webhook.url",
                format!("{:?} is not an http:// or https:// URL", hook.url),
            ));
        }
        let name = hook.cursor_name();
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(value(
                "notify.webhook.name",
                format!("{name:?} may hold only letters, digits, '-' and '_'"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(value(
                "notify.webhook.name",
                format!("two webhooks share the cursor name {name:?} (same url or name)"),
            ));
        }
    }
    Ok(())
}

fn value(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        problem: problem.into(),
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
