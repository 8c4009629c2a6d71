//! What the history endpoint answers from: each client's recent events, folded from the event
//! log at start and fed by the pipeline since, so that a client's history survives restarts
//! and outlives the client.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::log_record::LogRecord;
use crate::clock::serialize_rfc3339;
use crate::events::{Event, Published, Sink};
use crate::protocol::Proj;
use crate::supervision::{ClientInfo, ClientState, IntervalSummary};

/// How often, at most, the clients not seen within the retention are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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

/// The history of every client seen within the retention. Cheap to clone (shared); a sink.
///
/// Memory: each event kept is its JSON (about 150 to 350 bytes), at most `history.limit` per
/// client, for the clients with an event within `history.retention`.
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Index>>,
}

struct Index {
    limit: usize,
    retention: Duration,
    projs: BTreeMap<Proj, ProjHistory>,
    last_sweep: SystemTime,
}

/// One event kept, as the event stream shows it plus its `id`.
struct Kept {
    at: SystemTime,
    /// Whether the client was up (not offline) after it.
    up: bool,
    json: Box<str>,
}

struct ProjHistory {
    events: VecDeque<Kept>,
    /// From when its states are known (its first event kept, or a snapshot).
    since: SystemTime,
    /// Whether it was up at `since`, before the first event kept.
    up_at_since: bool,
    /// Whether it is up now.
    up: bool,
    /// Its last event.
    last_event: SystemTime,
    /// Its last known heartbeat, address and timeout (for `?state=offline`).
    last_seen: SystemTime,
    addr: SocketAddr,
    timeout_ms: u64,
    /// Its interval statistics when it last went offline.
    intervals: Option<IntervalSummary>,
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
    /// Since when the client's states are known.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub known_since: SystemTime,
}

