//! Outbound frames.

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
        };
        assert_eq!(
            serde_json::to_string(&ack).unwrap(),
            r#"{"type":"ack","proj":"P-17","seq":7,"timeout_ms":20000}"#
        );
        let offline_ack = Reply::Ack {
            proj: Proj::new("P-17").unwrap(),
            seq: None,
            timeout_ms: None,
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
