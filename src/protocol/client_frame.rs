//! Frames a client writes: what [`super::Request`] parses on the server side.

use serde::Serialize;

use super::proj::Proj;
use crate::auth::Secret;

/// One frame a client sends, as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// I am alive.
    Heartbeat {
        /// Who.
        proj: Proj,
        /// Echoed in the ack, to match acks to heartbeats.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// The timeout the client asks for.
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// I am leaving.
    Offline {
        /// Who.
        proj: Proj,
        /// Echoed in the ack.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// Authenticates the connection (sent first, when the client has a token).
    Hello {
        /// The token; its `Debug` is redacted.
        token: Secret,
        /// Echoed in the welcome.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// The answer to a server's ping.
    Pong {
        /// The ping's `seq`.
        seq: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Request;

    #[test]
    fn what_a_client_writes_the_server_parses() {
        let proj = Proj::new("P-17").unwrap();
        let frames = [
            ClientFrame::Heartbeat {
                proj: proj.clone(),
                seq: Some(3),
                timeout_ms: Some(5000),
            },
            ClientFrame::Offline {
                proj: proj.clone(),
                seq: None,
            },
            ClientFrame::Pong { seq: 9 },
            ClientFrame::Hello {
                token: Secret::from("t-1"),
                seq: None,
            },
        ];

        let texts: Vec<String> = frames
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        assert_eq!(
            Request::parse(texts[0].as_bytes()).unwrap(),
            Request::Heartbeat {
                proj: crate::protocol::ProjRef::new(proj.as_str().into()).unwrap(),
                seq: Some(3),
                timeout_ms: Some(5000)
            }
        );
        assert_eq!(
            Request::parse(texts[1].as_bytes()).unwrap(),
            Request::Offline {
                proj: crate::protocol::ProjRef::new(proj.as_str().into()).unwrap(),
                seq: None
            }
        );
        assert_eq!(
            Request::parse(texts[2].as_bytes()).unwrap(),
            Request::Pong { seq: Some(9) }
        );
        let (hello, token) = Request::parse_with_token(texts[3].as_bytes()).unwrap();
        assert_eq!(hello, Request::Hello { seq: None });
        assert_eq!(token.unwrap().as_bytes(), b"t-1");
        assert!(!format!("{:?}", frames[3]).contains("t-1"));
    }
}
