//! Parsing one inbound frame into a [`Request`].
//!
//! The frame is deserialized straight into a borrowed envelope: no intermediate
//! `serde_json::Value` tree, no allocation for a well-formed heartbeat (its `proj` is borrowed from the frame).
//! Fields are read loosely (any JSON type) so that a wrongly typed field gets its own
//! error code (`bad_proj`, `bad_timeout`, ...) instead of a generic `bad_json`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::error_code::ErrorCode;
use super::proj::ProjRef;
use super::token::Token;

/// A valid inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `{"type":"heartbeat","proj":..}`: the client is alive.
    Heartbeat {
        /// Who beats.
        proj: ProjRef<'a>,
        /// Echoed back in the ack.
        seq: Option<u64>,
        /// The client's own timeout from now on, in milliseconds, not yet clamped.
        timeout_ms: Option<u64>,
    },
    /// `{"type":"offline","proj":..}`: the client leaves now.
    Offline {
        /// Who leaves.
        proj: ProjRef<'a>,
        /// Echoed back in the ack.
        seq: Option<u64>,
    },
    /// `{"type":"hello","token":..}`: authenticates the connection (its token comes beside the
    /// request, from [`Request::parse_with_token`]).
    Hello {
        /// Echoed back in the welcome.
        seq: Option<u64>,
    },
    /// `{"type":"pong","seq":N}`: the answer to a server ping.
    Pong {
        /// The ping's `seq`.
        seq: Option<u64>,
    },
    /// Any other `type`: for a handler registered under that name.
    Custom {
        /// The `type` field.
        kind: Cow<'a, str>,
        /// The whole frame, for the handler to parse as it likes.
        frame: &'a str,
    },
}

/// A frame that is not a valid request: the error reply to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    /// The wire code.
    pub code: ErrorCode,
    /// A sentence for a human.
    pub message: String,
}

impl RequestError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The type names the server handles itself; custom handlers may not take them.
pub const BUILTIN_TYPES: [&str; 5] = ["heartbeat", "offline", "pong", "ping", "hello"];

impl<'a> Request<'a> {
    /// Parses one frame (without its line terminator), ignoring any `token`.
    pub fn parse(frame: &'a [u8]) -> Result<Self, RequestError> {
        Self::parse_with_token(frame).map(|(request, _)| request)
    }

    /// Parses one frame (without its line terminator), and returns its `token` beside it: any
    /// frame type may carry one (docs/auth.md). A `token` that is not a string is returned as
    /// a token that matches nothing, not as an error, so that a server without authentication
    /// keeps ignoring the field.
    pub fn parse_with_token(frame: &'a [u8]) -> Result<(Self, Option<Token<'a>>), RequestError> {
        let text = std::str::from_utf8(frame).map_err(|e| {
            RequestError::new(
                ErrorCode::BadUtf8,
                format!("frame is not valid UTF-8 (at byte {})", e.valid_up_to()),
            )
        })?;
        // serde would also read a struct from a JSON array (by position): refuse it up front.
        if !text.trim_start().starts_with('{') {
            return Err(RequestError::new(
                ErrorCode::BadJson,
                "frame must be a JSON object",
            ));
        }
        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
            RequestError::new(
                ErrorCode::BadJson,
                format!("frame is not a JSON object: {e}"),
            )
        })?;
        let token = match envelope.token {
            Field::Missing => None,
            Field::Str(token) => Some(Token::new(token)),
            _ => Some(Token::malformed()),
        };
        let kind = match envelope.kind {
            Field::Str(kind) => kind,
            Field::Missing => return Err(RequestError::new(ErrorCode::BadType, "type is missing")),
            other => {
                return Err(RequestError::new(
                    ErrorCode::BadType,
                    format!("type must be a string, got {}", other.describe()),
                ))
            }
        };
        let request = match &*kind {
            "heartbeat" => Request::Heartbeat {
                proj: proj(envelope.proj)?,
                seq: seq(envelope.seq)?,
                timeout_ms: timeout_ms(envelope.timeout_ms)?,
            },
            "offline" => Request::Offline {
                proj: proj(envelope.proj)?,
                seq: seq(envelope.seq)?,
            },
            "pong" => Request::Pong {
                seq: seq(envelope.seq)?,
            },
            "hello" => Request::Hello {
                seq: seq(envelope.seq)?,
            },
            _ => Request::Custom { kind, frame: text },
        };
        Ok((request, token))
    }
}

