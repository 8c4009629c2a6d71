//! Notifications that arrive: webhooks, delivered from the event log.
//!
//! Each webhook follows the log with its own cursor, so an event is POSTed even if it
//! happened while the receiver was down, or before a restart of this server; it is retried
//! with exponential backoff until the receiver answers 2xx. Events reach one webhook in log
//! order, one at a time.

mod cursor;
pub(crate) mod https;
mod sender;
mod signature;
mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub(crate) use cursor::CursorFile;
pub(crate) use https::client_config;
pub(crate) use sender::Sender;
pub use signature::{sign, verify, SIGNATURE_HEADER};
pub(crate) use webhook::{tls_for, Webhooks};
pub use webhook::{DELIVERY_HEADER, EVENT_HEADER};

use crate::events::Event;

/// `[notify]`: where events are sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// First retry delay bound of a failed delivery; doubles per failure.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Largest retry delay bound.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long one POST may take before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of the CA(s) `https://` webhooks are verified against; empty: the system's.
    pub ca: PathBuf,
    /// The webhooks (`[[notify.webhook]]`).
    pub webhook: Vec<WebhookConfig>,
}

/// One `[[notify.webhook]]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Which events: `online`, `offline`, `late`, `paused`, `resumed`, `flapping`, `stable`,
    /// `outage`, `outage_end`; empty or absent: all.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// Key of the HMAC-SHA256 signature header; empty: unsigned.
    #[serde(default)]
    pub secret: String,
    /// Names the webhook's delivery cursor on disk; default: derived from the URL. Set it to
    /// keep the cursor when the URL changes.
    #[serde(default)]
    pub name: String,
}

/// Never prints the secret.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &if self.secret.is_empty() { "" } else { "<set>" })
            .field("name", &self.name)
            .finish()
    }
}

impl WebhookConfig {
    /// Whether `event` is one this webhook wants.
    pub fn wants(&self, event: &Event) -> bool {
        self.events.is_empty() || self.events.contains(&EventKind::of(event))
    }

    /// Whether an event of kind `kind` (as spelled in events: `online`, `offline`, ...) is one
    /// this webhook wants; kinds it cannot name are wanted only without a filter.
    pub fn wants_kind(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|k| k.as_str() == kind)
    }

    /// The cursor's name: `name`, or a digest of the URL.
    pub fn cursor_name(&self) -> String {
        if self.name.is_empty() {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(self.url.as_bytes());
            format!("url-{}", hex::encode(&digest[..8]))
        } else {
            self.name.clone()
        }
    }
}

/// The kinds of events a webhook can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A client came online (a recovered late client too).
    Online,
    /// A client went offline (any reason).
    Offline,
    /// A client is late.
    Late,
    /// A client was paused.
    Paused,
    /// A client's pause ended.
    Resumed,
    /// A client started flapping.
    Flapping,
    /// A flapping client is stable again.
    Stable,
    /// Many clients went offline together.
    Outage,
    /// An outage ended.
    OutageEnd,
}

impl EventKind {
    /// The kind of `event`.
    pub fn of(event: &Event) -> Self {
        match event {
            Event::Online { .. } => EventKind::Online,
            Event::Offline { .. } => EventKind::Offline,
            Event::Late { .. } => EventKind::Late,
            Event::Paused { .. } => EventKind::Paused,
            Event::Resumed { .. } => EventKind::Resumed,
            Event::Flapping { .. } => EventKind::Flapping,
            Event::Stable { .. } => EventKind::Stable,
            Event::Outage { .. } => EventKind::Outage,
            Event::OutageEnd { .. } => EventKind::OutageEnd,
        }
    }

    /// As written in the `event` field and the event header.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Online => "online",
            EventKind::Offline => "offline",
            EventKind::Late => "late",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::Flapping => "flapping",
            EventKind::Stable => "stable",
            EventKind::Outage => "outage",
            EventKind::OutageEnd => "outage_end",
        }
    }
}
