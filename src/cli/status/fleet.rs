//! What `heartwatch status` knows of the clients: the server's records, kept current by the
//! event stream.
//!
//! States and event kinds are open strings: this version of the server only reports `online`
//! (and removes offline clients), later ones add `late`, `paused`, `flapping` and keep
//! `offline` clients. A client the server stops listing while the stream was down went
//! offline in the meantime; one seen going offline in the stream stays, as `offline`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Map, Value};

/// The state an event kind puts its client in, when the event does not carry a `state`.
/// Other kinds (and events without `proj`) change no client's state.
fn state_after(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "online" | "resumed" | "stable" => "online",
        "offline" => "offline",
        "late" => "late",
        "paused" => "paused",
        "flapping" => "flapping",
        _ => return None,
    })
}

/// One client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// Its identifier.
    pub proj: String,
    /// Its state (an open set of names).
    pub state: String,
    /// Its last heartbeat, as last reported.
    pub last_seen: Option<SystemTime>,
    /// Its watchdog timeout.
    pub timeout_ms: Option<u64>,
    /// The peer address of its last heartbeat.
    pub addr: Option<String>,
    /// The cluster node that holds it, when clustered.
    pub node: Option<String>,
    /// Why it went offline.
    pub reason: Option<String>,
    /// The server's record as last read, with every field (also those this version does not
    /// know).
    pub record: Map<String, Value>,
    /// Events seen for it: a record read while one arrived may be older than that event.
    events: u64,
}

impl Entry {
    fn new(proj: &str) -> Self {
        Self {
            proj: proj.to_owned(),
            state: "online".into(),
            last_seen: None,
            timeout_ms: None,
            addr: None,
            node: None,
            reason: None,
            record: Map::new(),
            events: 0,
        }
    }

    /// The record as JSON, with what the events said since it was read.
    pub(crate) fn to_json(&self) -> Value {
        let mut out = self.record.clone();
        out.insert("proj".into(), self.proj.clone().into());
        out.insert("state".into(), self.state.clone().into());
        if let Some(seen) = self.last_seen {
            out.insert(
                "last_seen".into(),
                humantime::format_rfc3339_micros(seen).to_string().into(),
            );
        }
        for (key, value) in [
            ("addr", &self.addr),
            ("node", &self.node),
            ("reason", &self.reason),
        ] {
            if let Some(value) = value {
                out.insert(key.into(), value.clone().into());
            }
        }
        if let Some(timeout) = self.timeout_ms {
            out.insert("timeout_ms".into(), timeout.into());
        }
        Value::Object(out)
    }
}

fn time(value: &Value) -> Option<SystemTime> {
    value
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Every client known, by `proj`.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    clients: BTreeMap<String, Entry>,
}

impl Fleet {
    /// Takes in one record of the server (`GET /api/v1/clients[/{proj}]`).
    pub(crate) fn record(&mut self, record: &Value) {
        let Some(proj) = record["proj"].as_str() else {
            return;
        };
        let entry = self
            .clients
            .entry(proj.to_owned())
            .or_insert_with(|| Entry::new(proj));
        if let Some(state) = record["state"].as_str() {
            entry.state = state.to_owned();
        }
        if let Some(seen) = time(&record["last_seen"]) {
            entry.last_seen = Some(seen);
        }
        if let Some(timeout) = record["timeout_ms"].as_u64() {
            entry.timeout_ms = Some(timeout);
        }
        entry.addr = text(&record["addr"]).or(entry.addr.take());
        entry.node = text(&record["node"]).or(entry.node.take());
        if entry.state != "offline" {
            entry.reason = None;
        }
        entry.record = record.as_object().cloned().unwrap_or_default();
    }

    /// Takes in a whole list: clients it no longer has went offline while nobody listened.
    pub(crate) fn resync(&mut self, records: &[Value]) {
        for record in records {
            self.record(record);
        }
        let listed: std::collections::HashSet<&str> =
            records.iter().filter_map(|r| r["proj"].as_str()).collect();
        for entry in self.clients.values_mut() {
            if !listed.contains(entry.proj.as_str()) && entry.state != "offline" {
                entry.state = "offline".into();
                entry.reason = Some("missed while disconnected".into());
            }
        }
    }

    /// Applies an event. Answers the `proj` whose record should be read again (events do
    /// not carry the whole record, and an unknown kind may have changed anything).
    pub(crate) fn apply(&mut self, event: &Value) -> Option<String> {
        let proj = event["proj"].as_str()?;
        let kind = event["event"].as_str().unwrap_or("");
        let entry = self
            .clients
            .entry(proj.to_owned())
            .or_insert_with(|| Entry::new(proj));
        entry.events += 1;
        let next = event["state"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| state_after(kind).map(str::to_owned));
        let known = next.is_some();
        if let Some(next) = next {
            entry.state = next;
        }
        let mut seen = time(&event["last_seen"]);
        if seen.is_none() && matches!(kind, "online" | "resumed") {
            seen = time(&event["at"]);
        }
        if let Some(seen) = seen {
            entry.last_seen = Some(entry.last_seen.map_or(seen, |s| s.max(seen)));
        }
        if let Some(addr) = text(&event["addr"]) {
            entry.addr = Some(addr);
        }
        if let Some(node) = text(&event["node"]) {
            entry.node = Some(node);
        }
        if let Some(timeout) = event["timeout_ms"].as_u64() {
            entry.timeout_ms = Some(timeout);
        }
        entry.reason = if entry.state == "offline" {
            text(&event["reason"])
        } else {
            None
        };
        (!known || entry.state != "offline").then(|| proj.to_owned())
    }

