//! The error codes a client can receive in an `error` reply.

use serde::{Deserialize, Serialize};

/// Every error code on the wire. docs/protocol.md lists the same set; `as_str` is the spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a JSON object. The connection stays usable.
    BadJson,
    /// The frame is not valid UTF-8. The connection stays usable.
    BadUtf8,
    /// `type` is missing or not a string.
    BadType,
    /// `type` names no built-in message and no registered handler.
    UnknownType,
    /// `proj` is missing, not a string, empty, too long or holds control characters.
    BadProj,
    /// `timeout_ms` is zero, negative, fractional or not a number.
    BadTimeout,
    /// `seq` is not a non-negative integer.
    BadSeq,
    /// The frame is longer than `server.max_frame_bytes`; the connection is closed after it.
    FrameTooLarge,
    /// A registered custom handler failed.
    HandlerError,
    /// The server could not process the frame (for example while shutting down); retry.
    Unavailable,
    /// The server holds `server.max_connections` connections; this one is closed.
    TooManyConnections,
    /// The server holds `server.max_clients` online clients; this client stays offline.
    TooManyClients,
    /// The connection sends frames faster than `session.max_frame_rate`; the frame is dropped.
    RateLimited,
    /// Authentication is on and the frame has no token valid for what it asks; the connection
    /// is closed after it.
    Unauthorized,
}

impl ErrorCode {
    /// Every code, for documentation and metrics.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::BadJson,
        ErrorCode::BadUtf8,
        ErrorCode::BadType,
        ErrorCode::UnknownType,
        ErrorCode::BadProj,
        ErrorCode::BadTimeout,
        ErrorCode::BadSeq,
        ErrorCode::FrameTooLarge,
        ErrorCode::HandlerError,
        ErrorCode::Unavailable,
        ErrorCode::TooManyConnections,
        ErrorCode::TooManyClients,
        ErrorCode::RateLimited,
        ErrorCode::Unauthorized,
    ];

    /// The code as written on the wire and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadUtf8 => "bad_utf8",
            ErrorCode::BadType => "bad_type",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadProj => "bad_proj",
            ErrorCode::BadTimeout => "bad_timeout",
            ErrorCode::BadSeq => "bad_seq",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::HandlerError => "handler_error",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::TooManyClients => "too_many_clients",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_spelling_matches_as_str() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }
}
