//! Outbound frames.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error_code::ErrorCode;
use super::proj::Proj;

/// One frame the server writes, as one JSON line. Clients (such as
/// [`crate::client::HeartbeatClient`]) deserialize the same type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The heartbeat or offline took effect.
    Ack {
        /// Whose.
        proj: Proj,
        /// The request's `seq`, echoed.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// The client's effective timeout after a heartbeat (absent on an offline ack).
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        /// After a heartbeat: how often the client should beat (its timeout times
        /// `server.interval_ratio`). Absent on an offline ack, and from older servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_ms: Option<u64>,
    },
    /// The answer to a `hello`: the connection is authenticated for the `proj`s its token
    /// covers (or, with `auth` false, the server checks no token at all).
    Welcome {
        /// Whether the server requires tokens. A client with a token against a server
        /// without authentication gets `false`, and is served all the same.
        auth: bool,
        /// The hello's `seq`, echoed.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// The server probes a connection that has been silent for `session.idle_ping`; the
    /// client answers `{"type":"pong","seq":N}`.
    Ping {
        /// To echo in the pong.
        seq: u64,
    },
    /// The frame was refused.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
        /// With `unavailable` from a server that is overloaded, starting or stopping: how long
        /// to wait before trying again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A custom handler's answer, written as the handler built it (and, when reading, any
    /// frame of a type this version does not know).
    #[serde(untagged)]
    Custom(Map<String, Value>),
}

impl Reply {
    /// An error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Reply::Error {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// An error reply that says when to try again.
    pub fn retry_later(code: ErrorCode, message: impl Into<String>, after: Duration) -> Self {
        Reply::Error {
            code,
            message: message.into(),
            retry_after_ms: Some(crate::clock::millis(after)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_spelling() {
        let ack = Reply::Ack {
            proj: Proj::new("P-17").unwrap(),
            seq: Some(7),
            timeout_ms: Some(20000),
            interval_ms: Some(6666),
        };
        assert_eq!(
            serde_json::to_string(&ack).unwrap(),
            r#"{"type":"ack","proj":"P-17","seq":7,"timeout_ms":20000,"interval_ms":6666}"#
        );
        let offline_ack = Reply::Ack {
            proj: Proj::new("P-17").unwrap(),
            seq: None,
            timeout_ms: None,
            interval_ms: None,
        };
        assert_eq!(
            serde_json::to_string(&offline_ack).unwrap(),
            r#"{"type":"ack","proj":"P-17"}"#
        );
        assert_eq!(
            serde_json::to_string(&Reply::Welcome {
                auth: true,
                seq: Some(1)
            })
            .unwrap(),
            r#"{"type":"welcome","auth":true,"seq":1}"#
        );
        assert_eq!(
            serde_json::to_string(&Reply::error(ErrorCode::BadJson, "x")).unwrap(),
            r#"{"type":"error","code":"bad_json","message":"x"}"#
        );
        let busy = Reply::retry_later(ErrorCode::Unavailable, "busy", Duration::from_millis(1500));
        let text = serde_json::to_string(&busy).unwrap();
        assert_eq!(
            text,
            r#"{"type":"error","code":"unavailable","message":"busy","retry_after_ms":1500}"#
        );
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), busy);
        let Value::Object(map) = json!({"type":"status","n":1}) else {
            unreachable!()
        };
        let text = serde_json::to_string(&Reply::Custom(map)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"type":"status","n":1})
        );
    }
}
