//! What the history endpoint answers from: each client's recent events, folded from the event
//! log at start and fed by the pipeline since, so that a client's history survives restarts
//! and outlives the client.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::event_index::{read_at, EventIndex};
use super::log_record::LogRecord;
use crate::clock::serialize_rfc3339;
use crate::events::{Event, Published, Sink};
use crate::protocol::Proj;
use crate::supervision::{ClientInfo, ClientState, IntervalSummary};

/// How often, at most, the clients not seen within the retention are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Events kept in memory with an event log: the latest, which the log may not have written yet
/// (the writer is milliseconds behind; a burst longer than this is read back once written).
const RECENT_WITH_LOG: usize = 256;

/// Events kept in memory without an event log: the whole history there is.
const KEPT_WITHOUT_LOG: usize = 65_536;

/// `[history]`: the history endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Events kept per client.
    pub limit: usize,
    /// How long a client stays known after its last event (and how young a segment of the
    /// event log must be to be kept for it).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Heartbeat intervals each online client keeps under the fixed detector.
    pub samples: usize,
}

/// Every client's recent events, for the history endpoint. Cheap to clone (shared); a sink.
///
/// # Memory
/// Per client seen within `history.retention`, the sequence numbers of its last
/// `history.limit` events (one number, in place, for the common client with a single event),
/// about 40 bytes plus 8 per event beyond the first. The events themselves are read back from
/// the event log when asked for (through the log's sparse [`EventIndex`]); the latest ones,
/// which the log may not have written yet, are kept in memory. Without an event log, the last
/// 65,536 events are kept in memory instead, and the history goes no further back.
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    limit: usize,
    retention: Duration,
    /// The origin of [`Kept::last_at`].
    base: SystemTime,
    projs: BTreeMap<Proj, Kept>,
    /// The latest events, by sequence number (consecutive: every event passes through).
    recent: VecDeque<(u64, LogRecord)>,
    recent_cap: usize,
    /// The event log and where its events start, once it is open.
    log: Option<(PathBuf, Arc<Mutex<EventIndex>>)>,
    last_sweep: SystemTime,
}

/// What the history keeps of one client.
struct Kept {
    seqs: Seqs,
    /// Its last event, in seconds after the history's base.
    last_at: u32,
    /// Whether it is up (not offline) after its last event.
    up: bool,
}

/// The sequence numbers of a client's events, oldest first.
enum Seqs {
    /// Known only from a snapshot of the log (online since before the log kept).
    None,
    One(u64),
    /// Boxed so that `Seqs` is 16 bytes, not the 32 of a `VecDeque`: most clients have one.
    #[allow(clippy::box_collection)]
    Many(Box<VecDeque<u64>>),
}

impl Seqs {
    fn push(&mut self, seq: u64, limit: usize) {
        *self = match std::mem::replace(self, Seqs::None) {
            Seqs::None => Seqs::One(seq),
            Seqs::One(first) if limit > 1 => Seqs::Many(Box::new(VecDeque::from([first, seq]))),
            Seqs::One(_) => Seqs::One(seq),
            Seqs::Many(mut seqs) => {
                seqs.push_back(seq);
                while seqs.len() > limit {
                    seqs.pop_front();
                }
                Seqs::Many(seqs)
            }
        };
    }

    fn to_vec(&self) -> Vec<u64> {
        match self {
            Seqs::None => Vec::new(),
            Seqs::One(seq) => vec![*seq],
            Seqs::Many(seqs) => seqs.iter().copied().collect(),
        }
    }

    fn last(&self) -> Option<u64> {
        match self {
            Seqs::None => None,
            Seqs::One(seq) => Some(*seq),
            Seqs::Many(seqs) => seqs.back().copied(),
        }
    }
}

/// The answer of `GET /api/v1/clients/{proj}/history`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientHistory {
    /// The client.
    pub proj: Proj,
    /// Its state now.
    pub state: ClientState,
    /// Its last events (at most `history.limit`), oldest first, each with its `id`; a
    /// flapping client's unannounced ones say `"muted": true`.
    pub events: Vec<serde_json::Value>,
    /// Its recent heartbeat intervals: live while it is online, as they were when it last went
    /// offline otherwise; `null` if none is known.
    pub intervals: Option<IntervalSummary>,
    /// The fraction of the last hour and of the last day it was up (not offline), over the
    /// part of each that is known.
    pub uptime: Uptime,
}