fn proj(field: Field<'_>) -> Result<ProjRef<'_>, RequestError> {
    match field {
        Field::Str(s) => {
            ProjRef::new(s).map_err(|e| RequestError::new(ErrorCode::BadProj, e.to_string()))
        }
        Field::Missing => Err(RequestError::new(ErrorCode::BadProj, "proj is missing")),
        other => Err(RequestError::new(
            ErrorCode::BadProj,
            format!("proj must be a string, got {}", other.describe()),
        )),
    }
}

fn seq(field: Field<'_>) -> Result<Option<u64>, RequestError> {
    match field {
        Field::Missing => Ok(None),
        Field::UInt(n) => Ok(Some(n)),
        other => Err(RequestError::new(
            ErrorCode::BadSeq,
            format!(
                "seq must be a non-negative integer, got {}",
                other.describe()
            ),
        )),
    }
}

fn timeout_ms(field: Field<'_>) -> Result<Option<u64>, RequestError> {
    match field {
        Field::Missing => Ok(None),
        Field::UInt(0) => Err(RequestError::new(
            ErrorCode::BadTimeout,
            "timeout_ms must be positive, got 0",
        )),
        Field::UInt(n) => Ok(Some(n)),
        other => Err(RequestError::new(
            ErrorCode::BadTimeout,
            format!(
                "timeout_ms must be a positive integer, got {}",
                other.describe()
            ),
        )),
    }
}

/// The fields the server itself reads; all others are ignored (and left to custom handlers).
/// A field absent from the frame is [`Field::Missing`]; one present as `null` is
/// [`Field::Null`], which no field accepts.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Field<'a>,
    #[serde(borrow, default)]
    proj: Field<'a>,
    #[serde(borrow, default)]
    seq: Field<'a>,
    #[serde(borrow, default)]
    timeout_ms: Field<'a>,
    #[serde(borrow, default)]
    token: Field<'a>,
}

/// How many characters of a wrongly typed string an error message quotes. The rest is cut:
/// quoted whole, a frame-sized string would make a reply several times the frame (escaping
/// turns the 2 bytes of U+0085 into 7), beyond the write backlog's "plus one reply".
const QUOTED_CHARS: usize = 32;

/// Any JSON value, reduced to what field validation needs to know about it.
#[derive(Debug, Default)]
enum Field<'a> {
    #[default]
    Missing,
    Str(Cow<'a, str>),
    UInt(u64),
    NegInt(i64),
    Float(f64),
    Bool,
    Null,
    Array,
    Object,
}

