//! One line of the event log.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::clock::{deserialize_rfc3339, millis, serialize_rfc3339};
use crate::events::{ClientTimeout, Event, OfflineReason, Published};
use crate::protocol::Proj;

/// A line of the event log: an event with its sequence number, or part of a snapshot.
///
/// Events carry the same fields as [`Event`] (so the log reads like the event stream), plus a
/// `seq` that webhooks use as a delivery id and a cursor, plus what recovery needs and the
/// public event does not say (`timeout_ms`, the client's watchdog timeout).
///
/// A snapshot is the set of online clients, written at the start of each segment: a
/// `snapshot` line with the count, one `client` line per client, and a `snapshot_end` line
/// with the count again. Recovery trusts a snapshot only when its end line is there and the
/// counts agree, so a crash in the middle of one falls back to the segments before it (which
/// are deleted only once the snapshot after them is complete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogRecord {
    /// A client came online.
    Online {
        /// Sequence number, from 1, increasing by one per event across restarts.
        seq: u64,
        /// Who.
        proj: Proj,
        /// Where its first heartbeat came from.
        addr: SocketAddr,
        /// When.
        #[serde(
            serialize_with = "serialize_rfc3339",
            deserialize_with = "deserialize_rfc3339"
        )]
        at: SystemTime,
        /// Its watchdog timeout.
        timeout_ms: u64,
        /// Whether that timeout is the server's default (the client did not ask for one): after
        /// a restart it follows the new default. Absent (false) in logs written before it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        timeout_default: bool,
        /// In cluster mode: the claim's fencing token and the node incarnation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<ClusterStamp>,
    },
    /// A client went offline.
    Offline {
        /// Sequence number.
        seq: u64,
        /// Who.
        proj: Proj,
        /// Why.
        reason: OfflineReason,
        /// Where its last heartbeat came from.
        addr: SocketAddr,
        /// Its last heartbeat.
        #[serde(
            serialize_with = "serialize_rfc3339",
            deserialize_with = "deserialize_rfc3339"
        )]
        last_seen: SystemTime,
        /// When it was declared offline.
        #[serde(
            serialize_with = "serialize_rfc3339",
            deserialize_with = "deserialize_rfc3339"
        )]
        at: SystemTime,
        /// In cluster mode: the fencing token of the claim it ends, the node incarnation, and
        /// the lost node of an adopted client.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<ClusterStamp>,
    },
    /// A snapshot of `clients` online clients begins.
    Snapshot {
        /// How many `client` lines follow.
        clients: u64,
        /// The sequence number of the last event before the snapshot.
        after_seq: u64,
    },
    /// One online client, inside a snapshot.
    Client {
        /// Who.
        proj: Proj,
        /// Where its last known heartbeat came from.
        addr: SocketAddr,
        /// Its last known heartbeat.
        #[serde(
            serialize_with = "serialize_rfc3339",
            deserialize_with = "deserialize_rfc3339"
        )]
        last_seen: SystemTime,
        /// Its watchdog timeout.
        timeout_ms: u64,
        /// Whether that timeout is the server's default (the client did not ask for one): after
        /// a restart it follows the new default. Absent (false) in logs written before it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        timeout_default: bool,
    },
    /// The snapshot is complete.
    SnapshotEnd {
        /// The count of its `snapshot` line, again.
        clients: u64,
    },
}

/// What cluster mode adds to a transition in the log, which is then its durable outbox: enough
/// to publish it to Redis after an outage, or after a restart, exactly as it was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterStamp {
    /// The fencing token of the claim.
    pub token: String,
    /// The node incarnation that decided it.
    pub node: String,
    /// For an adopted client's offline: the node it was lost with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_node: Option<String>,
}

impl LogRecord {
    /// The record of a published event.
    pub fn from_published(published: &Published) -> Self {
        let seq = published.id;
        match published.event.clone() {
            Event::Online { proj, addr, at } => {
                let timeout = published.timeout.unwrap_or(ClientTimeout {
                    timeout: Duration::ZERO,
                    requested: true,
                });
                LogRecord::Online {
                    seq,
                    proj,
                    addr,
                    at,
                    timeout_ms: millis(timeout.timeout),
                    timeout_default: !timeout.requested,
                    cluster: published.stamp.clone(),
                }
            }
            Event::Offline {
                proj,
                reason,
                addr,
                last_seen,
                at,
            } => LogRecord::Offline {
                seq,
                proj,
                reason,
                addr,
                last_seen,
                at,
                cluster: published.stamp.clone(),
            },
        }
    }

    /// The cluster stamp of an event record, if it has one.
    pub fn cluster(&self) -> Option<&ClusterStamp> {
        match self {
            LogRecord::Online { cluster, .. } | LogRecord::Offline { cluster, .. } => {
                cluster.as_ref()
            }
            _ => None,
        }
    }