/// Uptime ratios.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Uptime {
    /// Over the last hour.
    pub last_hour: f64,
    /// Over the last day.
    pub last_day: f64,
    /// Since when the client's states are known (its first event kept).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub known_since: SystemTime,
}

impl History {
    /// An empty history, in memory until [`History::read_from`] gives it the event log.
    pub fn new(config: &HistoryConfig) -> Self {
        let now = crate::clock::wall_now();
        Self {
            inner: Arc::new(Mutex::new(Inner {
                limit: config.limit.max(1),
                retention: config.retention,
                base: now - Duration::from_secs(10 * 365 * 24 * 3600),
                projs: BTreeMap::new(),
                recent: VecDeque::new(),
                recent_cap: KEPT_WITHOUT_LOG,
                log: None,
                last_sweep: now,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads events from the event log in `dir`, located with `events`, from now on.
    pub(crate) fn read_from(&self, dir: PathBuf, events: Arc<Mutex<EventIndex>>) {
        let mut inner = self.lock();
        inner.log = Some((dir, events));
        inner.recent_cap = RECENT_WITH_LOG;
        while inner.recent.len() > RECENT_WITH_LOG {
            inner.recent.pop_front();
        }
    }

    /// Takes in one record of the event log, read at start.
    pub(crate) fn fold(&self, record: &LogRecord) {
        let mut inner = self.lock();
        match record {
            LogRecord::Client {
                proj, last_seen, ..
            } => inner.known_up(proj, *last_seen),
            other => {
                if let (Some(seq), Some((_, event))) = (other.seq(), other.to_event()) {
                    inner.add(seq, &event);
                }
            }
        }
    }

    /// The history of `proj`, or `None` if it was not seen within the retention. `live` is its
    /// record if it is online now, and `intervals` its live statistics. Reads the event log:
    /// call it where blocking is allowed.
    pub fn get(
        &self,
        proj: &Proj,
        live: Option<&ClientInfo>,
        intervals: Option<IntervalSummary>,
    ) -> Option<ClientHistory> {
        let now = crate::clock::wall_now();
        let seqs = {
            let mut inner = self.lock();
            inner.sweep(now);
            inner.projs.get(proj).map(|k| k.seqs.to_vec())
        };
        if seqs.is_none() && live.is_none() {
            return None;
        }
        let records: Vec<(u64, LogRecord)> = seqs
            .unwrap_or_default()
            .into_iter()
            .filter_map(|seq| Some((seq, self.read(seq)?)))
            .collect();
        let state = live.map_or(ClientState::Offline, |c| c.state);
        let events = records
            .iter()
            .filter_map(|(seq, record)| event_json(*seq, record))
            .collect();
        let intervals = intervals.or_else(|| records.iter().rev().find_map(|(_, r)| r.intervals()));
        let uptime = uptime(&records, live.is_some(), now);
        Some(ClientHistory {
            proj: proj.clone(),
            state,
            events,
            intervals,
            uptime,
        })
    }

    /// The clients that are offline (and were seen within the retention), in `proj` order,
    /// after `after`, at most `limit`: `?state=offline`. Reads the event log.
    pub fn offline(&self, after: Option<&Proj>, limit: Option<usize>) -> Vec<ClientInfo> {
        let now = crate::clock::wall_now();
        let last: Vec<(Proj, u64)> = {
            let mut inner = self.lock();
            inner.sweep(now);
            let lower = match after {
                Some(after) => std::ops::Bound::Excluded(after),
                None => std::ops::Bound::Unbounded,
            };
            inner
                .projs
                .range::<Proj, _>((lower, std::ops::Bound::Unbounded))
                .filter(|(_, k)| !k.up)
                .filter_map(|(p, k)| Some((p.clone(), k.seqs.last()?)))
                .take(limit.unwrap_or(usize::MAX))
                .collect()
        };
        last.into_iter()
            .filter_map(|(proj, seq)| match self.read(seq)? {
                LogRecord::Offline {
                    addr,
                    last_seen,
                    evidence,
                    intervals,
                    ..
                } => Some(ClientInfo {
                    proj,
                    state: ClientState::Offline,
                    last_seen,
                    heartbeats: 0,
                    timeout_ms: evidence.map_or(0, |e| e.timeout_ms),
                    addr,
                    intervals,
                }),
                _ => None,
            })
            .collect()
    }

    /// Event `seq`: from memory if it is recent, else from the event log.
    fn read(&self, seq: u64) -> Option<LogRecord> {
        let (dir, at) = {
            let inner = self.lock();
            if let Some(&(first, _)) = inner.recent.front() {
                if seq >= first {
                    let i = usize::try_from(seq - first).ok()?;
                    return inner
                        .recent
                        .get(i)
                        .filter(|(s, _)| *s == seq)
                        .map(|(_, r)| r.clone());
                }
            }
            let (dir, events) = inner.log.as_ref()?;
            let at = events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .locate(seq)?;
            (dir.clone(), at)
        };
        match read_at(&dir, at, seq) {
            Ok(record) => record,
            Err(e) => {
                log::warn!("history: cannot read event #{seq} from the event log: {e}");
                None
            }
        }
    }
}

/// An event as the history shows it: as the event stream does, after its `id`, with
/// `"muted": true` if it was not announced.
fn event_json(seq: u64, record: &LogRecord) -> Option<serde_json::Value> {
    let (_, event) = record.to_event()?;
    let serde_json::Value::Object(fields) = serde_json::to_value(&event).ok()? else {
        return None;
    };
    let mut json = serde_json::Map::with_capacity(fields.len() + 2);
    json.insert("id".into(), seq.into());
    json.extend(fields);
    if record.is_muted() {
        json.insert("muted".into(), true.into());
    }
    Some(serde_json::Value::Object(json))
}

/// Whether a client is up after `record`, if it says.
fn up_after(record: &LogRecord) -> Option<bool> {
    match record {
        LogRecord::Online { .. } => Some(true),
        LogRecord::Offline { .. } => Some(false),
        _ => None,
    }
}

/// Uptime over the last hour and day from a client's events (oldest first); `up` is whether it
/// is online now, for a client with no event kept.
fn uptime(records: &[(u64, LogRecord)], up: bool, now: SystemTime) -> Uptime {
    let times: Vec<(SystemTime, Option<bool>)> = records
        .iter()
        .filter_map(|(_, r)| Some((r.to_event()?.1.at(), up_after(r))))
        .collect();
    let Some(&(since, first)) = times.first() else {
        let ratio = if up { 1.0 } else { 0.0 };
        return Uptime {
            last_hour: ratio,
            last_day: ratio,
            known_since: now,
        };
    };
    // Before its first event it was up unless that event is its coming online.
    let up_before = first != Some(true);
    let ratio = |span: Duration| {
        let start = now
            .checked_sub(span)
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .max(since);
        let known = now.duration_since(start).unwrap_or_default();
        let mut up = up_before;
        let mut from = start;
        let mut up_time = Duration::ZERO;
        for &(at, change) in &times {
            if at > from {
                if up {
                    up_time += at.duration_since(from).unwrap_or_default();
                }
                from = at;
            }
            if let Some(change) = change {
                up = change;
            }
        }
        if up {
            up_time += now.duration_since(from).unwrap_or_default();
        }
        if known.is_zero() {
            return if up { 1.0 } else { 0.0 };
        }
        (up_time.as_secs_f64() / known.as_secs_f64()).clamp(0.0, 1.0)
    };
    Uptime {
        last_hour: ratio(Duration::from_secs(3600)),
        last_day: ratio(Duration::from_secs(24 * 3600)),
        known_since: since,
    }
}

impl Sink for History {
    fn publish(&mut self, published: &Published) {
        let mut inner = self.lock();
        inner.add(published.id, &published.event);
        if inner.recent.len() == inner.recent_cap {
            inner.recent.pop_front();
        }
        inner
            .recent
            .push_back((published.id, LogRecord::from_published(published)));
        inner.sweep(crate::clock::wall_now());
    }
}

impl Inner {
    fn seconds(&self, at: SystemTime) -> u32 {
        u32::try_from(at.duration_since(self.base).unwrap_or_default().as_secs())
            .unwrap_or(u32::MAX)
    }

    fn known_up(&mut self, proj: &Proj, at: SystemTime) {
        let at = self.seconds(at);
        let kept = self.projs.entry(proj.clone()).or_insert(Kept {
            seqs: Seqs::None,
            last_at: at,
            up: true,
        });
        kept.up = true;
        kept.last_at = kept.last_at.max(at);
    }

    fn add(&mut self, seq: u64, event: &Event) {
        let Some(proj) = event.proj() else {
            return;
        };
        let at = self.seconds(event.at());
        let limit = self.limit;
        let kept = self.projs.entry(proj.clone()).or_insert(Kept {
            seqs: Seqs::None,
            last_at: at,
            up: true,
        });
        kept.seqs.push(seq, limit);
        kept.last_at = kept.last_at.max(at);
        match event {
            Event::Online { .. } => kept.up = true,
            Event::Offline { .. } => kept.up = false,
            _ => {}
        }
    }

    /// Forgets the offline clients whose last event is older than the retention.
    fn sweep(&mut self, now: SystemTime) {
        if now.duration_since(self.last_sweep).unwrap_or_default() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        let oldest = self.seconds(now.checked_sub(self.retention).unwrap_or(self.base));
        self.projs.retain(|_, k| k.up || k.last_at >= oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proj(s: &str) -> Proj {
        Proj::new(s).unwrap()
    }

    fn history(limit: usize) -> History {
        History::new(&HistoryConfig {
            limit,
            retention: Duration::from_secs(7 * 24 * 3600),
            samples: 16,
        })
    }

    fn online(p: &str, at: SystemTime) -> Event {
        Event::test_online(p, at)
    }

    fn offline(p: &str, at: SystemTime) -> Event {
        Event::test_offline(p, at - Duration::from_secs(20), at)
    }

    fn publish(h: &mut History, id: u64, event: Event) {
        h.publish(&Published {
            id,
            event,
            timeout: None,
            muted: false,
            intervals: None,
            stamp: None,
        });
    }

    #[test]
    fn uptime_is_measured_over_the_known_part_of_the_window() {
        let mut h = history(100);
        let now = SystemTime::now();
        let min = Duration::from_secs(60);
        // Online 60 min ago, offline 30 min ago, online 15 min ago.
        publish(&mut h, 1, online("P", now - 60 * min));
        publish(&mut h, 2, offline("P", now - 30 * min));
        publish(&mut h, 3, online("P", now - 15 * min));
        let got = h.get(&proj("P"), None, None).unwrap();
        assert_eq!(got.events.len(), 3);
        assert_eq!(got.events[0]["id"], 1);
        assert_eq!(got.events[1]["event"], "offline");
        // Up 30 + 15 of the last 60 minutes; of the day, only that hour is known.
        assert!(
            (got.uptime.last_hour - 0.75).abs() < 0.01,
            "{:?}",
            got.uptime
        );
        assert!(
            (got.uptime.last_day - 0.75).abs() < 0.01,
            "{:?}",
            got.uptime
        );
        assert_eq!(got.state, ClientState::Offline, "not live: the caller says");
        assert!(h.get(&proj("Q"), None, None).is_none());
        let offline = h.offline(None, None);
        assert!(offline.is_empty(), "P is up");
    }

    #[test]
    fn past_the_limit_the_oldest_go_and_the_known_span_starts_at_the_first_kept() {
        let mut h = history(2);
        let now = SystemTime::now();
        let min = Duration::from_secs(60);
        publish(&mut h, 1, online("P", now - 50 * min));
        publish(&mut h, 2, offline("P", now - 40 * min));
        publish(&mut h, 3, online("P", now - 20 * min));
        publish(&mut h, 4, offline("P", now - 10 * min));
        let got = h.get(&proj("P"), None, None).unwrap();
        let ids: Vec<_> = got.events.iter().map(|e| e["id"].clone()).collect();
        assert_eq!(ids, [3, 4]);
        // Known from event 3 on (20 min ago): up 10, down 10.
        assert!(
            (got.uptime.last_hour - 0.5).abs() < 0.01,
            "{:?}",
            got.uptime
        );
        let offline = h.offline(None, None);
        assert_eq!(offline.len(), 1);
        assert_eq!(offline[0].state, ClientState::Offline);
    }
}