impl History {
    /// An empty history.
    pub fn new(config: &HistoryConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Index {
                limit: config.limit.max(1),
                retention: config.retention,
                projs: BTreeMap::new(),
                last_sweep: SystemTime::UNIX_EPOCH,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one record of the event log, read at start.
    pub(crate) fn fold(&self, record: &LogRecord) {
        let mut index = self.lock();
        match record {
            LogRecord::Client {
                proj,
                addr,
                last_seen,
                timeout_ms,
                ..
            } => index.known_online(proj, *addr, *last_seen, *timeout_ms),
            other => {
                if let Some((id, event)) = other.to_event() {
                    index.add(
                        id,
                        &event,
                        other.is_muted(),
                        other.intervals(),
                        timeout_ms(other),
                    );
                }
            }
        }
    }

    /// The history of `proj`, or `None` if it was not seen within the retention. `live` is its
    /// record if it is online now, and `intervals` its live statistics.
    pub fn get(
        &self,
        proj: &Proj,
        live: Option<&ClientInfo>,
        intervals: Option<IntervalSummary>,
    ) -> Option<ClientHistory> {
        let now = crate::clock::wall_now();
        let mut index = self.lock();
        index.sweep(now);
        let known = index.projs.get(proj);
        if known.is_none() && live.is_none() {
            return None;
        }
        let events = known
            .map(|h| {
                h.events
                    .iter()
                    .filter_map(|k| serde_json::from_str(&k.json).ok())
                    .collect()
            })
            .unwrap_or_default();
        let state = live.map_or(ClientState::Offline, |c| c.state);
        let uptime = match known {
            Some(h) => Uptime {
                last_hour: h.uptime(now, Duration::from_secs(3600)),
                last_day: h.uptime(now, Duration::from_secs(24 * 3600)),
                known_since: h.since,
            },
            // Online, but its events are older than the log kept: up as far as is known.
            None => Uptime {
                last_hour: 1.0,
                last_day: 1.0,
                known_since: now,
            },
        };
        Some(ClientHistory {
            proj: proj.clone(),
            state,
            events,
            intervals: intervals.or_else(|| known.and_then(|h| h.intervals)),
            uptime,
        })
    }

    /// The clients that are offline (and were seen within the retention), in `proj` order,
    /// after `after`, at most `limit`: `?state=offline`.
    pub fn offline(&self, after: Option<&Proj>, limit: Option<usize>) -> Vec<ClientInfo> {
        let now = crate::clock::wall_now();
        let mut index = self.lock();
        index.sweep(now);
        let lower = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        index
            .projs
            .range::<Proj, _>((lower, std::ops::Bound::Unbounded))
            .filter(|(_, h)| !h.up)
            .take(limit.unwrap_or(usize::MAX))
            .map(|(proj, h)| ClientInfo {
                proj: proj.clone(),
                state: ClientState::Offline,
                last_seen: h.last_seen,
                heartbeats: 0,
                timeout_ms: h.timeout_ms,
                addr: h.addr,
                intervals: h.intervals,
            })
            .collect()
    }
}

/// The timeout an event record tells of: an online's, or an offline's evidence.
fn timeout_ms(record: &LogRecord) -> Option<u64> {
    match record {
        LogRecord::Online { timeout_ms, .. } => Some(*timeout_ms),
        LogRecord::Offline {
            evidence: Some(e), ..
        } => Some(e.timeout_ms),
        _ => None,
    }
}

impl Sink for History {
    fn publish(&mut self, published: &Published) {
        let timeout = match &published.event {
            Event::Online { .. } => published.timeout.map(|t| crate::clock::millis(t.timeout)),
            Event::Offline {
                evidence: Some(e), ..
            } => Some(e.timeout_ms),
            _ => None,
        };
        let mut index = self.lock();
        index.add(
            published.id,
            &published.event,
            published.muted,
            published.intervals,
            timeout,
        );
        index.sweep(crate::clock::wall_now());
    }
}

impl Index {
    fn known_online(
        &mut self,
        proj: &Proj,
        addr: SocketAddr,
        last_seen: SystemTime,
        timeout_ms: u64,
    ) {
        let h = self
            .projs
            .entry(proj.clone())
            .or_insert_with(|| ProjHistory::new(last_seen, true, addr, timeout_ms));
        h.up = true;
        h.last_seen = h.last_seen.max(last_seen);
        h.addr = addr;
        h.timeout_ms = timeout_ms;
    }

    fn add(
        &mut self,
        id: u64,
        event: &Event,
        muted: bool,
        intervals: Option<IntervalSummary>,
        timeout_ms: Option<u64>,
    ) {
        let Some(proj) = event.proj() else {
            return;
        };
        let at = event.at();
        let (up, addr, last_seen) = match event {
            Event::Online { addr, at, .. } => (Some(true), Some(*addr), Some(*at)),
            Event::Offline {
                addr, last_seen, ..
            } => (Some(false), Some(*addr), Some(*last_seen)),
            Event::Late {
                addr, last_seen, ..
            } => (None, Some(*addr), Some(*last_seen)),
            _ => (None, None, None),
        };
        let limit = self.limit;
        let h = self.projs.entry(proj.clone()).or_insert_with(|| {
            // Before its first event kept it was up if that event is anything but an online.
            ProjHistory::new(
                at,
                up != Some(true),
                addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                timeout_ms.unwrap_or(0),
            )
        });
        if let Some(up) = up {
            h.up = up;
        }
        if let Some(addr) = addr {
            h.addr = addr;
        }
        if let Some(seen) = last_seen {
            h.last_seen = h.last_seen.max(seen);
        }
        if let Some(timeout) = timeout_ms {
            h.timeout_ms = timeout;
        }
        if intervals.is_some() {
            h.intervals = intervals;
        }
        h.last_event = h.last_event.max(at);
        let mut json = serde_json::to_value(event).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut json {
            // `id` first, as webhooks show it.
            let mut with_id = serde_json::Map::with_capacity(map.len() + 2);
            with_id.insert("id".into(), id.into());
            with_id.extend(std::mem::take(map));
            if muted {
                with_id.insert("muted".into(), true.into());
            }
            *map = with_id;
        }
        h.events.push_back(Kept {
            at,
            up: h.up,
            json: json.to_string().into_boxed_str(),
        });
        while h.events.len() > limit {
            if let Some(dropped) = h.events.pop_front() {
                // Known from the dropped event on, in the state it left.
                h.since = dropped.at;
                h.up_at_since = dropped.up;
            }
        }
    }

    /// Forgets the offline clients whose last event is older than the retention.
    fn sweep(&mut self, now: SystemTime) {
        if now.duration_since(self.last_sweep).unwrap_or_default() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        let retention = self.retention;
        self.projs.retain(|_, h| {
            h.up || now.duration_since(h.last_event).unwrap_or_default() < retention
        });
    }
}

impl ProjHistory {
    fn new(since: SystemTime, up: bool, addr: SocketAddr, timeout_ms: u64) -> Self {
        Self {
            events: VecDeque::new(),
            since,
            up_at_since: up,
            up,
            last_event: since,
            last_seen: since,
            addr,
            timeout_ms,
            intervals: None,
        }
    }

    /// The fraction of the `span` before `now` it was up, over the part of it that is known.
    fn uptime(&self, now: SystemTime, span: Duration) -> f64 {
        let start = now
            .checked_sub(span)
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .max(self.since);
        let Ok(known) = now.duration_since(start) else {
            return if self.up { 1.0 } else { 0.0 };
        };
        if known.is_zero() {
            return if self.up { 1.0 } else { 0.0 };
        }
        let mut up_time = Duration::ZERO;
        let mut up = self.up_at_since;
        let mut from = start;
        for kept in &self.events {
            if kept.at > from {
                if up {
                    up_time += kept.at.duration_since(from).unwrap_or_default();
                }
                from = kept.at;
            }
            up = kept.up;
        }
        if up {
            up_time += now.duration_since(from).unwrap_or_default();
        }
        (up_time.as_secs_f64() / known.as_secs_f64()).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OfflineReason;

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
        Event::Online {
            proj: proj(p),
            addr: "127.0.0.1:1".parse().unwrap(),
            at,
            recovered: false,
            outage: None,
        }
    }

    fn offline(p: &str, at: SystemTime) -> Event {
        Event::Offline {
            proj: proj(p),
            reason: OfflineReason::Timeout,
            addr: "127.0.0.1:1".parse().unwrap(),
            last_seen: at - Duration::from_secs(20),
            at,
            evidence: None,
            outage: None,
        }
    }

    fn publish(h: &mut History, id: u64, event: Event) {
        h.publish(&Published {
            id,
            event,
            timeout: None,
            muted: false,
            intervals: None,
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
    fn past_the_limit_the_oldest_go_and_the_known_span_starts_after_them() {
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
        // Known from event 2 on (40 min ago): down 20, up 10, down 10.
        assert!(
            (got.uptime.last_hour - 0.25).abs() < 0.01,
            "{:?}",
            got.uptime
        );
        let offline = h.offline(None, None);
        assert_eq!(offline.len(), 1);
        assert_eq!(offline[0].state, ClientState::Offline);
    }
}
