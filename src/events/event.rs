//! What happens to a client, as told to subscribers.

use std::net::SocketAddr;
use std::time::SystemTime;

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::clock::serialize_rfc3339;
use crate::protocol::Proj;

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

/// A liveness transition. Each client's events alternate `Online`, `Offline`, `Online`, ...
/// and every subscriber sees them in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The first heartbeat of a client that was not known.
    Online {
        /// Who.
        proj: Proj,
        /// Where its first heartbeat came from.
        addr: SocketAddr,
        /// When.
        #[serde(
            serialize_with = "serialize_rfc3339",
            deserialize_with = "crate::clock::deserialize_rfc3339"
        )]
        at: SystemTime,
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
        #[serde(
            serialize_with = "serialize_rfc3339",
            deserialize_with = "crate::clock::deserialize_rfc3339"
        )]
        last_seen: SystemTime,
        /// When it was declared offline.
        #[serde(
            serialize_with = "serialize_rfc3339",
            deserialize_with = "crate::clock::deserialize_rfc3339"
        )]
        at: SystemTime,
    },
}

impl Event {
    /// The client this event is about.
    pub fn proj(&self) -> &Proj {
        match self {
            Event::Online { proj, .. } | Event::Offline { proj, .. } => proj,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let online = Event::Online {
            proj: Proj::new("P-17").unwrap(),
            addr: "127.0.0.1:4000".parse().unwrap(),
            at,
        };
        assert_eq!(
            serde_json::to_string(&online).unwrap(),
            r#"{"event":"online","proj":"P-17","addr":"127.0.0.1:4000","at":"2023-11-14T22:13:20.123000Z"}"#
        );
        let offline = Event::Offline {
            proj: Proj::new("P-17").unwrap(),
            reason: OfflineReason::Timeout,
            addr: "127.0.0.1:4000".parse().unwrap(),
            last_seen: at,
            at,
        };
        assert_eq!(
            serde_json::to_string(&offline).unwrap(),
            r#"{"event":"offline","proj":"P-17","reason":"timeout","addr":"127.0.0.1:4000","last_seen":"2023-11-14T22:13:20.123000Z","at":"2023-11-14T22:13:20.123000Z"}"#
        );
    }
}
