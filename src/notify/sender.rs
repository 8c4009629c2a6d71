//! POSTing one event to one webhook until it answers 2xx: shared by the single-node deliveries
//! (from the event log) and the cluster's (from the Redis stream).

use std::sync::Arc;
use std::time::Duration;

use super::signature::{sign, SIGNATURE_HEADER};
use super::{NotifyConfig, WebhookConfig, DELIVERY_HEADER, EVENT_HEADER};
use crate::client::Backoff;
use crate::metrics::Metrics;

/// One webhook's HTTP client and retry policy. Must be created and used on an actix arbiter
/// (awc's connections are per thread).
pub struct Sender {
    hook: WebhookConfig,
    client: awc::Client,
    retry_initial: Duration,
    retry_max: Duration,
    metrics: Arc<Metrics>,
}

impl Sender {
    /// A client for `hook` with the timeouts and retry bounds of `config`; `tls` for
    /// `https://` webhooks.
    pub fn new(
        hook: WebhookConfig,
        config: &NotifyConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut connector = awc::Connector::new();
        if let Some(tls) = tls {
            connector = connector.rustls_0_23(tls);
        }
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(config.timeout)
            .add_default_header((
                "user-agent",
                concat!("heartwatch/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        Self {
            hook,
            client,
            retry_initial: config.retry_initial,
            retry_max: config.retry_max,
            metrics,
        }
    }

    /// The webhook.
    pub fn hook(&self) -> &WebhookConfig {
        &self.hook
    }

    /// POSTs `body` (an event of kind `kind`, delivery id `id`) until the receiver answers
    /// 2xx, with capped exponential backoff between attempts. The delivery id is the same on
    /// every attempt, so a receiver can drop duplicates.
    pub async fn deliver(&self, id: &str, kind: &str, body: Vec<u8>) {
        let signature =
            (!self.hook.secret.is_empty()).then(|| sign(self.hook.secret.as_bytes(), &body));
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut request = self
                .client
                .post(&self.hook.url)
                .insert_header(("content-type", "application/json"))
                .insert_header((DELIVERY_HEADER, id))
                .insert_header((EVENT_HEADER, kind));
            if let Some(signature) = &signature {
                request = request.insert_header((SIGNATURE_HEADER, signature.as_str()));
            }
            let failure = match request.send_body(body.clone()).await {
                Ok(mut response) => {
                    // Read the (small) body so that the connection can be reused.
                    let _ = response.body().limit(64 * 1024).await;
                    if response.status().is_success() {
                        self.metrics.webhook_delivered(true);
                        return;
                    }
                    format!("HTTP {}", response.status())
                }
                Err(e) => e.to_string(),
            };
            self.metrics.webhook_delivered(false);
            let delay = backoff.next_delay().max(self.retry_initial / 2);
            log::warn!(
                "webhook {}: delivery of event #{id} failed (attempt {attempt}): {failure}; \
                 retrying in {}",
                self.hook.cursor_name(),
                humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
            );
            actix_rt::time::sleep(delay).await;
        }
    }
}
