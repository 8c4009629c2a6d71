//! Webhooks in cluster mode: each event delivered once by the cluster, whichever node decided
//! it and whichever node dies while delivering it.
//!
//! Each webhook is a consumer group on the event stream (`wh:<name>`), and each node one
//! consumer in it, named after the node: Redis hands every entry to one consumer, which POSTs
//! it and acknowledges it (`XACK`). An entry whose consumer died stays pending; the survivors
//! take it over with `XAUTOCLAIM` once it has been idle for `min_idle`, and a node that is
//! still delivering one (retrying a receiver that is down) keeps it by resetting its idle time
//! every `min_idle / 3`. A node restarted under the same name first re-delivers its own
//! pending entries. The delivery id (`x-heartwatch-delivery`, and `"id"` in the body) is the
//! stream entry's id: the same on every retry and from every node, so a receiver drops
//! duplicates (delivery is at least once: a node that dies between the POST and the `XACK`
//! leaves the entry to be sent again).

use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::AsyncConnectionConfig;

use super::keys::Keys;
use super::store::{Store, StreamEvent};
use crate::events::OutageWebhooks;
use crate::notify::Sender;

/// How long one `XREADGROUP` blocks.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read or claimed at a time.
const COUNT: usize = 64;
/// Pause after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// One webhook's consumer on this node.
pub(crate) struct Consumer {
    pub client: redis::Client,
    pub store: Store,
    pub keys: Keys,
    pub sender: Sender,
    pub node: String,
    /// Idle time after which another node's pending entry is taken over.
    pub min_idle: Duration,
    /// Whether an outage's members are delivered (`each`) or only its own events.
    pub outage: OutageWebhooks,
}

/// Whether an entry goes to a webhook that wants `wanted` kinds: not the `offline` or `online`
/// of an outage's member (with an `"outage"` id) while outages are delivered grouped.
fn delivers(event: &StreamEvent, outage: OutageWebhooks, wants: impl Fn(&str) -> bool) -> bool {
    if !wants(&event.kind) {
        return false;
    }
    if outage == OutageWebhooks::Each || !matches!(event.kind.as_str(), "online" | "offline") {
        return true;
    }
    let member = serde_json::from_str::<serde_json::Value>(&event.json)
        .ok()
        .is_some_and(|v| v.get("outage").is_some_and(|o| !o.is_null()));
    !member
}

impl Consumer {
    fn group(&self) -> String {
        self.keys.webhook_group(&self.sender.hook().cursor_name())
    }

