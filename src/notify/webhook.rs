//! Delivering the log's events to one webhook.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cursor::CursorFile;
use super::sender::Sender;
use super::{EventKind, NotifyConfig, WebhookConfig};
use crate::events::{Event, OutageWebhooks};
use crate::metrics::Metrics;
use crate::storage::{Journal, LogTail};

/// The header carrying the event's sequence number: the same on every retry and after a
/// restart, so a receiver can drop duplicates.
pub const DELIVERY_HEADER: &str = "x-heartwatch-delivery";
/// The header carrying the event's kind (`online`, `offline`).
pub const EVENT_HEADER: &str = "x-heartwatch-event";

/// Events read from the log at a time.
const READ_BATCH: usize = 256;

/// The JSON body of a delivery: the event as the event stream shows it, after an `id`: the
/// log's sequence number (also in [`DELIVERY_HEADER`]), or, for `outage` and `outage_end`,
/// the outage's own id (for `outage` the same number).
pub fn payload(seq: u64, event: &Event) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    body.insert("id".into(), seq.into());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) {
        // An event's own `id` replaces the sequence number, in its place.
        body.extend(fields);
    }
    serde_json::to_vec(&body).expect("a JSON map serializes")
}

/// The webhooks of a server, between reading their cursors and starting their deliveries.
///
/// The cursors are read before the event log is opened: opening it deletes the segments no
/// longer needed, and what a webhook has not delivered yet is still needed.
pub struct Webhooks {
    hooks: Vec<Prepared>,
    /// For `https://` webhooks (none without one); built once, shared by every delivery.
    tls: Option<Arc<rustls::ClientConfig>>,
}

struct Prepared {
    hook: WebhookConfig,
    cursor_file: CursorFile,
    /// The cursor on disk, `None` for a webhook new here.
    start: Option<u64>,
    /// The last sequence number delivered, shared with the journal as a hold.
    delivered: Arc<AtomicU64>,
}

impl Webhooks {
    /// Reads (or creates) the cursor of each webhook of `config` in the log directory `dir`.
    pub fn prepare(config: &NotifyConfig, dir: &Path) -> std::io::Result<Self> {
        let tls = tls_for(config)?;
        let mut hooks = Vec::new();
        for hook in &config.webhook {
            let cursor_file = CursorFile::new(dir, &hook.cursor_name())?;
            let start = cursor_file.load()?;
            // A new webhook starts at the end of the log: it holds nothing back.
            let delivered = Arc::new(AtomicU64::new(start.unwrap_or(u64::MAX)));
            hooks.push(Prepared {
                hook: hook.clone(),
                cursor_file,
                start,
                delivered,
            });
        }
        Ok(Self { hooks, tls })
    }

    /// What the journal must keep: each webhook's last delivered sequence number.
    pub fn holds(&self) -> Vec<Arc<AtomicU64>> {
        self.hooks.iter().map(|h| h.delivered.clone()).collect()
    }

    /// Starts one delivery task per webhook on the current actix arbiter (HTTP client
    /// connections are per thread), each from its cursor, or from the end of the log for a
    /// webhook new here. `outage` says whether the members of an outage are delivered one by
    /// one or only as the outage's own events.
    pub fn spawn(
        self,
        config: &NotifyConfig,
        outage: OutageWebhooks,
        journal: &Journal,
        metrics: &Arc<Metrics>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for prepared in self.hooks {
            let committed = journal.committed();
            let start = match prepared.start {
                Some(seq) => seq,
                None => {
                    let end = *committed.borrow();
                    prepared.cursor_file.store(end)?;
                    end
                }
            };
            prepared.delivered.store(start, Ordering::Release);
            metrics.watch_webhook_queue(
                prepared.hook.cursor_name(),
                committed.clone(),
                prepared.delivered.clone(),
            );
            log::info!(
                "webhook {}: delivering events after #{start} to {}",
                prepared.hook.cursor_name(),
                prepared.hook.url
            );
            let delivery = Delivery {
                tail: LogTail::new(journal.dir().to_path_buf(), start),
                hook: prepared.hook,
                cursor_file: prepared.cursor_file,
                delivered: prepared.delivered,
                notify: config.clone(),
                retry_initial: config.retry_initial,
                outage,
                metrics: metrics.clone(),
                tls: self.tls.clone(),
            };
            tasks.push(actix_rt::spawn(delivery.run(committed)));
        }
        Ok(tasks)
    }
}

/// The TLS configuration of `config`'s `https://` webhooks; `None` when there is none (loading
/// the system's roots reads a directory of certificates: only for https).
pub fn tls_for(config: &NotifyConfig) -> std::io::Result<Option<Arc<rustls::ClientConfig>>> {
    let https = config.webhook.iter().any(|h| {
        h.url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    });
    if https {
        Ok(Some(
            super::client_config(&config.ca).map_err(std::io::Error::other)?,
        ))
    } else {
        Ok(None)
    }
}

