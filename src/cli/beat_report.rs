//! One line per client event, for people or (with `--json`) for scripts.

use std::time::SystemTime;

use serde_json::json;

use heartwatch::client::ClientEvent;

/// How `heartwatch beat` prints events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// One JSON object a line instead of text.
    pub json: bool,
    /// Include each ack and its round-trip time (the debug level).
    pub verbose: bool,
}

impl Report {
    /// The line for `event` at wall time `at`, or `None` if it is not shown at this level.
    pub fn line(&self, event: &ClientEvent, at: SystemTime) -> Option<String> {
        if matches!(event, ClientEvent::Acked { .. }) && !self.verbose {
            return None;
        }
        Some(if self.json {
            let mut object = match event {
                ClientEvent::Up { server } => json!({ "state": "up", "server": server }),
                ClientEvent::Down { reason, detail } => {
                    json!({ "state": "down", "reason": reason, "detail": detail })
                }
                ClientEvent::Reconnecting { delay } => {
                    json!({ "state": "reconnecting", "delay_ms": delay.as_millis() as u64 })
                }
                ClientEvent::Acked { seq, rtt, timeout } => json!({
                    "state": "acked",
                    "seq": seq,
                    "rtt_us": rtt.as_micros() as u64,
                    "timeout_ms": timeout.as_millis() as u64,
                }),
                ClientEvent::Rejected { code, message } => {
                    json!({ "state": "rejected", "code": code, "message": message })
                }
                ClientEvent::Stopped { offline_acked } => {
                    json!({ "state": "stopped", "offline_acked": offline_acked })
                }
            };
            object["at"] = json!(humantime::format_rfc3339_millis(at).to_string());
            object.to_string()
        } else {
            match event {
                ClientEvent::Up { server } => format!("up {server}"),
                ClientEvent::Down { reason, detail } => format!("down {reason} ({detail})"),
                ClientEvent::Reconnecting { delay } => {
                    format!("reconnecting in {:.1}s", delay.as_secs_f64())
                }
                ClientEvent::Acked { seq, rtt, .. } => {
                    format!("ack seq={seq} rtt={:.3}ms", rtt.as_secs_f64() * 1000.0)
                }
                ClientEvent::Rejected { code, message } => format!("rejected {code}: {message}"),
                ClientEvent::Stopped {
                    offline_acked: true,
                } => "stopped (offline sent)".into(),
                ClientEvent::Stopped {
                    offline_acked: false,
                } => "stopped (offline not acknowledged)".into(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartwatch::client::DownReason;
    use std::time::Duration;

    #[test]
    fn text_and_json_lines() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let text = Report {
            json: false,
            verbose: false,
        };
        let json = Report {
            json: true,
            verbose: true,
        };
        let down = ClientEvent::Down {
            reason: DownReason::AckTimeout,
            detail: "x".into(),
        };
        assert_eq!(text.line(&down, at).unwrap(), "down ack_timeout (x)");
        let value: serde_json::Value =
            serde_json::from_str(&json.line(&down, at).unwrap()).unwrap();
        assert_eq!(value["state"], "down");
        assert_eq!(value["reason"], "ack_timeout");
        assert_eq!(value["at"], "2023-11-14T22:13:20.000Z");
        let reconnecting = ClientEvent::Reconnecting {
            delay: Duration::from_millis(1234),
        };
        assert_eq!(
            text.line(&reconnecting, at).unwrap(),
            "reconnecting in 1.2s"
        );
        let acked = ClientEvent::Acked {
            seq: 3,
            rtt: Duration::from_micros(410),
            timeout: Duration::from_secs(20),
        };
        assert!(text.line(&acked, at).is_none(), "acks only when verbose");
        assert!(json.line(&acked, at).unwrap().contains("\"rtt_us\":410"));
    }
}
