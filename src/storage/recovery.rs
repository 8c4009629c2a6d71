//! Rebuilding, from the log, which clients were online when the server went down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::log_record::LogRecord;
use super::segment::{self, Segment};
use super::StorageError;
use crate::protocol::Proj;

/// A client that was online when the server last stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredClient {
    /// Who.
    pub proj: Proj,
    /// Where its last known heartbeat came from.
    pub addr: SocketAddr,
    /// Its last known heartbeat: exact after a clean stop (the stop writes a snapshot), the
    /// time it came online after a crash (heartbeats themselves are not logged).
    pub last_seen: SystemTime,
    /// Its watchdog timeout.
    pub timeout: Duration,
    /// Whether the client asked for that timeout; a defaulted one follows the server's
    /// default after a restart.
    pub timeout_requested: bool,
}

/// What the log says.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The clients online at the end of the log, in `proj` order.
    pub clients: Vec<RecoveredClient>,
    /// The last sequence number used (0 for an empty log).
    pub last_seq: u64,
    /// Lines skipped because they were torn or corrupt (each logged as a warning).
    pub skipped: usize,
}

/// Applies an event record to a set of online clients: an `online` adds (or refreshes) its
/// client, an `offline` removes it; other records change nothing.
pub(crate) fn apply_event(online: &mut BTreeMap<Proj, RecoveredClient>, record: &LogRecord) {
    match record {
        LogRecord::Online {
            proj,
            addr,
            at,
            timeout_ms,
            timeout_default,
            ..
        } => {
            let client = RecoveredClient {
                proj: proj.clone(),
                addr: *addr,
                last_seen: *at,
                timeout: Duration::from_millis(*timeout_ms),
                timeout_requested: !timeout_default,
            };
            online.insert(proj.clone(), client);
        }
        LogRecord::Offline { proj, .. } => {
            online.remove(proj);
        }
        _ => {}
    }
}

