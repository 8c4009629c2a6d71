//! The server's parser of one frame: arbitrary bytes into `Request::parse`, checked against
//! an independent reading of the same bytes with `serde_json::Value`, and the error reply it
//! leads to sent through the real encoder and read back by the client's parser.
//!
//! Input: the frame (as the session passes it after trimming; untrimmed bytes are fine too).

#![no_main]

use bytes::BytesMut;
use heartwatch::protocol::{ErrorCode, LineEncoder, Proj, ProjRef, Reply, Request, MAX_PROJ_BYTES};
use heartwatch_fuzz::KeyCounts;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tokio_util::codec::Encoder;

/// The only codes `Request::parse` may produce: the others are the session's (an unknown
/// type is `Custom` until the session finds no handler for it).
const PARSE_CODES: [ErrorCode; 6] = [
    ErrorCode::BadUtf8,
    ErrorCode::BadJson,
    ErrorCode::BadType,
    ErrorCode::BadProj,
    ErrorCode::BadSeq,
    ErrorCode::BadTimeout,
];

/// The fields the server reads itself; a frame that repeats one of them is `bad_json`.
const SERVER_FIELDS: [&str; 4] = ["type", "proj", "seq", "timeout_ms"];

/// The longest error reply line a frame may cause, whatever the frame's size: an error
/// message quotes at most a short excerpt of the frame.
const MAX_ERROR_REPLY: usize = 1024;

fn check_proj(proj: &ProjRef<'_>) {
    let s = proj.as_str();
    assert!(
        !s.is_empty() && s.len() <= MAX_PROJ_BYTES,
        "proj length {}",
        s.len()
    );
    assert!(
        !s.chars().any(char::is_control),
        "control char in proj {s:?}"
    );
    assert_eq!(
        Proj::new(s).as_ref(),
        Ok(&proj.to_proj()),
        "proj does not re-validate"
    );
}

/// Checks an accepted request against the same frame read as a JSON value, when serde_json
/// can read it so (it cannot when an ignored field holds a number out of f64's range).
fn check_accepted(request: &Request<'_>, text: &str, object: Option<&Map<String, Value>>) {
    let u64_field = |name: &str| object.map(|o| o.get(name).map(Value::as_u64));
    match request {
        Request::Heartbeat {
            proj,
            seq,
            timeout_ms,
        } => {
            check_proj(proj);
            assert_ne!(*timeout_ms, Some(0), "accepted timeout_ms 0");
            if let Some(o) = object {
                assert_eq!(o["type"], "heartbeat");
                assert_eq!(o["proj"].as_str(), Some(proj.as_str()));
                assert_eq!(u64_field("seq"), Some(seq.map(Some)));
                assert_eq!(u64_field("timeout_ms"), Some(timeout_ms.map(Some)));
            }
        }
        Request::Offline { proj, seq } => {
            check_proj(proj);
            if let Some(o) = object {
                assert_eq!(o["type"], "offline");
                assert_eq!(o["proj"].as_str(), Some(proj.as_str()));
                assert_eq!(u64_field("seq"), Some(seq.map(Some)));
            }
        }
        Request::Pong { seq } => {
            if let Some(o) = object {
                assert_eq!(o["type"], "pong");
                assert_eq!(u64_field("seq"), Some(seq.map(Some)));
            }
        }
        Request::Hello { seq } => {
            if let Some(o) = object {
                assert_eq!(o["type"], "hello");
                assert_eq!(u64_field("seq"), Some(seq.map(Some)));
            }
        }
        Request::Custom { kind, frame } => {
            assert!(
                !["heartbeat", "offline", "pong", "hello"].contains(&&**kind),
                "built-in type {kind:?} parsed as custom"
            );
            assert_eq!(*frame, text, "a custom frame is handed over whole");
            if let Some(o) = object {
                assert_eq!(o["type"].as_str(), Some(&**kind));
            }
        }
    }
}

/// Checks a refusal against the same frame read as a JSON value.
fn check_refused(code: ErrorCode, data: &[u8]) {
    assert!(PARSE_CODES.contains(&code), "parse produced {code}");
    assert_eq!(
        code == ErrorCode::BadUtf8,
        std::str::from_utf8(data).is_err(),
        "bad_utf8 iff the frame is not UTF-8"
    );
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Value::Object(object) = value else {
        assert_eq!(code, ErrorCode::BadJson, "JSON that is not an object");
        return;
    };
    let counts = KeyCounts::of(data).expect("an object serde_json reads as a Value");
    let repeated = SERVER_FIELDS.iter().any(|k| counts.repeats(k));
    assert_eq!(
        code == ErrorCode::BadJson,
        repeated,
        "bad_json for an object iff it repeats a server field"
    );
    if repeated {
        return;
    }
    match object.get("type").and_then(Value::as_str) {
        None => assert_eq!(code, ErrorCode::BadType),
        Some("heartbeat") => assert!(matches!(
            code,
            ErrorCode::BadProj | ErrorCode::BadSeq | ErrorCode::BadTimeout
        )),
        Some("offline") => assert!(matches!(code, ErrorCode::BadProj | ErrorCode::BadSeq)),
        Some("pong") => assert_eq!(code, ErrorCode::BadSeq),
        Some(other) => panic!("custom type {other:?} refused with {code}"),
    }
    if code == ErrorCode::BadProj {
        let valid = object
            .get("proj")
            .and_then(Value::as_str)
            .is_some_and(|p| Proj::new(p).is_ok());
        assert!(!valid, "bad_proj for a valid proj");
    }
}

/// The error reply the session would write: one bounded line that a client reads back as is.
fn check_error_reply(code: ErrorCode, message: &str) {
    assert!(!message.is_empty(), "empty error message");
    let reply = Reply::error(code, message);
    let mut line = BytesMut::new();
    LineEncoder::new(usize::MAX)
        .encode(reply.clone(), &mut line)
        .expect("an error reply encodes");
    assert!(
        line.len() <= MAX_ERROR_REPLY,
        "an error reply of {} bytes",
        line.len()
    );
    let (last, body) = line.split_last().expect("a non-empty line");
    assert_eq!(*last, b'\n');
    assert!(!body.contains(&b'\n'), "the reply spans several lines");
    let back: Reply = serde_json::from_slice(body).expect("the client reads the reply");
    assert_eq!(back, reply);
}

fuzz_target!(|data: &[u8]| {
    let parsed = Request::parse(data);
    assert_eq!(parsed, Request::parse(data), "parse is not deterministic");
    match parsed {
        Ok(request) => {
            let text = std::str::from_utf8(data).expect("accepted a frame that is not UTF-8");
            let value = serde_json::from_str::<Value>(text).ok();
            if let Some(value) = &value {
                assert!(value.is_object(), "accepted JSON that is not an object");
            }
            check_accepted(&request, text, value.as_ref().and_then(Value::as_object));
        }
        Err(e) => {
            check_refused(e.code, data);
            check_error_reply(e.code, &e.message);
        }
    }
});
