//! Wiring a server into the cluster: what `Builder::start` and `Running::stop` call in cluster
//! mode, kept here so that the server's own steps stay the same in both modes.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::{Cluster, ClusterConfig, ClusterError, ClusterFeeds, ClusterOptions, OutboxCursor};
use super::{ClusterSink, StreamEvent};
use crate::events::{Event, EventBus, Sink};
use crate::metrics::Metrics;
use crate::notify::NotifyConfig;
use crate::storage::{Journal, StorageConfig};
use crate::supervision::RegistryHandle;

/// The event log of node `name`: in cluster mode each node keeps its own, in a subdirectory
/// named after it, so that several nodes on one machine may share `storage.path`.
pub(crate) fn node_storage(storage: &StorageConfig, name: &str) -> StorageConfig {
    let dir: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut storage = storage.clone();
    storage.path = PathBuf::from(&storage.path).join(dir);
    storage
}

/// Joins the cluster: the event log (if any) is the outbox, webhooks go through the stream.
pub(crate) async fn join(
    config: &ClusterConfig,
    listen: std::net::SocketAddr,
    http: std::net::SocketAddr,
    journal: Option<(Journal, OutboxCursor)>,
    notify: Option<NotifyConfig>,
    outage_webhooks: crate::events::OutageWebhooks,
    metrics: &Arc<Metrics>,
) -> Result<(Cluster, ClusterFeeds), ClusterError> {
    let webhooks = notify
        .filter(|n| !n.webhook.is_empty())
        .map(|n| (n, metrics.clone()));
    Cluster::start(
        config,
        ClusterOptions {
            listen,
            http: Some(http),
            journal,
            webhooks,
            outage_webhooks,
        },
    )
    .await
}

/// The sink that hands this node's transitions to the cluster.
pub(crate) fn sink(cluster: &Cluster) -> Box<dyn Sink> {
    Box::new(ClusterSink {
        cluster: cluster.clone(),
    })
}

/// Feeds the log and the subscribers with every node's events, from the stream (in cluster
/// mode they see the cluster's events, each once, not this node's decisions).
pub(crate) async fn feed_local(
    mut events: broadcast::Receiver<StreamEvent>,
    log_events: bool,
    bus: EventBus,
) {
    loop {
        match events.recv().await {
            Ok(event) => {
                if log_events {
                    log::info!(
                        target: "heartwatch::events",
                        "{} proj={} node={} id={} {}",
                        event.kind,
                        event.proj,
                        event.node,
                        event.id,
                        event.json
                    );
                }
                if !bus.is_empty() {
                    match serde_json::from_str::<Event>(&event.json) {
                        Ok(parsed) => bus.deliver(&parsed),
                        Err(e) => log::debug!("event {} not for subscribers: {e}", event.id),
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                log::warn!(
                    "cluster: {missed} event(s) not logged nor given to subscribers (lagged)"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Leaves the cluster at a clean stop: closes the registry (every client's claim and exact
/// last heartbeat), hands them over, and stops the cluster task.
pub(crate) async fn leave(cluster: &Cluster, registry: &RegistryHandle) {
    let claims = registry
        .close_with(super::registry_hooks::CloseForLeave)
        .await
        .unwrap_or_default();
    if let Err(e) = cluster.leave(claims).await {
        log::warn!(
            "cluster: could not leave cleanly ({e}); peers will take this node's clients over \
             after cluster.dead_after"
        );
    }
    cluster.stop().await;
}
