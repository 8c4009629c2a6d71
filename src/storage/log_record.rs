//! One line of the event log.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::clock::millis;
use crate::events::{ClientTimeout, Event, Evidence, OfflineReason, Published};
use crate::protocol::Proj;
use crate::supervision::{ClientState, IntervalSummary};

/// A line of the event log: an event with its sequence number, or part of a snapshot.
///
/// Events carry the same fields as [`Event`] (so the log reads like the event stream), plus a
/// `seq` that webhooks use as a delivery id and a cursor, plus what recovery and the history
/// need and the public event does not say (`timeout_ms`, the client's watchdog timeout; the
/// interval statistics of a client that went offline; `muted` for a flapping client's
/// transitions, which webhooks skip). Every field added since the first version is optional,
/// so logs written before it are still read.
///
/// A snapshot is the set of online clients, written at the start of each segment: a
/// `snapshot` line with the count, one `client` line per client, and a `snapshot_end` line
/// with the count again. Recovery trusts a snapshot only when its end line is there and the
/// counts agree, so a crash in the middle of one falls back to the segments before it (which
/// are deleted only once the snapshot after them is complete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogRecord {
    /// A client came online (or, with `recovered`, a late client beat again).
    Online {
        /// Sequence number, from 1, increasing by one per event across restarts.
        seq: u64,
        /// Who.
        proj: Proj,
        /// Where its first heartbeat came from.
        addr: SocketAddr,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
        /// Its watchdog timeout.
        timeout_ms: u64,
        /// Whether that timeout is the server's default (the client did not ask for one): after
        /// a restart it follows the new default. Absent (false) in logs written before it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        timeout_default: bool,
        /// It ended a `late`: not a new session.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recovered: bool,
        /// The outage it came back from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outage: Option<u64>,
        /// Recorded, not announced (a flapping client).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        muted: bool,
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
        #[serde(with = "crate::clock::rfc3339_serde")]
        last_seen: SystemTime,
        /// When it was declared offline.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
        /// Why the verdict was made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Evidence>,
        /// The outage it is part of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outage: Option<u64>,
        /// Its recent heartbeat intervals (for the history).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intervals: Option<IntervalSummary>,
        /// Recorded, not announced (a flapping client).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        muted: bool,
        /// In cluster mode: the fencing token of the claim it ends, the node incarnation, and
        /// the lost node of an adopted client.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<ClusterStamp>,
    },
    /// A client was judged late.
    Late {
        /// Sequence number.
        seq: u64,
        /// Who.
        proj: Proj,
        /// Where its last heartbeat came from.
        addr: SocketAddr,
        /// Its last heartbeat.
        #[serde(with = "crate::clock::rfc3339_serde")]
        last_seen: SystemTime,
        /// Its silence then.
        silent_ms: u64,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
        /// Why.
        evidence: Evidence,
        /// Recorded, not announced (a flapping client).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        muted: bool,
    },
    /// A client was paused.
    Paused {
        /// Sequence number.
        seq: u64,
        /// Who.
        proj: Proj,
        /// When the pause ends by itself.
        #[serde(default, with = "crate::clock::rfc3339_opt")]
        until: Option<SystemTime>,
        /// The window that paused it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<String>,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// A client's pause ended.
    Resumed {
        /// Sequence number.
        seq: u64,
        /// Who.
        proj: Proj,
        /// Whether it ran out.
        expired: bool,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// A client started flapping.
    Flapping {
        /// Sequence number.
        seq: u64,
        /// Who.
        proj: Proj,
        /// Transitions in the window.
        transitions: u32,
        /// The window.
        window_ms: u64,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// A flapping client is stable again.
    Stable {
        /// Sequence number.
        seq: u64,
        /// Who.
        proj: Proj,
        /// Its state.
        state: ClientState,
        /// Transitions not announced.
        suppressed: u64,
        /// When.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// Many clients went offline together.
    Outage {
        /// Sequence number (also the outage's id).
        seq: u64,
        /// The outage's id.
        id: u64,
        /// Clients in it when recognised.
        count: u64,
        /// Up to 100 of them.
        projs: Vec<Proj>,
        /// When the first went offline.
        #[serde(with = "crate::clock::rfc3339_serde")]
        started_at: SystemTime,
        /// When it was recognised.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
    },
    /// An outage ended.
    OutageEnd {
        /// Sequence number.
        seq: u64,
        /// The outage's id.
        id: u64,
        /// Clients in it.
        count: u64,
        /// How many came back.
        recovered: u64,
        /// When it started.
        #[serde(with = "crate::clock::rfc3339_serde")]
        started_at: SystemTime,
        /// When it ended.
        #[serde(with = "crate::clock::rfc3339_serde")]
        at: SystemTime,
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
        #[serde(with = "crate::clock::rfc3339_serde")]
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
        let muted = published.muted;
        match published.event.clone() {
            Event::Online {
                proj,
                addr,
                at,
                recovered,
                outage,
            } => {
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
                    recovered,
                    outage,
                    muted,
                    cluster: published.stamp.clone(),
                }
            }
            Event::Offline {
                proj,
                reason,
                addr,
                last_seen,
                at,
                evidence,
                outage,
            } => LogRecord::Offline {
                seq,
                proj,
                reason,
                addr,
                last_seen,
                at,
                evidence,
                outage,
                intervals: published.intervals,
                muted,
                cluster: published.stamp.clone(),
            },
            Event::Late {
                proj,
                addr,
                last_seen,
                silent_ms,
                at,
                evidence,
            } => LogRecord::Late {
                seq,
                proj,
                addr,
                last_seen,
                silent_ms,
                at,
                evidence,
                muted,
            },
            Event::Paused {
                proj,
                until,
                window,
                at,
            } => LogRecord::Paused {
                seq,
                proj,
                until,
                window,
                at,
            },
            Event::Resumed { proj, expired, at } => LogRecord::Resumed {
                seq,
                proj,
                expired,
                at,
            },
            Event::Flapping {
                proj,
                transitions,
                window_ms,
                at,
            } => LogRecord::Flapping {
                seq,
                proj,
                transitions,
                window_ms,
                at,
            },
            Event::Stable {
                proj,
                state,
                suppressed,
                at,
            } => LogRecord::Stable {
                seq,
                proj,
                state,
                suppressed,
                at,
            },
            Event::Outage {
                id,
                count,
                projs,
                started_at,
                at,
            } => LogRecord::Outage {
                seq,
                id,
                count,
                projs,
                started_at,
                at,
            },
            Event::OutageEnd {
                id,
                count,
                recovered,
                started_at,
                at,
            } => LogRecord::OutageEnd {
                seq,
                id,
                count,
                recovered,
                started_at,
                at,
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
            LogRecord::Online { seq, .. }
            | LogRecord::Offline { seq, .. }
            | LogRecord::Late { seq, .. }
            | LogRecord::Paused { seq, .. }
            | LogRecord::Resumed { seq, .. }
            | LogRecord::Flapping { seq, .. }
            | LogRecord::Stable { seq, .. }
            | LogRecord::Outage { seq, .. }
            | LogRecord::OutageEnd { seq, .. } => Some(*seq),
            LogRecord::Snapshot { .. }
            | LogRecord::Client { .. }
            | LogRecord::SnapshotEnd { .. } => None,
        }
    }

    /// Whether the event was recorded but not announced (webhooks skip it).
    pub fn is_muted(&self) -> bool {
        match self {
            LogRecord::Online { muted, .. }
            | LogRecord::Offline { muted, .. }
            | LogRecord::Late { muted, .. } => *muted,
            _ => false,
        }
    }

    /// The interval statistics of an `offline` record.
    pub fn intervals(&self) -> Option<IntervalSummary> {
        match self {
            LogRecord::Offline { intervals, .. } => *intervals,
            _ => None,
        }
    }

    /// The public event and its sequence number, for an event.
    pub fn to_event(&self) -> Option<(u64, Event)> {
        let event = match self.clone() {
            LogRecord::Online {
                seq,
                proj,
                addr,
                at,
                recovered,
                outage,
                ..
            } => (
                seq,
                Event::Online {
                    proj,
                    addr,
                    at,
                    recovered,
                    outage,
                },
            ),
            LogRecord::Offline {
                seq,
                proj,
                reason,
                addr,
                last_seen,
                at,
                evidence,
                outage,
                ..
            } => (
                seq,
                Event::Offline {
                    proj,
                    reason,
                    addr,
                    last_seen,
                    at,
                    evidence,
                    outage,
                },
            ),
            LogRecord::Late {
                seq,
                proj,
                addr,
                last_seen,
                silent_ms,
                at,
                evidence,
                ..
            } => (
                seq,
                Event::Late {
                    proj,
                    addr,
                    last_seen,
                    silent_ms,
                    at,
                    evidence,
                },
            ),
            LogRecord::Paused {
                seq,
                proj,
                until,
                window,
                at,
            } => (
                seq,
                Event::Paused {
                    proj,
                    until,
                    window,
                    at,
                },
            ),
            LogRecord::Resumed {
                seq,
                proj,
                expired,
                at,
            } => (seq, Event::Resumed { proj, expired, at }),
            LogRecord::Flapping {
                seq,
                proj,
                transitions,
                window_ms,
                at,
            } => (
                seq,
                Event::Flapping {
                    proj,
                    transitions,
                    window_ms,
                    at,
                },
            ),
            LogRecord::Stable {
                seq,
                proj,
                state,
                suppressed,
                at,
            } => (
                seq,
                Event::Stable {
                    proj,
                    state,
                    suppressed,
                    at,
                },
            ),
            LogRecord::Outage {
                seq,
                id,
                count,
                projs,
                started_at,
                at,
            } => (
                seq,
                Event::Outage {
                    id,
                    count,
                    projs,
                    started_at,
                    at,
                },
            ),
            LogRecord::OutageEnd {
                seq,
                id,
                count,
                recovered,
                started_at,
                at,
            } => (
                seq,
                Event::OutageEnd {
                    id,
                    count,
                    recovered,
                    started_at,
                    at,
                },
            ),
            LogRecord::Snapshot { .. }
            | LogRecord::Client { .. }
            | LogRecord::SnapshotEnd { .. } => return None,
        };
        Some(event)
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
            recovered: false,
            outage: None,
        };
        let record = LogRecord::from_published(&Published {
            id: 7,
            event: online.clone(),
            timeout: Some(ClientTimeout {
                timeout: Duration::from_secs(20),
                requested: true,
            }),
            muted: false,
            intervals: None,
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
            recovered: false,
            outage: None,
        };
        let record = LogRecord::from_published(&Published {
            id: 1,
            event: online,
            timeout: Some(ClientTimeout {
                timeout: Duration::from_secs(3),
                requested: false,
            }),
            muted: false,
            intervals: None,
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
    fn offline_keeps_its_reason() {
        let offline = Event::Offline {
            proj: Proj::new("P-1").unwrap(),
            reason: OfflineReason::TimeoutAfterRestart,
            addr: "127.0.0.1:9".parse().unwrap(),
            last_seen: at(1_000),
            at: at(2_000),
            evidence: None,
            outage: None,
        };
        let record = LogRecord::from_published(&Published {
            id: 8,
            event: offline.clone(),
            timeout: None,
            muted: false,
            intervals: None,
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

    fn evidence() -> Evidence {
        Evidence {
            detector: crate::events::DetectorKind::Phi,
            silent_ms: 2_400,
            timeout_ms: 20_000,
            mean_interval_ms: Some(1_000),
            missed_beats: 2,
            phi: Some(crate::events::PhiValue::new(8.01)),
        }
    }

    #[test]
    fn every_kind_round_trips_and_only_muted_records_say_so() {
        let p = || Proj::new("P-1").unwrap();
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let intervals = IntervalSummary {
            samples: 100,
            mean_ms: 1_000,
            p50_ms: 1_001,
            p99_ms: 1_090,
            max_ms: 1_200,
        };
        let events = [
            Event::Online {
                proj: p(),
                addr,
                at: at(1),
                recovered: true,
                outage: Some(3),
            },
            Event::Offline {
                proj: p(),
                reason: OfflineReason::Timeout,
                addr,
                last_seen: at(1),
                at: at(2),
                evidence: Some(evidence()),
                outage: Some(3),
            },
            Event::Late {
                proj: p(),
                addr,
                last_seen: at(1),
                silent_ms: 1_200,
                at: at(2),
                evidence: evidence(),
            },
            Event::Paused {
                proj: p(),
                until: Some(at(600_000)),
                window: Some("P-*".into()),
                at: at(2),
            },
            Event::Paused {
                proj: p(),
                until: None,
                window: None,
                at: at(2),
            },
            Event::Resumed {
                proj: p(),
                expired: true,
                at: at(3),
            },
            Event::Flapping {
                proj: p(),
                transitions: 5,
                window_ms: 600_000,
                at: at(4),
            },
            Event::Stable {
                proj: p(),
                state: ClientState::Offline,
                suppressed: 7,
                at: at(5),
            },
            Event::Outage {
                id: 9,
                count: 12,
                projs: vec![p()],
                started_at: at(1),
                at: at(6),
            },
            Event::OutageEnd {
                id: 9,
                count: 12,
                recovered: 10,
                started_at: at(1),
                at: at(7),
            },
        ];
        for (i, event) in events.into_iter().enumerate() {
            let muted = i < 3;
            let published = Published {
                id: 10 + i as u64,
                event: event.clone(),
                timeout: None,
                muted,
                intervals: Some(intervals),
                stamp: None,
            };
            let mut line = Vec::new();
            LogRecord::from_published(&published).write_line(&mut line);
            let back: LogRecord = serde_json::from_slice(&line)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)));
            assert_eq!(back.to_event(), Some((10 + i as u64, event)));
            assert_eq!(back.is_muted(), muted, "{}", String::from_utf8_lossy(&line));
            assert_eq!(back.intervals().is_some(), i == 1);
        }
    }

    #[test]
    fn a_cluster_stamp_round_trips_and_is_absent_in_single_node_mode() {
        let offline = Event::Offline {
            proj: Proj::new("P-1").unwrap(),
            reason: OfflineReason::Timeout,
            addr: "127.0.0.1:9".parse().unwrap(),
            last_seen: at(1_000),
            at: at(2_000),
            evidence: None,
            outage: None,
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
            muted: false,
            intervals: None,
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
    fn an_offline_line_of_an_older_version_is_still_read() {
        let old = r#"{"event":"offline","seq":8,"proj":"P-1","reason":"timeout","addr":"127.0.0.1:9","last_seen":"1970-01-01T00:00:01Z","at":"1970-01-01T00:00:02Z"}"#;
        let record: LogRecord = serde_json::from_str(old).unwrap();
        let Some((
            8,
            Event::Offline {
                evidence, outage, ..
            },
        )) = record.to_event()
        else {
            panic!("{record:?}")
        };
        assert_eq!((evidence, outage, record.is_muted()), (None, None, false));
    }
}
