//! How `heartwatch status` draws clients: a table, or one client's fields and history;
//! coloured on a terminal, plain when piped.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::fleet::Entry;

/// ANSI colours of the states a terminal shows; other states stay uncoloured.
fn colour_of(state: &str) -> Option<&'static str> {
    Some(match state {
        "online" | "resumed" | "stable" => "32",
        "late" => "33",
        "offline" => "31",
        "paused" => "34",
        "flapping" => "35",
        _ => return None,
    })
}

/// `text` in the colour of `state` when `colour` is on.
fn paint(text: &str, state: &str, colour: bool) -> String {
    match colour_of(state) {
        Some(code) if colour => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text.to_owned(),
    }
}

fn bold(text: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// `20s`, `1m 30s`, `500ms`.
pub(crate) fn duration_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// "3s ago"; an online client last reported longer ago than its timeout has beaten since
/// (its watchdog would have fired): "< 20s ago".
pub(crate) fn last_seen(entry: &Entry, now: SystemTime) -> String {
    let Some(seen) = entry.last_seen else {
        return String::new();
    };
    let age = now.duration_since(seen).unwrap_or_default();
    match entry.timeout_ms {
        Some(timeout) if entry.state == "online" && age.as_millis() > u128::from(timeout) => {
            format!("< {} ago", duration_ms(timeout))
        }
        _ => format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(age.as_secs()))
        ),
    }
}

