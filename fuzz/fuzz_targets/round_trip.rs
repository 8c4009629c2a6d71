//! Both directions of the wire, end to end through the real codec:
//! - a `Reply` the server writes (`LineEncoder`) is split by the client's `FrameDecoder` and
//!   parsed by the client into the same `Reply`;
//! - a `ClientFrame` a client writes is split by the server's `FrameDecoder`, trimmed as the
//!   session does, and parsed by `Request::parse` into the matching `Request`.
//!
//! Input: structured, built with `arbitrary` (not meant to be written by hand).

#![no_main]

use bytes::BytesMut;
use heartwatch::protocol::{
    ClientFrame, ErrorCode, FrameDecoder, FrameError, LineEncoder, Proj, Reply, Request,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

/// The client's limit on a server line (`MAX_REPLY_BYTES` in `client/heartbeat_client.rs`).
const CLIENT_MAX_LINE: usize = 64 * 1024;
/// The server's default `server.max_frame_bytes`.
const SERVER_MAX_FRAME: usize = 64 * 1024;

#[derive(Debug, Arbitrary)]
enum Case {
    Reply(ReplyCase),
    Client(ClientCase),
}

#[derive(Debug, Arbitrary)]
enum ReplyCase {
    Ack {
        proj: String,
        seq: Option<u64>,
        timeout_ms: Option<u64>,
    },
    Ping {
        seq: u64,
    },
    Error {
        code: u8,
        message: String,
    },
    Custom(Vec<(String, Scalar)>),
}

/// JSON values without floats: serde_json's default float parsing is not round-trip exact,
/// and a NaN is written as `null`.
#[derive(Debug, Arbitrary)]
enum Scalar {
    Null,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Str(String),
    Strs(Vec<String>),
    Object(Vec<(String, String)>),
}

impl Scalar {
    fn into_value(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => b.into(),
            Scalar::UInt(n) => n.into(),
            Scalar::Int(n) => n.into(),
            Scalar::Str(s) => s.into(),
            Scalar::Strs(v) => v.into(),
            Scalar::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum ClientCase {
    Heartbeat {
        proj: String,
        seq: Option<u64>,
        timeout_ms: Option<u64>,
    },
    Offline {
        proj: String,
        seq: Option<u64>,
    },
    Pong {
        seq: u64,
    },
}

/// Encodes `frame` as the peer would and splits it as the receiver would: `None` if the line
/// is over `max` (and the decoder says so).
fn wire<T: serde::Serialize>(frame: T, max: usize) -> Option<bytes::Bytes> {
    let mut buf = BytesMut::new();
    LineEncoder::new(usize::MAX)
        .encode(frame, &mut buf)
        .expect("encodes");
    let len = buf.len();
    let mut decoder = FrameDecoder::new(max);
    match decoder.decode(&mut buf) {
        Ok(Some(line)) => {
            assert_eq!(line.len(), len - 1, "the line was split");
            assert!(buf.is_empty(), "more than one line");
            Some(line)
        }
        Err(FrameError::TooLarge { .. }) => {
            assert!(len - 1 > max, "a line within the limit refused");
            None
        }
        other => panic!("an encoded line does not decode: {other:?}"),
    }
}

fn reply_case(case: ReplyCase) {
    let reply = match case {
        ReplyCase::Ack {
            proj,
            seq,
            timeout_ms,
        } => {
            let Ok(proj) = Proj::new(&proj) else { return };
            Reply::Ack {
                proj,
                seq,
                timeout_ms,
            }
        }
        ReplyCase::Ping { seq } => Reply::Ping { seq },
        ReplyCase::Error { code, message } => Reply::error(
            ErrorCode::ALL[usize::from(code) % ErrorCode::ALL.len()],
            message,
        ),
        ReplyCase::Custom(fields) => Reply::Custom(
            fields
                .into_iter()
                .map(|(k, v)| (k, v.into_value()))
                .collect::<Map<_, _>>(),
        ),
    };
    let Some(line) = wire(reply.clone(), CLIENT_MAX_LINE) else {
        return;
    };
    let back: Reply = serde_json::from_slice(&line).expect("the client reads a server reply");
    if let Reply::Custom(map) = &reply {
        // A handler may name its reply `ack`, `ping` or `error`; if the rest fits, the client
        // reads it as that reply. Any other custom reply comes back as it was.
        let tag = map.get("type").and_then(Value::as_str);
        if matches!(tag, Some("ack" | "ping" | "error")) && !matches!(back, Reply::Custom(_)) {
            return;
        }
    }
    assert_eq!(back, reply);
}

fn client_case(case: ClientCase) {
    let (frame, expected) = match case {
        ClientCase::Heartbeat {
            proj,
            seq,
            timeout_ms,
        } => {
            let Ok(proj) = Proj::new(&proj) else { return };
            let expected = if timeout_ms == Some(0) {
                Err(ErrorCode::BadTimeout)
            } else {
                Ok(Request::Heartbeat {
                    proj: heartwatch::protocol::ProjRef::new(String::from(proj.as_str()).into())
                        .unwrap(),
                    seq,
                    timeout_ms,
                })
            };
            (
                ClientFrame::Heartbeat {
                    proj,
                    seq,
                    timeout_ms,
                },
                expected,
            )
        }
        ClientCase::Offline { proj, seq } => {
            let Ok(proj) = Proj::new(&proj) else { return };
            let expected = Ok(Request::Offline {
                proj: heartwatch::protocol::ProjRef::new(String::from(proj.as_str()).into())
                    .unwrap(),
                seq,
            });
            (ClientFrame::Offline { proj, seq }, expected)
        }
        ClientCase::Pong { seq } => (
            ClientFrame::Pong { seq },
            Ok(Request::Pong { seq: Some(seq) }),
        ),
    };
    let line = wire(frame, SERVER_MAX_FRAME).expect("a client frame fits the server's limit");
    let parsed = Request::parse(line.trim_ascii()).map_err(|e| e.code);
    assert_eq!(parsed, expected);
}

fuzz_target!(|case: Case| match case {
    Case::Reply(case) => reply_case(case),
    Case::Client(case) => client_case(case),
});
