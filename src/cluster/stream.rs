//! Following the event stream: every node's events, on every node, in one order.
//!
//! A blocking `XREAD` holds its connection for up to its block time, so the tail has a
//! connection of its own (a blocking command would stall every other caller of a multiplexed
//! one). Each entry is broadcast to the local readers (SSE, log, subscribers); a reader that
//! reconnects with `Last-Event-ID` resumes from the stream itself ([`Store::events_after`]).
//!
//! [`Store::events_after`]: super::store::Store::events_after

use std::time::Duration;

use redis::streams::StreamReadReply;
use redis::AsyncConnectionConfig;
use tokio::sync::broadcast;

use super::keys::Keys;
use super::store::StreamEvent;

/// How long one `XREAD` blocks.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read at a time.
const READ_COUNT: usize = 512;
/// Pause before connecting again after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// Broadcasts every entry after `after` (`None`: after the newest one when Redis first
/// answers). Runs until its arbiter stops.
pub(crate) async fn tail(
    client: redis::Client,
    keys: Keys,
    mut after: Option<String>,
    sender: broadcast::Sender<StreamEvent>,
    timeout: Duration,
) {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(timeout));
    loop {
        let conn = tokio::time::timeout(
            timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await;
        let mut conn = match conn {
            Ok(Ok(conn)) => conn,
            _ => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if after.is_none() {
            let mut newest = redis::cmd("XREVRANGE");
            newest
                .arg(&keys.events)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
            let newest = newest.query_async::<redis::streams::StreamRangeReply>(&mut conn);
            match tokio::time::timeout(timeout, newest).await {
                Ok(Ok(reply)) => {
                    after = Some(reply.ids.first().map_or("0-0".into(), |e| e.id.clone()));
                }
                _ => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        loop {
            let cursor = after.clone().unwrap_or_default();
            let mut read = redis::cmd("XREAD");
            read.arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(crate::clock::millis(BLOCK))
                .arg("STREAMS")
                .arg(&keys.events)
                .arg(&cursor);
            let read = read.query_async::<Option<StreamReadReply>>(&mut conn);
            let reply = match tokio::time::timeout(BLOCK + timeout, read).await {
                Ok(Ok(reply)) => reply,
                // A frozen or lost Redis: connect again and resume after the last entry seen.
                _ => break,
            };
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in &key.ids {
                    after = Some(entry.id.clone());
                    if let Some(event) = StreamEvent::from_entry(entry) {
                        // No receiver right now is not an error.
                        let _ = sender.send(event);
                    }
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