/// The table of `entries`, with a NODE column when any has a node, and a summary line.
pub(crate) fn table(entries: &[&Entry], now: SystemTime, colour: bool) -> String {
    if entries.is_empty() {
        return "no clients\n".into();
    }
    let with_node = entries.iter().any(|e| e.node.is_some());
    let mut header = vec!["PROJ", "STATE", "LAST SEEN", "TIMEOUT", "ADDRESS"];
    if with_node {
        header.push("NODE");
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mut state = e.state.clone();
            if let Some(reason) = &e.reason {
                state = format!("{state} ({reason})");
            }
            let mut row = vec![
                e.proj.clone(),
                state,
                last_seen(e, now),
                e.timeout_ms.map(duration_ms).unwrap_or_default(),
                e.addr.clone().unwrap_or_default(),
            ];
            if with_node {
                row.push(e.node.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String], state: Option<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let last = i + 1 == cells.len();
            let pad = if last {
                0
            } else {
                widths[i] - cell.chars().count() + 2
            };
            let text = match state {
                Some(state) if i == 1 => paint(cell, state, colour),
                None => bold(cell, colour),
                _ => cell.clone(),
            };
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&header, None);
    for (entry, row) in entries.iter().zip(&rows) {
        out.push_str(&line(row, Some(&entry.state)));
    }
    out.push_str(&summary(entries));
    out
}

/// "3 clients: 2 online, 1 offline".
fn summary(entries: &[&Entry]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for entry in entries {
        match counts.iter_mut().find(|(s, _)| *s == entry.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((&entry.state, 1)),
        }
    }
    counts.sort_by_key(|(s, _)| *s);
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let noun = if entries.len() == 1 {
        "client"
    } else {
        "clients"
    };
    format!("{} {noun}: {}\n", entries.len(), parts.join(", "))
}

/// One client: its fields, then its history when there is one.
pub(crate) fn one(
    proj: &str,
    entry: Option<&Entry>,
    history: Option<&Value>,
    now: SystemTime,
    colour: bool,
) -> String {
    let Some(entry) = entry else {
        // Not online: the history (kept for offline clients too) says what became of it.
        return match history {
            Some(history) => {
                let state = history["state"].as_str().unwrap_or("offline");
                let mut out = format!("proj   {proj}\nstate  {}\n", paint(state, state, colour));
                out.push_str(&history_lines(history, colour));
                out
            }
            None => format!("{proj}: unknown to the server (not online)\n"),
        };
    };
    let mut fields: Vec<(String, String)> = vec![
        ("proj".into(), entry.proj.clone()),
        ("state".into(), paint(&entry.state, &entry.state, colour)),
    ];
    if let Some(reason) = &entry.reason {
        fields.push(("reason".into(), reason.clone()));
    }
    if let Some(seen) = entry.last_seen {
        fields.push((
            "last seen".into(),
            format!(
                "{} ({})",
                last_seen(entry, now),
                humantime::format_rfc3339_millis(seen)
            ),
        ));
    }
    if let Some(timeout) = entry.timeout_ms {
        fields.push(("timeout".into(), duration_ms(timeout)));
    }
    for (name, value) in [("address", &entry.addr), ("node", &entry.node)] {
        if let Some(value) = value {
            fields.push((name.into(), value.clone()));
        }
    }
    // Whatever else the record holds (heartbeats, interval statistics, ...).
    for (key, value) in &entry.record {
        if matches!(
            key.as_str(),
            "proj" | "state" | "last_seen" | "timeout_ms" | "addr" | "node" | "reason"
        ) {
            continue;
        }
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        fields.push((key.replace('_', " "), value));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in &fields {
        let _ = writeln!(out, "{key:width$}  {value}");
    }
    if let Some(history) = history {
        out.push_str(&history_lines(history, colour));
    }
    out
}

/// A history as the server gives it: a list of events, or an object with `events` and
/// other fields (statistics).
fn history_lines(history: &Value, colour: bool) -> String {
    let mut out = format!("\n{}\n", bold("history", colour));
    let events = match history {
        Value::Array(events) => Some(events),
        Value::Object(o) => o.get("events").and_then(Value::as_array),
        _ => None,
    };
    for event in events.into_iter().flatten() {
        let kind = event["event"].as_str().unwrap_or("event");
        let mut line = format!(
            "  {}  {}",
            event["at"].as_str().unwrap_or(""),
            paint(kind, kind, colour)
        );
        for key in ["reason", "addr", "node"] {
            if let Some(value) = event[key].as_str() {
                line.push_str("  ");
                line.push_str(value);
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    if let Value::Object(o) = history {
        for (key, value) in o {
            match key.as_str() {
                // Shown above.
                "events" | "proj" | "state" => {}
                "intervals" if value.is_object() => {
                    let ms = |k: &str| value[k].as_u64().map_or("?".into(), duration_ms);
                    let _ = writeln!(
                        out,
                        "  intervals: mean {}, p50 {}, p99 {}, max {} (last {})",
                        ms("mean_ms"),
                        ms("p50_ms"),
                        ms("p99_ms"),
                        ms("max_ms"),
                        value["samples"]
                    );
                }
                "uptime" if value.is_object() => {
                    let ratio = |k: &str| {
                        value[k]
                            .as_f64()
                            .map_or("?".into(), |r| format!("{:.2}%", r * 100.0))
                    };
                    let _ = writeln!(
                        out,
                        "  uptime: {} over the last hour, {} over the last day (known since {})",
                        ratio("last_hour"),
                        ratio("last_day"),
                        value["known_since"].as_str().unwrap_or("?")
                    );
                }
                _ => {
                    let _ = writeln!(out, "  {}: {value}", key.replace('_', " "));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fleet::Fleet;
    use super::*;

    fn fleet() -> Fleet {
        let mut fleet = Fleet::default();
        fleet.resync(&[
            json!({"proj": "P-1", "state": "online", "last_seen": "2026-11-25T22:13:16Z",
                   "heartbeats": 3, "timeout_ms": 20000, "addr": "127.0.0.1:4000"}),
            json!({"proj": "db-primary", "state": "online", "last_seen": "2026-11-25T22:13:10Z",
                   "heartbeats": 9, "timeout_ms": 90000, "addr": "10.0.0.7:51000"}),
        ]);
        fleet.apply(
            &json!({"event": "offline", "proj": "P-1", "reason": "timeout",
            "last_seen": "2026-11-25T22:13:16Z", "at": "2026-11-25T22:13:36Z"}),
        );
        fleet
    }

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_plain_table_has_aligned_columns_and_a_summary() {
        let fleet = fleet();
        let out = table(&fleet.listed(None), at("2026-11-25T22:13:40Z"), false);
        assert_eq!(
            out,
            "PROJ        STATE              LAST SEEN  TIMEOUT  ADDRESS\n\
             P-1         offline (timeout)  24s ago    20s      127.0.0.1:4000\n\
             db-primary  online             30s ago    1m 30s   10.0.0.7:51000\n\
             2 clients: 1 offline, 1 online\n"
        );
        assert!(!out.contains('\x1b'), "no colour when piped");
    }

    #[test]
    fn a_terminal_table_colours_the_state_only() {
        let fleet = fleet();
        let out = table(&fleet.listed(None), at("2026-11-25T22:13:40Z"), true);
        assert!(out.contains("\x1b[31moffline (timeout)\x1b[0m"), "{out}");
        assert!(out.contains("\x1b[32monline\x1b[0m"), "{out}");
    }

    #[test]
    fn an_online_client_silent_past_its_timeout_has_beaten_since() {
        let fleet = fleet();
        let db = fleet.get("db-primary").unwrap();
        assert_eq!(last_seen(db, at("2026-11-25T22:20:00Z")), "< 1m 30s ago");
        let p1 = fleet.get("P-1").unwrap();
        assert_eq!(last_seen(p1, at("2026-11-25T22:20:16Z")), "7m ago");
    }

    #[test]
    fn one_client_shows_every_field_and_its_history() {
        let fleet = fleet();
        let history = json!([{"event": "online", "at": "2026-11-25T22:13:00Z", "addr": "127.0.0.1:4000"},
                             {"event": "offline", "at": "2026-11-25T22:13:36Z", "reason": "timeout"}]);
        let out = one(
            "P-1",
            fleet.get("P-1"),
            Some(&history),
            at("2026-11-25T22:13:40Z"),
            false,
        );
        assert!(out.contains("\nstate       offline\n"), "{out}");
        assert!(out.contains("\nreason      timeout\n"), "{out}");
        assert!(out.contains("\nheartbeats  3\n"), "{out}");
        assert!(
            out.contains("2026-11-25T22:13:36Z  offline  timeout"),
            "{out}"
        );
        let unknown = one("P-9", None, None, SystemTime::now(), false);
        assert!(unknown.contains("P-9: unknown"), "{unknown}");
    }

    #[test]
    fn a_client_no_longer_online_is_shown_by_its_history() {
        let history = json!({
            "proj": "P-2", "state": "offline",
            "events": [{"event": "online", "at": "2026-11-25T22:13:00Z", "addr": "127.0.0.1:4000"},
                       {"event": "offline", "at": "2026-11-25T22:13:36Z", "reason": "timeout"}],
            "intervals": {"samples": 12, "mean_ms": 1000, "p50_ms": 1000, "p99_ms": 1100, "max_ms": 1200},
            "uptime": {"last_hour": 0.5, "last_day": 0.5, "known_since": "2026-11-25T22:13:00Z"}
        });
        let out = one("P-2", None, Some(&history), SystemTime::now(), false);
        assert!(out.starts_with("proj   P-2\nstate  offline\n"), "{out}");
        assert!(
            out.contains("2026-11-25T22:13:36Z  offline  timeout"),
            "{out}"
        );
        assert!(
            out.contains("intervals: mean 1s, p50 1s, p99 1s 100ms, max 1s 200ms (last 12)"),
            "{out}"
        );
        assert!(out.contains("uptime: 50.00% over the last hour"), "{out}");
    }
}
