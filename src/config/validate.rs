//! The rules a configuration must follow, in one place: [`ConfigLoader`](super::ConfigLoader)
//! applies them to what it loads, and [`Builder::start`](crate::Builder::start) to what an
//! application passes, so that no setting a file would be refused for reaches the server
//! through the library (where `min_timeout > max_timeout` used to panic at the first clamp).

use std::time::Duration;

use super::{
    AuthConfig, Config, ConfigError, FlapConfig, HistoryConfig, OutageConfig, PhiConfig,
    ServerConfig, SessionConfig, TlsConfig,
};
use crate::auth::Authenticator;
use crate::notify::NotifyConfig;
use crate::storage::StorageConfig;

/// Smallest `server.max_frame_bytes`: a frame must at least hold a heartbeat with a long proj.
const MIN_FRAME_BYTES: usize = 64;

/// Checks a whole loaded configuration.
pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    validate_parts(
        &config.server,
        &config.session,
        Some(&config.storage),
        Some(&config.notify),
        config.cluster.enabled(),
    )?;
    validate_detection(
        &config.server,
        &config.phi,
        &config.flap,
        &config.outage,
        &config.history,
    )?;
    config
        .cluster
        .check()
        .map_err(|(key, problem)| value(key, problem))?;
    validate_tls(&config.tls)?;
    config.ingest.check()?;
    validate_http_tokens(&config.auth)?;
    // Compiles the patterns and reads the tokens file once, so that a mistake stops the start
    // with a configuration error instead of refusing every client.
    Authenticator::from_config(&config.auth, None)?;
    Ok(())
}

/// Checks the parts a server runs with, as the loader has them and as
/// [`Builder`](crate::Builder) holds them (`storage` is `None` when the event log is off,
/// `notify` when webhooks were not configured; `cluster` in cluster mode, where webhooks are
/// delivered from the cluster's stream and need no event log).
pub(crate) fn validate_parts(
    server: &ServerConfig,
    session: &SessionConfig,
    storage: Option<&StorageConfig>,
    notify: Option<&NotifyConfig>,
    cluster: bool,
) -> Result<(), ConfigError> {
    validate_server(server)?;
    validate_session(session)?;
    if let Some(storage) = storage {
        validate_storage(storage)?;
    }
    if let Some(notify) = notify {
        validate_notify(
            notify,
            storage.is_some_and(StorageConfig::enabled) || cluster,
        )?;
    }
    Ok(())
}

fn validate_server(s: &ServerConfig) -> Result<(), ConfigError> {
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
    if s.backlog == 0 {
        return Err(value("server.backlog", "must be greater than zero"));
    }
    if s.http_workers == 0 {
        return Err(value("server.http_workers", "must be greater than zero"));
    }
    Ok(())
}

/// Checks how silent clients are judged, announced and remembered (`server.detector` and its
/// neighbours, `[phi]`, `[flap]`, `[outage]`, `[history]`).
pub(crate) fn validate_detection(
    server: &ServerConfig,
    phi: &PhiConfig,
    flap: &FlapConfig,
    outage: &OutageConfig,
    history: &HistoryConfig,
) -> Result<(), ConfigError> {
    if !(0.0..1.0).contains(&server.late_ratio) {
        return Err(value(
            "server.late_ratio",
            format!(
                "{} is not in 0 ..< 1 (0 turns late verdicts off)",
                server.late_ratio
            ),
        ));
    }
    if !(server.interval_ratio > 0.0 && server.interval_ratio <= 1.0) {
        return Err(value(
            "server.interval_ratio",
            format!("{} is not in 0 <.. 1", server.interval_ratio),
        ));
    }
    if !server.stall_threshold.is_zero() && server.stall_grace.is_zero() {
        return Err(value(
            "server.stall_grace",
            "must be greater than zero when server.stall_threshold is on",
        ));
    }
    if server.max_pending == 0 {
        return Err(value("server.max_pending", "must be greater than zero"));
    }
    if !(2..=usize::from(u16::MAX)).contains(&phi.window) {
        return Err(value(
            "phi.window",
            format!("{} is not in 2 ..= 65535", phi.window),
        ));
    }
    if !(1.0..=100.0).contains(&phi.threshold) {
        return Err(value(
            "phi.threshold",
            format!("{} is not in 1 ..= 100", phi.threshold),
        ));
    }
    if phi.min_deviation.is_zero() {
        return Err(value("phi.min_deviation", "must be greater than zero"));
    }
    if phi.min_samples == 0 || phi.min_samples > phi.window {
        return Err(value(
            "phi.min_samples",
            format!(
                "{} is not in 1 ..= phi.window ({})",
                phi.min_samples, phi.window
            ),
        ));
    }
    if flap.transitions > 0 && (flap.transitions < 2 || flap.window.is_zero()) {
        return Err(value(
            "flap.transitions",
            "must be 0 (off) or at least 2, with a flap.window greater than zero",
        ));
    }
    if outage.min_clients > 0 {
        if !(outage.ratio > 0.0 && outage.ratio <= 1.0) {
            return Err(value(
                "outage.ratio",
                format!("{} is not in 0 <.. 1", outage.ratio),
            ));
        }
        if outage.window.is_zero() || outage.max_duration.is_zero() {
            return Err(value(
                "outage.window",
                "outage.window and outage.max_duration must be greater than zero",
            ));
        }
    }
    if history.limit == 0 {
        return Err(value("history.limit", "must be greater than zero"));
    }
    if history.samples > usize::from(u16::MAX) {
        return Err(value(
            "history.samples",
            format!("{} is above 65535", history.samples),
        ));
    }
    Ok(())
}

fn validate_session(session: &SessionConfig) -> Result<(), ConfigError> {
    if session.max_frame_rate > 0 && session.frame_burst == 0 {
        return Err(value(
            "session.frame_burst",
            "must be at least 1 when session.max_frame_rate is on",
        ));
    }
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
    Ok(())
}

/// The read and admin tokens of the HTTP API must differ, or every reader could write.
pub(crate) fn validate_http_tokens(auth: &AuthConfig) -> Result<(), ConfigError> {
    if !auth.http_admin_token.is_empty() && auth.http_admin_token == auth.http_token {
        return Err(value(
            "auth.http_admin_token",
            "must differ from auth.http_token, or every reader could write",
        ));
    }
    Ok(())
}

fn validate_tls(tls: &TlsConfig) -> Result<(), ConfigError> {
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
    Ok(())
}

fn validate_storage(storage: &StorageConfig) -> Result<(), ConfigError> {
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

/// `storage_enabled`: webhooks are delivered from the event log, so they need it.
fn validate_notify(notify: &NotifyConfig, storage_enabled: bool) -> Result<(), ConfigError> {
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
    if !notify.webhook.is_empty() && !storage_enabled {
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