    /// The client's timeout, for an `online` record.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            LogRecord::Online { timeout_ms, .. } => Some(Duration::from_millis(*timeout_ms)),
            _ => None,
        }
    }

    /// The sequence number, for an event.
    pub fn seq(&self) -> Option<u64> {
        match self {
            LogRecord::Online { seq, .. } | LogRecord::Offline { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// The public event and its sequence number, for an event.
    pub fn to_event(&self) -> Option<(u64, Event)> {
        match self.clone() {
            LogRecord::Online {
                seq,
                proj,
                addr,
                at,
                ..
            } => Some((seq, Event::Online { proj, addr, at })),
            LogRecord::Offline {
                seq,
                proj,
                reason,
                addr,
                last_seen,
                at,
                ..
            } => Some((
                seq,
                Event::Offline {
                    proj,
                    reason,
                    addr,
                    last_seen,
                    at,
                },
            )),
            _ => None,
        }
    }

    /// Appends the record as one JSON line.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // A record is plain data (strings, numbers, an address): serializing cannot fail.
        serde_json::to_writer(&mut *out, self).expect("a log record serializes");
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn events_round_trip_through_a_line() {
        let online = Event::Online {
            proj: Proj::new("P-1").unwrap(),
            addr: "127.0.0.1:9".parse().unwrap(),
            at: at(1_700_000_000_123),
        };
        let record = LogRecord::from_published(&Published {
            id: 7,
            event: online.clone(),
            timeout: Some(ClientTimeout {
                timeout: Duration::from_secs(20),
                requested: true,
            }),
            stamp: None,
        });
        let mut line = Vec::new();
        record.write_line(&mut line);
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"event\":\"online\",\"seq\":7,\"proj\":\"P-1\",\"addr\":\"127.0.0.1:9\",\
             \"at\":\"2023-11-14T22:13:20.123000Z\",\"timeout_ms\":20000}\n"
        );
        let back: LogRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.to_event(), Some((7, online)));
    }

    #[test]
    fn a_defaulted_timeout_is_marked_and_old_lines_read_as_requested() {
        let online = Event::Online {
            proj: Proj::new("P-1").unwrap(),
            addr: "127.0.0.1:9".parse().unwrap(),
            at: at(1_000),
        };
        let record = LogRecord::from_published(&Published {
            id: 1,
            event: online,
            timeout: Some(ClientTimeout {
                timeout: Duration::from_secs(3),
                requested: false,
            }),
            stamp: None,
        });
        let mut line = Vec::new();
        record.write_line(&mut line);
        assert!(std::str::from_utf8(&line)
            .unwrap()
            .contains("\"timeout_default\":true"));
        let old = r#"{"event":"online","seq":1,"proj":"P-1","addr":"127.0.0.1:9","at":"1970-01-01T00:00:01Z","timeout_ms":3000}"#;
        let LogRecord::Online {
            timeout_default, ..
        } = serde_json::from_str(old).unwrap()
        else {
            panic!("not an online record")
        };
        assert!(!timeout_default);
    }

    #[test]
    fn a_cluster_stamp_round_trips_and_is_absent_in_single_node_mode() {
        let offline = Event::Offline {
            proj: Proj::new("P-1").unwrap(),
            reason: OfflineReason::Timeout,
            addr: "127.0.0.1:9".parse().unwrap(),
            last_seen: at(1_000),
            at: at(2_000),
        };
        let stamp = ClusterStamp {
            token: "t1".into(),
            node: "n1-ab".into(),
            lost_node: Some("n2".into()),
        };
        let mut published = Published {
            id: 9,
            event: offline.clone(),
            timeout: None,
            stamp: Some(stamp.clone()),
        };
        let mut line = Vec::new();
        LogRecord::from_published(&published).write_line(&mut line);
        let back: LogRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.cluster(), Some(&stamp));
        assert_eq!(back.to_event(), Some((9, offline)));
        published.stamp = None;
        let mut plain = Vec::new();
        LogRecord::from_published(&published).write_line(&mut plain);
        assert!(!std::str::from_utf8(&plain).unwrap().contains("cluster"));
    }

    #[test]
    fn offline_keeps_its_reason() {
        let offline = Event::Offline {
            proj: Proj::new("P-1").unwrap(),
            reason: OfflineReason::TimeoutAfterRestart,
            addr: "127.0.0.1:9".parse().unwrap(),
            last_seen: at(1_000),
            at: at(2_000),
        };
        let record = LogRecord::from_published(&Published {
            id: 8,
            event: offline.clone(),
            timeout: None,
            stamp: None,
        });
        let mut line = Vec::new();
        record.write_line(&mut line);
        assert!(std::str::from_utf8(&line)
            .unwrap()
            .contains("\"reason\":\"timeout_after_restart\""));
        let back: LogRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.to_event(), Some((8, offline)));
    }
}