struct Delivery {
    hook: WebhookConfig,
    tail: LogTail,
    cursor_file: CursorFile,
    /// Shared with the journal: segments after it are kept.
    delivered: Arc<AtomicU64>,
    notify: NotifyConfig,
    retry_initial: Duration,
    outage: OutageWebhooks,
    metrics: Arc<Metrics>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Whether `event` goes to `hook`: it wants its kind, and it is not the offline or online of
/// an outage's member while outages are delivered grouped.
fn delivers(hook: &WebhookConfig, outage: OutageWebhooks, event: &Event) -> bool {
    let member = matches!(
        event,
        Event::Offline {
            outage: Some(_),
            ..
        } | Event::Online {
            outage: Some(_),
            ..
        }
    );
    hook.wants(event) && !(member && outage == OutageWebhooks::Grouped)
}

impl Delivery {
    async fn run(mut self, mut committed: watch::Receiver<u64>) {
        let sender = Sender::new(
            self.hook.clone(),
            &self.notify,
            self.tls.clone(),
            self.metrics.clone(),
        );
        loop {
            let target = *committed.borrow_and_update();
            while self.tail.cursor() < target {
                let batch = match self.tail.read(READ_BATCH) {
                    Ok(batch) => batch,
                    Err(e) => {
                        log::warn!("webhook {}: cannot read the event log: {e}", self.name());
                        actix_rt::time::sleep(self.retry_initial).await;
                        continue;
                    }
                };
                if batch.lost > 0 {
                    self.metrics.webhook_lost(batch.lost);
                    log::warn!(
                        "webhook {}: {} event(s) were deleted before delivery \
                         (storage.max_bytes)",
                        self.name(),
                        batch.lost
                    );
                }
                let nothing_more = batch.events.is_empty();
                for (seq, event) in batch.events {
                    if delivers(&self.hook, self.outage, &event) {
                        self.deliver(&sender, seq, &event).await;
                        self.advance(seq);
                    }
                }
                // Events filtered out or lost: one cursor write for the batch, not one each.
                self.advance(self.tail.cursor());
                if nothing_more {
                    // The rest was lost in a failed write: nothing more to read for now.
                    break;
                }
            }
            if committed.changed().await.is_err() {
                return;
            }
        }
    }

    /// POSTs one event until the receiver answers 2xx.
    async fn deliver(&self, sender: &Sender, seq: u64, event: &Event) {
        sender
            .deliver(
                &seq.to_string(),
                EventKind::of(event).as_str(),
                payload(seq, event),
            )
            .await;
    }

    /// Records that everything up to `seq` is done with, on disk and for the journal's prune.
    fn advance(&mut self, seq: u64) {
        if seq <= self.delivered.load(Ordering::Acquire) {
            return;
        }
        self.delivered.store(seq, Ordering::Release);
        if let Err(e) = self.cursor_file.store(seq) {
            log::warn!("webhook {}: cannot store its cursor: {e}", self.name());
        }
    }

    fn name(&self) -> String {
        self.hook.cursor_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OfflineReason;
    use crate::protocol::Proj;

    fn offline(outage: Option<u64>) -> Event {
        Event::Offline {
            proj: Proj::new("P").unwrap(),
            reason: OfflineReason::Timeout,
            addr: "127.0.0.1:1".parse().unwrap(),
            last_seen: std::time::SystemTime::UNIX_EPOCH,
            at: std::time::SystemTime::UNIX_EPOCH,
            evidence: None,
            outage,
        }
    }

    fn hook(events: &[&str]) -> WebhookConfig {
        serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:9/", "events": events}))
            .unwrap()
    }

    #[test]
    fn grouped_outages_keep_their_members_out_of_webhooks_and_each_lets_them_in() {
        let all = hook(&[]);
        assert!(delivers(&all, OutageWebhooks::Grouped, &offline(None)));
        assert!(!delivers(&all, OutageWebhooks::Grouped, &offline(Some(7))));
        assert!(delivers(&all, OutageWebhooks::Each, &offline(Some(7))));
        let online_only = hook(&["online"]);
        assert!(!delivers(
            &online_only,
            OutageWebhooks::Each,
            &offline(None)
        ));
        let outage = Event::OutageEnd {
            id: 7,
            count: 10,
            recovered: 8,
            started_at: std::time::SystemTime::UNIX_EPOCH,
            at: std::time::SystemTime::UNIX_EPOCH,
        };
        assert!(delivers(&all, OutageWebhooks::Grouped, &outage));
        assert!(delivers(
            &hook(&["outage_end"]),
            OutageWebhooks::Grouped,
            &outage
        ));
        assert!(!delivers(
            &hook(&["outage"]),
            OutageWebhooks::Grouped,
            &outage
        ));
        let body: serde_json::Value = serde_json::from_slice(&payload(12, &outage)).unwrap();
        assert_eq!(
            (&body["id"], &body["event"]),
            (&7.into(), &"outage_end".into())
        );
        let body: serde_json::Value = serde_json::from_slice(&payload(12, &offline(None))).unwrap();
        assert_eq!(body["id"], 12);
    }
}
