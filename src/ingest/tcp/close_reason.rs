//! Why the server closed a connection (for logs and metrics).

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed its side (a reset is a `ReadError`).
    Eof,
    /// No answer to `session.ping_retries` pings in a row.
    Idle,
    /// No complete frame within `session.first_frame_timeout` of accepting.
    FirstFrame,
    /// A frame exceeded `server.max_frame_bytes`.
    FrameTooLarge,
    /// The peer did not read its replies and `server.max_write_backlog` filled up.
    WriteBacklog,
    /// Reading from the socket failed.
    ReadError,
    /// Writing to the socket failed.
    WriteError,
    /// Authentication is on and a frame had no valid token (error `unauthorized`).
    Unauthorized,
    /// The TLS handshake failed or did not finish within `tls.handshake_timeout` (a plaintext
    /// client on a TLS port, garbage, a certificate the client refused, a silent peer). No
    /// session was started for the connection.
    TlsHandshake,
}

impl CloseReason {
    /// Every reason, for metrics.
    pub const ALL: [CloseReason; 9] = [
        CloseReason::Eof,
        CloseReason::Idle,
        CloseReason::FirstFrame,
        CloseReason::FrameTooLarge,
        CloseReason::WriteBacklog,
        CloseReason::ReadError,
        CloseReason::WriteError,
        CloseReason::Unauthorized,
        CloseReason::TlsHandshake,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Eof => "eof",
            CloseReason::Idle => "idle",
            CloseReason::FirstFrame => "first_frame",
            CloseReason::FrameTooLarge => "frame_too_large",
            CloseReason::WriteBacklog => "write_backlog",
            CloseReason::ReadError => "read_error",
            CloseReason::WriteError => "write_error",
            CloseReason::Unauthorized => "unauthorized",
            CloseReason::TlsHandshake => "tls_handshake",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
