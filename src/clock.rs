//! The one place time comes from.
//!
//! Deadlines use tokio's monotonic [`Instant`], which tests pause and advance
//! (`tokio::time::pause`), so a 20 s watchdog is tested in microseconds of real time.
//! Wall-clock time ([`SystemTime`]) is only for display: `last_seen` and event timestamps.

use std::time::SystemTime;

pub use tokio::time::Instant;

/// Monotonic now: the base of every deadline.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock now: for timestamps shown to people and written to events.
pub fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// A duration in whole milliseconds, saturating (for `timeout_ms` on the wire, in the API and
/// in the event log).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Formats a wall-clock time as RFC 3339 with millisecond precision, in UTC (for logs and
/// people).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Serde helper for the API and events: RFC 3339 in UTC with microsecond precision, so that a
/// detection delay of a millisecond or two can be measured from the timestamps themselves.
pub fn serialize_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

/// Serde helper for the event log: the inverse of [`serialize_rfc3339`].
pub fn deserialize_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
}

/// Serde helpers for a time, for `#[serde(with = "crate::clock::rfc3339_serde")]`: RFC 3339
/// as [`serialize_rfc3339`] writes it and [`deserialize_rfc3339`] reads it.
pub mod rfc3339_serde {
    pub use super::deserialize_rfc3339 as deserialize;
    pub use super::serialize_rfc3339 as serialize;
}

/// Serde helpers for an optional time: RFC 3339 like [`serialize_rfc3339`], `null` for none.
pub mod rfc3339_opt {
    use std::time::SystemTime;

    /// Serializes `Some(t)` as RFC 3339, `None` as `null`.
    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize_rfc3339(t, s),
            None => s.serialize_none(),
        }
    }

    /// The inverse of [`serialize`].
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
        text.map(|t| humantime::parse_rfc3339(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}
