//! The cluster layer against a real redis-server (started per test on a free port, with the
//! fixture the real-process tests use, `tests/common/redis.rs`): claims and handover fencing,
//! exactly one offline, node death and adoption caps, a frozen Redis, replay after an outage,
//! a clean leave, webhooks once across a consumer's death.
//!
//! Without redis-server on PATH these tests are skipped (and fail under `CI`).

#[allow(dead_code)]
#[path = "../../../tests/common/redis.rs"]
mod redis_server;

#[path = "../../../tests/common/hook_recorder.rs"]
mod hook_recorder;

mod store;
mod webhooks;

use std::future::Future;
use std::time::Duration;

/// Waits until `cond` holds, checking every 10 ms for at most `within`; panics naming `what`
/// if it never does.
async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