    /// How many events `proj` has had.
    pub(crate) fn events_of(&self, proj: &str) -> u64 {
        self.clients.get(proj).map_or(0, |e| e.events)
    }

    /// One client.
    pub(crate) fn get(&self, proj: &str) -> Option<&Entry> {
        self.clients.get(proj)
    }

    /// The clients in `state` (all if `None`), in `proj` order.
    pub(crate) fn listed(&self, state: Option<&str>) -> Vec<&Entry> {
        self.clients
            .values()
            .filter(|e| state.is_none_or(|s| e.state == s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(proj: &str) -> Value {
        json!({"proj": proj, "state": "online", "last_seen": "2026-11-25T22:13:16.101000Z",
               "heartbeats": 3, "timeout_ms": 20000, "addr": "127.0.0.1:4000"})
    }

    #[test]
    fn an_offline_event_keeps_the_client_as_offline_with_its_reason() {
        let mut fleet = Fleet::default();
        fleet.resync(&[record("P-17")]);
        let wanted = fleet.apply(
            &json!({"event": "offline", "proj": "P-17", "reason": "timeout",
            "addr": "127.0.0.1:4000", "last_seen": "2026-11-25T22:13:16.101000Z",
            "at": "2026-11-25T22:13:36.101000Z"}),
        );
        assert_eq!(wanted, None, "an offline client has no record to read");
        let entry = fleet.get("P-17").unwrap();
        assert_eq!(entry.state, "offline");
        assert_eq!(entry.reason.as_deref(), Some("timeout"));
        assert_eq!(entry.timeout_ms, Some(20000), "what the record said stays");
    }

    #[test]
    fn an_online_event_adds_a_client_and_asks_for_its_record() {
        let mut fleet = Fleet::default();
        let wanted = fleet.apply(&json!({"event": "online", "proj": "P-18",
            "addr": "127.0.0.1:4001", "at": "2026-11-25T22:13:16.101000Z"}));
        assert_eq!(wanted.as_deref(), Some("P-18"));
        let entry = fleet.get("P-18").unwrap();
        assert_eq!(entry.state, "online");
        assert!(entry.last_seen.is_some());
        assert_eq!(fleet.events_of("P-18"), 1);
    }

    #[test]
    fn kinds_and_states_are_open() {
        let mut fleet = Fleet::default();
        fleet.resync(&[record("P-1")]);
        fleet.apply(&json!({"event": "late", "proj": "P-1", "at": "2026-11-25T22:13:16Z"}));
        assert_eq!(fleet.get("P-1").unwrap().state, "late");
        fleet.apply(&json!({"event": "resumed", "proj": "P-1", "at": "2026-11-25T22:13:16Z"}));
        assert_eq!(fleet.get("P-1").unwrap().state, "online");
        // A kind this version does not know: the state comes from the record, read again.
        let wanted = fleet
            .apply(&json!({"event": "quarantined", "proj": "P-1", "at": "2026-11-25T22:13:16Z"}));
        assert_eq!(wanted.as_deref(), Some("P-1"));
        fleet.record(&json!({"proj": "P-1", "state": "quarantined"}));
        assert_eq!(fleet.listed(Some("quarantined")).len(), 1);
        // An event that says its state wins over its kind; one without proj changes nothing.
        fleet.apply(&json!({"event": "whatever", "proj": "P-1", "state": "paused"}));
        assert_eq!(fleet.get("P-1").unwrap().state, "paused");
        assert_eq!(
            fleet.apply(&json!({"event": "outage", "at": "2026-11-25T22:13:16Z"})),
            None
        );
    }

    #[test]
    fn a_resync_marks_clients_that_vanished_as_offline() {
        let mut fleet = Fleet::default();
        fleet.resync(&[record("P-1"), record("P-2")]);
        fleet.resync(&[record("P-2")]);
        assert_eq!(fleet.get("P-1").unwrap().state, "offline");
        assert_eq!(fleet.get("P-2").unwrap().state, "online");
        assert_eq!(fleet.listed(None).len(), 2);
        assert_eq!(fleet.listed(Some("online")).len(), 1);
    }

    #[test]
    fn the_json_of_an_entry_keeps_unknown_fields() {
        let mut fleet = Fleet::default();
        let mut r = record("P-1");
        r["node"] = json!("hw-2");
        r["intervals"] = json!({"p50_ms": 1000});
        fleet.record(&r);
        let out = fleet.get("P-1").unwrap().to_json();
        assert_eq!(out["node"], "hw-2");
        assert_eq!(out["intervals"]["p50_ms"], 1000);
        assert_eq!(out["heartbeats"], 3);
    }
}