/// Folds `segments` (oldest first) into the set of online clients: events add and remove
/// clients, a complete snapshot replaces the set.
pub fn recover(segments: &[Segment]) -> Result<Recovered, StorageError> {
    let mut online: BTreeMap<Proj, RecoveredClient> = BTreeMap::new();
    let mut last_seq = 0;
    let mut skipped = 0;
    for segment in segments {
        // A snapshot being read: its expected size and the clients so far.
        let mut pending: Option<(u64, BTreeMap<Proj, RecoveredClient>)> = None;
        segment::read_all(
            segment,
            |record| {
                last_seq = last_seq.max(record.seq().unwrap_or(0));
                match record {
                    LogRecord::Online { .. } | LogRecord::Offline { .. } => {
                        apply_event(&mut online, &record);
                    }
                    LogRecord::Snapshot { clients, after_seq } => {
                        last_seq = last_seq.max(after_seq);
                        pending = Some((clients, BTreeMap::new()));
                    }
                    LogRecord::Client {
                        proj,
                        addr,
                        last_seen,
                        timeout_ms,
                        timeout_default,
                    } => {
                        if let Some((_, clients)) = pending.as_mut() {
                            let client = RecoveredClient {
                                proj: proj.clone(),
                                addr,
                                last_seen,
                                timeout: Duration::from_millis(timeout_ms),
                                timeout_requested: !timeout_default,
                            };
                            clients.insert(proj, client);
                        }
                    }
                    LogRecord::SnapshotEnd { clients } => match pending.take() {
                        Some((expected, snapshot))
                            if expected == clients && snapshot.len() as u64 == clients =>
                        {
                            online = snapshot;
                        }
                        _ => log::warn!(
                            "event log {}: ignoring an inconsistent snapshot",
                            segment.path.display()
                        ),
                    },
                }
            },
            |bad| {
                skipped += 1;
                log::warn!("event log {}: skipping {bad}", segment.path.display());
            },
        )
        .map_err(|source| StorageError::Io {
            what: "read",
            path: segment.path.clone(),
            source,
        })?;
        if pending.is_some() {
            log::warn!(
                "event log {}: ignoring a snapshot cut short (crash while it was written); \
                 the segments before it still hold the state",
                segment.path.display()
            );
        }
    }
    Ok(Recovered {
        clients: online.into_values().collect(),
        last_seq,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(segment: &Segment, records: &[LogRecord], tail: &str) {
        let mut out = Vec::new();
        for r in records {
            r.write_line(&mut out);
        }
        out.extend_from_slice(tail.as_bytes());
        std::fs::File::create(&segment.path)
            .unwrap()
            .write_all(&out)
            .unwrap();
    }

    fn online(seq: u64, proj: &str) -> LogRecord {
        LogRecord::Online {
            seq,
            proj: Proj::new(proj).unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(seq),
            timeout_ms: 1000 * seq,
            timeout_default: false,
            cluster: None,
        }
    }

    fn offline(seq: u64, proj: &str) -> LogRecord {
        LogRecord::Offline {
            seq,
            proj: Proj::new(proj).unwrap(),
            reason: crate::events::OfflineReason::Timeout,
            addr: "127.0.0.1:1".parse().unwrap(),
            last_seen: SystemTime::UNIX_EPOCH,
            at: SystemTime::UNIX_EPOCH,
            cluster: None,
        }
    }

    fn client(proj: &str) -> LogRecord {
        LogRecord::Client {
            proj: Proj::new(proj).unwrap(),
            addr: "127.0.0.1:2".parse().unwrap(),
            last_seen: SystemTime::UNIX_EPOCH,
            timeout_ms: 5000,
            timeout_default: false,
        }
    }

    fn projs(r: &Recovered) -> Vec<&str> {
        r.clients.iter().map(|c| c.proj.as_str()).collect()
    }

    #[test]
    fn events_and_snapshots_fold_into_the_online_set() {
        let dir = tempfile::tempdir().unwrap();
        let first = Segment::new(dir.path(), 1);
        write(
            &first,
            &[
                online(1, "A"),
                online(2, "B"),
                offline(3, "A"),
                online(4, "C"),
            ],
            "",
        );
        let second = Segment::new(dir.path(), 5);
        write(
            &second,
            &[
                LogRecord::Snapshot {
                    clients: 2,
                    after_seq: 4,
                },
                client("B"),
                client("C"),
                LogRecord::SnapshotEnd { clients: 2 },
                offline(5, "B"),
                online(6, "D"),
            ],
            "",
        );
        let r = recover(&[first, second]).unwrap();
        assert_eq!(projs(&r), ["C", "D"]);
        assert_eq!(r.last_seq, 6);
        assert_eq!(r.skipped, 0);
        assert_eq!(r.clients[0].timeout, Duration::from_secs(5));
        assert_eq!(r.clients[1].timeout, Duration::from_secs(6));
    }

    #[test]
    fn a_snapshot_cut_short_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let first = Segment::new(dir.path(), 1);
        write(&first, &[online(1, "A"), online(2, "B")], "");
        let second = Segment::new(dir.path(), 3);
        write(
            &second,
            &[
                LogRecord::Snapshot {
                    clients: 2,
                    after_seq: 2,
                },
                client("A"),
            ],
            r#"{"event":"client","proj":"#,
        );
        let r = recover(&[first, second]).unwrap();
        assert_eq!(projs(&r), ["A", "B"]);
        assert_eq!(r.skipped, 1);
    }

    #[test]
    fn a_torn_last_event_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let only = Segment::new(dir.path(), 1);
        write(
            &only,
            &[online(1, "A")],
            r#"{"event":"offline","seq":2,"pro"#,
        );
        let r = recover(&[only]).unwrap();
        assert_eq!(projs(&r), ["A"]);
        assert_eq!(r.last_seq, 1);
        assert_eq!(r.skipped, 1);
    }

    #[test]
    fn an_empty_log_recovers_nothing() {
        let r = recover(&[]).unwrap();
        assert!(r.clients.is_empty());
        assert_eq!(r.last_seq, 0);
    }
}
