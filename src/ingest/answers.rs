//! The answers to a heartbeat, the same on every ingest: TCP, HTTP and UDP clients read the
//! same ack (the timeout they have and the interval to beat at) and the same refusal (with
//! when to retry, when the server is overloaded or stopping).

use std::time::Duration;

use crate::clock;
use crate::protocol::{Proj, Reply};
use crate::supervision::{error_code, BeatError, Heartbeats};

/// The ack of a delivered heartbeat of `proj`, whose client now has `timeout`.
pub(crate) fn ack(
    heartbeats: &Heartbeats,
    proj: Proj,
    seq: Option<u64>,
    timeout: Duration,
) -> Reply {
    Reply::Ack {
        proj,
        seq,
        timeout_ms: Some(clock::millis(timeout)),
        interval_ms: Some(clock::millis(heartbeats.interval(timeout))),
    }
}

/// The ack of an offline frame.
pub(crate) fn offline_ack(proj: Proj, seq: Option<u64>) -> Reply {
    Reply::Ack {
        proj,
        seq,
        timeout_ms: None,
        interval_ms: None,
    }
}

/// The refusal of a heartbeat that was not delivered.
pub(crate) fn refusal(e: &BeatError) -> Reply {
    let code = error_code(e);
    match e.retry_after() {
        Some(after) => Reply::retry_later(code, e.to_string(), after),
        None => Reply::error(code, e.to_string()),
    }
}
