//! What a heartbeat client reports.

use std::net::SocketAddr;
use std::time::Duration;

use actix::Message;
use serde::Serialize;

use crate::protocol::ErrorCode;

/// Why the client considers the server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// `retries` heartbeats in a row got no ack within `ack_timeout`.
    AckTimeout,
    /// The connection could not be made (refused, unreachable, name not resolved).
    ConnectFailed,
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// The server closed the connection.
    ConnectionClosed,
    /// Reading failed (reset by the peer, ...).
    ReadError,
    /// Writing failed.
    WriteError,
    /// The server refused the token (error `unauthorized`) and closed the connection.
    Unauthorized,
    /// The TLS handshake failed: most often a certificate the client does not trust or that
    /// does not carry the expected name, or a server that does not speak TLS on that port.
    TlsHandshake,
}

impl DownReason {
    /// The reason as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            DownReason::AckTimeout => "ack_timeout",
            DownReason::ConnectFailed => "connect_failed",
            DownReason::ConnectTimeout => "connect_timeout",
            DownReason::ConnectionClosed => "connection_closed",
            DownReason::ReadError => "read_error",
            DownReason::WriteError => "write_error",
            DownReason::Unauthorized => "unauthorized",
            DownReason::TlsHandshake => "tls_handshake",
        }
    }
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change in the client's view of the server.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub enum ClientEvent {
    /// Connected; heartbeats start.
    Up {
        /// The server's address.
        server: SocketAddr,
    },
    /// The server is considered down; the connection is closed.
    Down {
        /// Why.
        reason: DownReason,
        /// Details (the OS error, ...), for people.
        detail: String,
    },
    /// The next connect attempt is in `delay`.
    Reconnecting {
        /// The backoff delay.
        delay: Duration,
    },
    /// A heartbeat was acked.
    Acked {
        /// Its sequence number.
        seq: u64,
        /// Time from sending it to reading its ack.
        rtt: Duration,
        /// The watchdog timeout the server applies.
        timeout: Duration,
        /// The interval the server suggests (`interval_ms`), if it says.
        interval: Option<Duration>,
    },
    /// The server refused a frame with an error reply.
    Rejected {
        /// The error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// How long the server asked the client to wait (`retry_after_ms`): the next heartbeat
        /// comes that much later.
        retry_after: Option<Duration>,
    },
    /// The client left: it sent `offline` (acked or not) and stopped.
    Stopped {
        /// Whether the server acked the `offline`.
        offline_acked: bool,
    },
}