impl Field<'_> {
    fn describe(&self) -> String {
        match self {
            Field::Str(s) => match s.char_indices().nth(QUOTED_CHARS) {
                None => format!("the string {s:?}"),
                Some((cut, _)) => format!("the string {:?}... ({} bytes)", &s[..cut], s.len()),
            },
            Field::UInt(n) => n.to_string(),
            Field::NegInt(n) => n.to_string(),
            Field::Float(f) => format!("{f:?}"),
            Field::Bool => "a boolean".into(),
            Field::Null => "null".into(),
            Field::Missing => "nothing".into(),
            Field::Array => "an array".into(),
            Field::Object => "an object".into(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::UInt(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Field::UInt(v as u64)
        } else {
            Field::NegInt(v)
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Field::Float(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Bool)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(frame: &str) -> ErrorCode {
        Request::parse(frame.as_bytes()).unwrap_err().code
    }

    #[test]
    fn parses_heartbeat_with_and_without_options() {
        assert_eq!(
            Request::parse(br#"{"type":"heartbeat","proj":"P-17"}"#).unwrap(),
            Request::Heartbeat {
                proj: ProjRef::new("P-17".into()).unwrap(),
                seq: None,
                timeout_ms: None
            }
        );
        assert_eq!(
            Request::parse(
                br#"{"proj":"P-1","timeout_ms":500,"seq":7,"type":"heartbeat","x":[1,{"a":2}]}"#
            )
            .unwrap(),
            Request::Heartbeat {
                proj: ProjRef::new("P-1".into()).unwrap(),
                seq: Some(7),
                timeout_ms: Some(500)
            }
        );
    }

    #[test]
    fn escaped_proj_is_unescaped() {
        assert_eq!(
            Request::parse(br#"{"type":"offline","proj":"P\u002d1"}"#).unwrap(),
            Request::Offline {
                proj: ProjRef::new("P-1".into()).unwrap(),
                seq: None
            }
        );
    }

    #[test]
    fn unknown_types_are_custom() {
        let frame = r#"{"type":"status","anything":true}"#;
        match Request::parse(frame.as_bytes()).unwrap() {
            Request::Custom { kind, frame: f } => {
                assert_eq!(kind, "status");
                assert_eq!(f, frame);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_token_comes_beside_any_request() {
        let (request, token) =
            Request::parse_with_token(br#"{"type":"hello","token":"t-1","seq":3}"#).unwrap();
        assert_eq!(request, Request::Hello { seq: Some(3) });
        assert_eq!(token.unwrap().as_bytes(), b"t-1");
        let (request, token) =
            Request::parse_with_token(br#"{"type":"heartbeat","proj":"P","token":"t\u002d2"}"#)
                .unwrap();
        assert!(matches!(request, Request::Heartbeat { .. }));
        assert_eq!(token.unwrap().as_bytes(), b"t-2", "unescaped");
        let (_, token) = Request::parse_with_token(br#"{"type":"offline","proj":"P"}"#).unwrap();
        assert!(token.is_none());
        let (_, token) = Request::parse_with_token(br#"{"type":"pong","token":7}"#).unwrap();
        assert_eq!(
            token.unwrap().as_bytes(),
            b"",
            "a non-string token matches nothing"
        );
        // Without authentication the field is ignored, as before.
        assert!(Request::parse(br#"{"type":"heartbeat","proj":"P","token":null}"#).is_ok());
    }

    #[test]
    fn each_bad_input_has_its_code() {
        assert_eq!(code("{not json"), ErrorCode::BadJson);
        assert_eq!(code("[1,2]"), ErrorCode::BadJson);
        assert_eq!(code(r#""heartbeat""#), ErrorCode::BadJson);
        assert_eq!(
            code(r#"{"type":"heartbeat","proj":"a"} trailing"#),
            ErrorCode::BadJson
        );
        assert_eq!(
            Request::parse(b"{\"type\":\"heartbeat\",\"proj\":\"\xff\"}")
                .unwrap_err()
                .code,
            ErrorCode::BadUtf8
        );
        assert_eq!(code(r#"{"proj":"a"}"#), ErrorCode::BadType);
        assert_eq!(code(r#"{"type":7,"proj":"a"}"#), ErrorCode::BadType);
        assert_eq!(code(r#"{"type":"heartbeat"}"#), ErrorCode::BadProj);
        assert_eq!(
            code(r#"{"type":"heartbeat","proj":""}"#),
            ErrorCode::BadProj
        );
        assert_eq!(
            code(r#"{"type":"heartbeat","proj":12}"#),
            ErrorCode::BadProj
        );
        assert_eq!(
            code(r#"{"type":"heartbeat","proj":null}"#),
            ErrorCode::BadProj
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"heartbeat","proj":"{}"}}"#,
                "x".repeat(257)
            )),
            ErrorCode::BadProj
        );
        assert_eq!(
            code(r#"{"type":"heartbeat","proj":"a\nb"}"#),
            ErrorCode::BadProj
        );
        for t in ["0", "-5", "1.5", "\"100\"", "true", "1e3"] {
            assert_eq!(
                code(&format!(
                    r#"{{"type":"heartbeat","proj":"a","timeout_ms":{t}}}"#
                )),
                ErrorCode::BadTimeout,
                "timeout_ms {t}"
            );
        }
        assert_eq!(
            code(r#"{"type":"heartbeat","proj":"a","seq":-1}"#),
            ErrorCode::BadSeq
        );
        assert_eq!(code(r#"{"type":"offline"}"#), ErrorCode::BadProj);
    }

    /// Found by `fuzz/fuzz_targets/request_parse.rs` (seed `seq-long-string`): the message
    /// quoted the whole string, so a 60 KB frame got an error reply of 210 KB.
    #[test]
    fn an_error_quotes_only_the_start_of_a_long_string() {
        let long = "\u{85}".repeat(30_000);
        for field in ["seq", "timeout_ms"] {
            let frame = format!(r#"{{"type":"heartbeat","proj":"a","{field}":"{long}"}}"#);
            let e = Request::parse(frame.as_bytes()).unwrap_err();
            assert!(e.message.len() < 400, "{} bytes", e.message.len());
            assert!(e.message.ends_with("... (60000 bytes)"), "{}", e.message);
        }
        assert_eq!(
            Request::parse(br#"{"type":"pong","seq":"short"}"#)
                .unwrap_err()
                .message,
            r#"seq must be a non-negative integer, got the string "short""#
        );
    }
}
