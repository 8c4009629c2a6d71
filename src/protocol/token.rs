//! The `token` field a frame may carry (protocol authentication, see docs/auth.md).

use std::borrow::Cow;

/// A frame's `token`, borrowed from the frame when it has no escapes.
///
/// It is an attribute of the frame, not of one message type, so [`super::Request::parse_with_token`]
/// returns it beside the request. Its `Debug` never shows the value: a token must not reach a
/// log line, even through a `{:?}` of a parsed frame.
#[derive(Clone, PartialEq, Eq)]
pub struct Token<'a>(Cow<'a, str>);

impl<'a> Token<'a> {
    /// A token read from a frame.
    pub fn new(value: impl Into<Cow<'a, str>>) -> Self {
        Self(value.into())
    }

    /// A `token` field that is present but not a string: it matches no configured token
    /// (configured tokens are never empty), so a server with authentication refuses the frame
    /// as `unauthorized`, and a server without ignores it, as it ignores every unknown field.
    pub(crate) fn malformed() -> Self {
        Self(Cow::Borrowed(""))
    }

    /// The token itself, to keep (a `hello`'s token). Every call is a place a token could
    /// leak from.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token's bytes, for a constant-time comparison.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `frame` (a JSON object) without its `token` field, for code outside the server's own
/// checks: custom frame handlers. Field order is kept.
pub fn without_token(frame: &str) -> String {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(frame) {
        Ok(mut object) => {
            object.shift_remove("token");
            serde_json::Value::Object(object).to_string()
        }
        // Not reachable for a parsed frame (it is an object); never hand the text on then.
        Err(_) => String::from("{}"),
    }
}

impl std::fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_token_drops_only_the_token() {
        assert_eq!(
            without_token(r#"{"type":"stats","token":"s3cret","n":1}"#),
            r#"{"type":"stats","n":1}"#
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let token = Token::new("hunter2-secret");
        assert!(!format!("{token:?}").contains("hunter2"));
        assert_eq!(token.as_bytes(), b"hunter2-secret");
    }
}
