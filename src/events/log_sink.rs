//! The sink that writes each transition to the server log.

use super::event::Event;
use super::sink::{Published, Sink};
use crate::clock::rfc3339;

/// Logs every event at info level, under the `heartwatch::events` target, with its evidence;
/// a muted one (a flapping client's transition) at debug level.
#[derive(Debug, Default)]
pub struct LogSink;

impl Sink for LogSink {
    fn publish(&mut self, published: &Published) {
        let level = if published.muted {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        if !log::log_enabled!(target: "heartwatch::events", level) {
            return;
        }
        let line = line(&published.event);
        let muted = if published.muted {
            " (muted: flapping)"
        } else {
            ""
        };
        log::log!(target: "heartwatch::events", level, "{line}{muted}");
    }
}

/// The log line of `event`: its kind, then `key=value` pairs.
fn line(event: &Event) -> String {
    match event {
        Event::Online {
            proj,
            addr,
            recovered,
            outage,
            ..
        } => {
            let mut line = format!("online proj={proj} addr={addr}");
            if *recovered {
                line.push_str(" recovered=true");
            }
            if let Some(id) = outage {
                line.push_str(&format!(" outage={id}"));
            }
            line
        }
        Event::Offline {
            proj,
            reason,
            addr,
            last_seen,
            evidence,
            outage,
            ..
        } => {
            let mut line = format!(
                "offline proj={proj} reason={reason} addr={addr} last_seen={}",
                rfc3339(*last_seen)
            );
            if let Some(evidence) = evidence {
                line.push_str(&format!(" {evidence}"));
            }
            if let Some(id) = outage {
                line.push_str(&format!(" outage={id}"));
            }
            line
        }
        Event::Late {
            proj,
            addr,
            last_seen,
            evidence,
            ..
        } => format!(
            "late proj={proj} addr={addr} last_seen={} {evidence}",
            rfc3339(*last_seen)
        ),
        Event::Paused {
            proj,
            until,
            window,
            ..
        } => format!(
            "paused proj={proj} until={}{}",
            until.map_or("resume".into(), rfc3339),
            window
                .as_ref()
                .map_or(String::new(), |w| format!(" window={w}"))
        ),
        Event::Resumed { proj, expired, .. } => {
            format!("resumed proj={proj} expired={expired}")
        }
        Event::Flapping {
            proj,
            transitions,
            window_ms,
            ..
        } => format!(
            "flapping proj={proj} transitions={transitions} window_ms={window_ms} (its \
             transitions are recorded but not announced until it is stable)"
        ),
        Event::Stable {
            proj,
            state,
            suppressed,
            ..
        } => format!("stable proj={proj} state={state} suppressed={suppressed}"),
        Event::Outage {
            id,
            count,
            projs,
            started_at,
            ..
        } => {
            let names: Vec<&str> = projs.iter().take(10).map(|p| p.as_str()).collect();
            format!(
                "outage id={id} count={count} started_at={} projs={}{}",
                rfc3339(*started_at),
                names.join(","),
                if projs.len() > names.len() || *count as usize > names.len() {
                    ",..."
                } else {
                    ""
                }
            )
        }
        Event::OutageEnd {
            id,
            count,
            recovered,
            started_at,
            ..
        } => format!(
            "outage_end id={id} count={count} recovered={recovered} started_at={}",
            rfc3339(*started_at)
        ),
    }
}
