//! What happens to a client, as told to subscribers.

use std::net::SocketAddr;
use std::time::SystemTime;

use actix::Message;
use serde::{Deserialize, Serialize};

use super::evidence::Evidence;
use crate::protocol::Proj;
use crate::supervision::ClientState;

/// Why a client went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineReason {
    /// Its watchdog fired: no heartbeat within its timeout.
    Timeout,
    /// It said so with an `offline` message.
    Offline,
    /// It was online when the server last stopped (or crashed), and did not beat within its
    /// timeout after the server came back: it most likely died while the server was down.
    TimeoutAfterRestart,
}

impl OfflineReason {
    /// Every reason, for metrics.
    pub const ALL: [OfflineReason; 3] = [
        OfflineReason::Timeout,
        OfflineReason::Offline,
        OfflineReason::TimeoutAfterRestart,
    ];

    /// The reason as written in events, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineReason::Timeout => "timeout",
            OfflineReason::Offline => "offline",
            OfflineReason::TimeoutAfterRestart => "timeout_after_restart",
        }
    }
}

impl std::fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to a client (or, for outages, to many), as every sink sees it.
///
/// Per client, `online` and `offline` alternate (an `online` with `recovered: true` is not a
/// new session: it ends a `late`), and every subscriber sees one client's events in order.
/// More kinds may come: match with a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The first heartbeat of a client that was not known; or, with `recovered`, the first
    /// heartbeat of a `late` client.
    Online {
        /// Who.
        proj: Proj,
        /// Where its heartbeat came from.
        addr: SocketAddr,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
        /// The client was `late` and beats again: not a new session.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recovered: bool,
        /// It comes back from this outage (the `id` of its `outage` event).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outage: Option<u64>,
    },
    /// The client is gone and has been removed.
    Offline {
        /// Who.
        proj: Proj,
        /// Why.
        reason: OfflineReason,
        /// Where its last heartbeat came from.
        addr: SocketAddr,
        /// Its last heartbeat.
        #[serde(with = "crate::clock::rfc3339_serde")]
        last_seen: SystemTime,
        /// When it was declared offline.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
        /// Why the verdict was made (absent only in events logged by older versions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Evidence>,
        /// The outage it is part of (the `id` of its `outage` event), once recognised.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outage: Option<u64>,
    },
    /// The client has been silent for `server.late_ratio` of the time after which it would be
    /// declared offline.
    Late {
        /// Who.
        proj: Proj,
        /// Where its last heartbeat came from.
        addr: SocketAddr,
        /// Its last heartbeat.
        #[serde(with = "crate::clock::rfc3339_serde")]
        last_seen: SystemTime,
        /// Its silence so far.
        silent_ms: u64,
        /// When it was judged late.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
        /// Why.
        evidence: Evidence,
    },
    /// An operator paused the client: it is not judged until resumed.
    Paused {
        /// Who.
        proj: Proj,
        /// When the pause ends by itself (`null`: when resumed).
        #[serde(default, with = "crate::clock::rfc3339_opt")]
        until: Option<SystemTime>,
        /// The glob of the maintenance window that paused it, if it was one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<String>,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// The client's pause ended: its watchdog runs again from the later of its last heartbeat
    /// and now.
    Resumed {
        /// Who.
        proj: Proj,
        /// Whether the pause ran out (`for`) rather than being resumed.
        expired: bool,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// The client went offline and online `transitions` times within `flap.window`: its
    /// further transitions are recorded but not announced until it is `stable`.
    Flapping {
        /// Who.
        proj: Proj,
        /// Transitions seen within the window.
        transitions: u32,
        /// `flap.window`.
        window_ms: u64,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// A flapping client had no transition for `flap.window`.
    Stable {
        /// Who.
        proj: Proj,
        /// Its state now.
        state: ClientState,
        /// Transitions recorded but not announced while it flapped.
        suppressed: u64,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// Many clients went offline together (`[outage]`): one event instead of a storm.
    Outage {
        /// Its number (this event's own id); each member's `offline` carries it as `outage`.
        id: u64,
        /// Clients offline in it when it was recognised.
        count: u64,
        /// Up to 100 of them.
        projs: Vec<Proj>,
        /// When the first of them went offline.
        #[serde(with = "crate::clock::rfc3339_serde")]
        started_at: SystemTime,
        /// When it was recognised.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// An outage is over: most of its clients are back, or `outage.max_duration` passed.
    OutageEnd {
        /// The outage's `id`.
        id: u64,
        /// Clients that went offline in it.
        count: u64,
        /// How many of them came back.
        recovered: u64,
        /// When it started.
        #[serde(with = "crate::clock::rfc3339_serde")]
        started_at: SystemTime,
        /// When it ended.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
}

#[cfg(test)]
impl Event {
    /// For tests: `proj` (a valid one) came online from 127.0.0.1:1 `at`.
    pub(crate) fn test_online(proj: &str, at: SystemTime) -> Self {
        Event::Online {
            proj: Proj::new(proj).expect("a valid proj"),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            at,
            recovered: false,
            outage: None,
        }
    }

    /// For tests: `proj` was declared offline by timeout `at`, last seen `last_seen`.
    pub(crate) fn test_offline(proj: &str, last_seen: SystemTime, at: SystemTime) -> Self {
        Event::Offline {
            proj: Proj::new(proj).expect("a valid proj"),
            reason: super::OfflineReason::Timeout,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            last_seen,
            at,
            evidence: None,
            outage: None,
        }
    }
}

impl Event {
    /// The client this event is about; `None` for outages, which are about many.
    pub fn proj(&self) -> Option<&Proj> {
        match self {
            Event::Online { proj, .. }
            | Event::Offline { proj, .. }
            | Event::Late { proj, .. }
            | Event::Paused { proj, .. }
            | Event::Resumed { proj, .. }
            | Event::Flapping { proj, .. }
            | Event::Stable { proj, .. } => Some(proj),
            Event::Outage { .. } | Event::OutageEnd { .. } => None,
        }
    }

    /// The kind, as in the JSON `event` field: `online`, `offline`, `late`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Online { .. } => "online",
            Event::Offline { .. } => "offline",
            Event::Late { .. } => "late",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::Flapping { .. } => "flapping",
            Event::Stable { .. } => "stable",
            Event::Outage { .. } => "outage",
            Event::OutageEnd { .. } => "outage_end",
        }
    }

    /// When it happened.
    pub fn at(&self) -> SystemTime {
        match self {
            Event::Online { at, .. }
            | Event::Offline { at, .. }
            | Event::Late { at, .. }
            | Event::Paused { at, .. }
            | Event::Resumed { at, .. }
            | Event::Flapping { at, .. }
            | Event::Stable { at, .. }
            | Event::Outage { at, .. }
            | Event::OutageEnd { at, .. } => *at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{DetectorKind, PhiValue};
    use std::time::Duration;

    #[test]
    fn json_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let online = Event::Online {
            proj: Proj::new("P-17").unwrap(),
            addr: "127.0.0.1:4000".parse().unwrap(),
            at,
            recovered: false,
            outage: None,
        };
        assert_eq!(
            serde_json::to_string(&online).unwrap(),
            r#"{"event":"online","proj":"P-17","addr":"127.0.0.1:4000","at":"2023-11-14T22:13:20.123000Z"}"#
        );
        let evidence = Evidence {
            detector: DetectorKind::Phi,
            silent_ms: 2400,
            timeout_ms: 20000,
            mean_interval_ms: Some(1000),
            missed_beats: 2,
            phi: Some(PhiValue::new(8.0)),
        };
        let offline = Event::Offline {
            proj: Proj::new("P-17").unwrap(),
            reason: OfflineReason::Timeout,
            addr: "127.0.0.1:4000".parse().unwrap(),
            last_seen: at,
            at,
            evidence: Some(evidence),
            outage: Some(41),
        };
        assert_eq!(
            serde_json::to_string(&offline).unwrap(),
            r#"{"event":"offline","proj":"P-17","reason":"timeout","addr":"127.0.0.1:4000","last_seen":"2023-11-14T22:13:20.123000Z","at":"2023-11-14T22:13:20.123000Z","evidence":{"detector":"phi","silent_ms":2400,"timeout_ms":20000,"mean_interval_ms":1000,"missed_beats":2,"phi":8.0},"outage":41}"#
        );
        let late = Event::Late {
            proj: Proj::new("P-17").unwrap(),
            addr: "127.0.0.1:4000".parse().unwrap(),
            last_seen: at,
            silent_ms: 1200,
            at,
            evidence: Evidence {
                detector: DetectorKind::Fixed,
                phi: None,
                mean_interval_ms: None,
                ..evidence
            },
        };
        assert_eq!(
            serde_json::to_string(&late).unwrap(),
            r#"{"event":"late","proj":"P-17","addr":"127.0.0.1:4000","last_seen":"2023-11-14T22:13:20.123000Z","silent_ms":1200,"at":"2023-11-14T22:13:20.123000Z","evidence":{"detector":"fixed","silent_ms":2400,"timeout_ms":20000,"mean_interval_ms":null,"missed_beats":2}}"#
        );
        let recovered = Event::Online {
            proj: Proj::new("P-17").unwrap(),
            addr: "127.0.0.1:4000".parse().unwrap(),
            at,
            recovered: true,
            outage: None,
        };
        assert!(serde_json::to_string(&recovered)
            .unwrap()
            .ends_with(r#""recovered":true}"#));
        let paused = Event::Paused {
            proj: Proj::new("P-17").unwrap(),
            until: None,
            window: Some("P-*".into()),
            at,
        };
        assert_eq!(
            serde_json::to_string(&paused).unwrap(),
            r#"{"event":"paused","proj":"P-17","until":null,"window":"P-*","at":"2023-11-14T22:13:20.123000Z"}"#
        );
        assert_eq!(paused.kind(), "paused");
        let end = Event::OutageEnd {
            id: 41,
            count: 20,
            recovered: 17,
            started_at: at,
            at,
        };
        assert_eq!(end.proj(), None);
        assert!(serde_json::to_string(&end)
            .unwrap()
            .starts_with(r#"{"event":"outage_end","id":41,"count":20,"recovered":17,"#));
    }
}