    /// Delivers until the arbiter stops.
    pub async fn run(self) {
        let group = self.group();
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.store.timeout()));
        let mut pending_first = true;
        loop {
            if let Err(e) = self.ensure_group(&group).await {
                log::warn!("webhook {group}: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            let conn = tokio::time::timeout(
                self.store.timeout(),
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await;
            let Ok(Ok(mut conn)) = conn else {
                tokio::time::sleep(RETRY).await;
                continue;
            };
            if pending_first {
                // What this node (by name) read before it last stopped and never acknowledged.
                match self.read(&mut conn, &group, "0", None).await {
                    Ok(entries) => {
                        for entry in entries {
                            self.deliver(&group, &entry).await;
                        }
                        pending_first = false;
                    }
                    Err(_) => {
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
            let mut last_claim = crate::clock::now();
            loop {
                if last_claim.elapsed() >= self.min_idle / 2 {
                    last_claim = crate::clock::now();
                    match self.autoclaim(&group).await {
                        Ok(entries) => {
                            for entry in entries {
                                self.deliver(&group, &entry).await;
                            }
                        }
                        Err(_) => break,
                    }
                }
                let block = BLOCK.min(self.min_idle / 2);
                match self.read(&mut conn, &group, ">", Some(block)).await {
                    Ok(entries) => {
                        for entry in entries {
                            self.deliver(&group, &entry).await;
                        }
                    }
                    Err(_) => break,
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn ensure_group(&self, group: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.store.conn();
        let created = tokio::time::timeout(
            self.store.timeout(),
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.keys.events)
                .arg(group)
                // A new webhook starts at the end of the stream: it is not sent the history.
                .arg("$")
                .arg("MKSTREAM")
                .query_async::<()>(&mut conn),
        )
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timeout")))?;
        match created {
            Ok(()) => {
                log::info!(
                    "webhook {group}: delivering new events to {}",
                    self.sender.hook().url
                );
                Ok(())
            }
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn read(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        group: &str,
        from: &str,
        block: Option<Duration>,
    ) -> Result<Vec<StreamId>, ()> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(&self.node)
            .arg("COUNT")
            .arg(COUNT);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(crate::clock::millis(block));
        }
        cmd.arg("STREAMS").arg(&self.keys.events).arg(from);
        let wait = block.unwrap_or_default() + self.store.timeout();
        match tokio::time::timeout(wait, cmd.query_async::<Option<StreamReadReply>>(conn)).await {
            Ok(Ok(reply)) => Ok(reply
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default()),
            _ => Err(()),
        }
    }

    async fn autoclaim(&self, group: &str) -> Result<Vec<StreamId>, ()> {
        let mut conn = self.store.conn();
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.keys.events)
            .arg(group)
            .arg(&self.node)
            .arg(crate::clock::millis(self.min_idle))
            .arg("0-0")
            .arg("COUNT")
            .arg(COUNT);
        let reply = tokio::time::timeout(
            self.store.timeout(),
            cmd.query_async::<StreamAutoClaimReply>(&mut conn),
        )
        .await;
        let Ok(Ok(reply)) = reply else {
            return Err(());
        };
        if !reply.deleted_ids.is_empty() {
            log::warn!(
                "webhook {group}: {} pending event(s) were trimmed from the stream before \
                 delivery (cluster.stream_max_len)",
                reply.deleted_ids.len()
            );
        }
        if !reply.claimed.is_empty() {
            log::info!(
                "webhook {group}: took over {} pending deliver(ies) of a lost consumer",
                reply.claimed.len()
            );
        }
        Ok(reply.claimed)
    }

    /// Delivers one entry (if the webhook wants its kind), keeping it claimed meanwhile, then
    /// acknowledges it.
    async fn deliver(&self, group: &str, entry: &StreamId) {
        if let Some(event) = StreamEvent::from_entry(entry) {
            if delivers(&event, self.outage, |k| self.sender.hook().wants_kind(k)) {
                let body = payload(&event);
                let post = self.sender.deliver(&event.id, &event.kind, body);
                tokio::pin!(post);
                let mut keep = tokio::time::interval(self.min_idle / 3);
                keep.tick().await;
                loop {
                    tokio::select! {
                        () = &mut post => break,
                        _ = keep.tick() => self.keep(group, &event.id).await,
                    }
                }
            }
        }
        let mut conn = self.store.conn();
        for _ in 0..3 {
            let acked = tokio::time::timeout(
                self.store.timeout(),
                redis::cmd("XACK")
                    .arg(&self.keys.events)
                    .arg(group)
                    .arg(&entry.id)
                    .query_async::<i64>(&mut conn),
            )
            .await;
            if matches!(acked, Ok(Ok(_))) {
                return;
            }
            tokio::time::sleep(RETRY).await;
        }
        // Unacknowledged: it will be delivered again (same id), by this node or another.
    }

    /// Resets the idle time of an entry being delivered, so no other node takes it over.
    async fn keep(&self, group: &str, id: &str) {
        let mut conn = self.store.conn();
        let _ = tokio::time::timeout(
            self.store.timeout(),
            redis::cmd("XCLAIM")
                .arg(&self.keys.events)
                .arg(group)
                .arg(&self.node)
                .arg(0)
                .arg(id)
                .arg("JUSTID")
                .query_async::<redis::Value>(&mut conn),
        )
        .await;
    }
}

/// The body: `{"id": "<entry id>", ...the event}`.
fn payload(event: &StreamEvent) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    body.insert("id".into(), event.id.clone().into());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&event.json) {
        body.extend(fields);
    }
    serde_json::to_vec(&body).expect("a JSON map serializes")
}

/// The idle time after which a dead node's deliveries are taken over: twice `dead_after`, and
/// more than one POST may take plus `dead_after`.
pub(crate) fn min_idle(dead_after: Duration, post_timeout: Duration) -> Duration {
    (dead_after * 2).max(post_timeout + dead_after)
}
