//! Prometheus metrics, served at `GET /metrics`.
//!
//! Every metric is an atomic shared by all arbiters; the hot path (one heartbeat) touches one
//! counter. Labelled series are created once at start so that no lookup happens per event.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::auth::ReloadOutcome;
use crate::events::OfflineReason;
pub use crate::ingest::tcp::CloseReason;
use crate::process_stats::ProcessStats;
use crate::protocol::ErrorCode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    clients: Gauge<i64, AtomicI64>,
    heartbeats: Counter,
    offline: Labelled<OfflineReason>,
    connections: Gauge<i64, AtomicI64>,
    registry_running: Gauge<i64, AtomicI64>,
    frame_errors: Labelled<ErrorCode>,
    pings: Counter,
    sessions_closed: Labelled<CloseReason>,
    storage_errors: Counter,
    storage_syncs: Counter,
    webhook_deliveries: Labelled<bool>,
    webhook_lost: Counter,
    auth_reloads: Labelled<ReloadOutcome>,
    tls_reloads: Labelled<ReloadOutcome>,
    watchdogs_lost: Counter,
    /// Cluster mode's counters, read at each scrape once the cluster has joined.
    cluster: Arc<OnceLock<crate::cluster::Cluster>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let clients = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "heartwatch_clients",
            "Clients currently online",
            clients.clone(),
        );
        let heartbeats = Counter::default();
        registry.register(
            "heartwatch_heartbeats",
            "Heartbeats accepted",
            heartbeats.clone(),
        );
        let offline = Labelled::register(
            &mut registry,
            "heartwatch_offline",
            "Clients declared offline, by reason",
            &OfflineReason::ALL,
            |r| ReasonLabel { reason: r.as_str() },
        );
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "heartwatch_connections",
            "Open TCP heartbeat connections",
            connections.clone(),
        );
        let registry_running = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "heartwatch_registry_running",
            "1 while the registry actor runs, 0 while it is stopped (1 s after its last client left)",
            registry_running.clone(),
        );
        let frame_errors = Labelled::register(
            &mut registry,
            "heartwatch_frame_errors",
            "Frames answered with an error, by code",
            &ErrorCode::ALL,
            |c| CodeLabel { code: c.as_str() },
        );
        let pings = Counter::default();
        registry.register(
            "heartwatch_pings",
            "Pings sent to silent connections (session.idle_ping)",
            pings.clone(),
        );
        let sessions_closed = Labelled::register(
            &mut registry,
            "heartwatch_sessions_closed",
            "Connections ended, by reason",
            &CloseReason::ALL,
            |r| ReasonLabel { reason: r.as_str() },
        );
        let storage_errors = Counter::default();
        registry.register(
            "heartwatch_storage_errors",
            "Event log writes, syncs or segment rolls that failed",
            storage_errors.clone(),
        );
        let storage_syncs = Counter::default();
        registry.register(
            "heartwatch_storage_syncs",
            "fdatasync calls of the event log (storage.fsync); one covers a whole batch of events",
            storage_syncs.clone(),
        );
        let webhook_deliveries = Labelled::register(
            &mut registry,
            "heartwatch_webhook_deliveries",
            "Webhook POST attempts, by result (a failed one is retried)",
            &[true, false],
            |ok| ResultLabel {
                result: if ok { "ok" } else { "failed" },
            },
        );
        let webhook_lost = Counter::default();
        registry.register(
            "heartwatch_webhook_lost",
            "Events deleted from the log (storage.max_bytes) before a webhook delivered them",
            webhook_lost.clone(),
        );
        let auth_reloads = Labelled::register(
            &mut registry,
            "heartwatch_auth_reloads",
            "Reloads of auth.tokens_file (SIGHUP), by result; a failed one keeps the previous tokens",
            &ReloadOutcome::ALL,
            |r| ResultLabel { result: r.as_str() },
        );
        let tls_reloads = Labelled::register(
            &mut registry,
            "heartwatch_tls_reloads",
            "Reloads of tls.cert and tls.key (SIGHUP), by result; a failed one keeps the current certificate",
            &ReloadOutcome::ALL,
            |r| ResultLabel { result: r.as_str() },
        );
        let watchdogs_lost = Counter::default();
        registry.register(
            "heartwatch_watchdogs_lost",
            "Client actors dropped with their arbiter while watching a client (an application stopped the arbiter); each client was watched again",
            watchdogs_lost.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        let cluster = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(ClusterCollector(cluster.clone())));
        Self {
            cluster,
            watchdogs_lost,
            storage_errors,
            storage_syncs,
            webhook_deliveries,
            webhook_lost,
            auth_reloads,
            tls_reloads,
            pings,
            sessions_closed,
            registry,
            clients,
            heartbeats,
            offline,
            connections,
            registry_running,
            frame_errors,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Exposes cluster mode's `heartwatch_cluster_*` series from now on.
    pub(crate) fn set_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    pub(crate) fn client_added(&self) {
        self.clients.inc();
    }
    pub(crate) fn client_removed(&self) {
        self.clients.dec();
    }
    pub(crate) fn heartbeat(&self) {
        self.heartbeats.inc();
    }
    pub(crate) fn offline(&self, reason: OfflineReason) {
        self.offline.inc(reason);
    }
    pub(crate) fn connection_opened(&self) {
        self.connections.inc();
    }
    pub(crate) fn connection_closed(&self) {
        self.connections.dec();
    }
    pub(crate) fn registry_running(&self, running: bool) {
        self.registry_running.set(i64::from(running));
    }
    pub(crate) fn watchdog_lost(&self) {
        self.watchdogs_lost.inc();
    }
    /// Client actors lost with their arbiter so far.
    pub fn watchdogs_lost(&self) -> u64 {
        self.watchdogs_lost.get()
    }
    pub(crate) fn frame_error(&self, code: ErrorCode) {
        self.frame_errors.inc(code);
    }

    pub(crate) fn ping_sent(&self) {
        self.pings.inc();
    }
    pub(crate) fn session_closed(&self, reason: CloseReason) {
        self.sessions_closed.inc(reason);
    }
    pub(crate) fn tls_reload(&self, outcome: ReloadOutcome) {
        self.tls_reloads.inc(outcome);
    }
    /// Certificate reloads so far with `outcome`.
    pub fn tls_reloads(&self, outcome: ReloadOutcome) -> u64 {
        self.tls_reloads.get(outcome)
    }
    pub(crate) fn auth_reload(&self, outcome: ReloadOutcome) {
        self.auth_reloads.inc(outcome);
    }

    /// Token file reloads so far with `outcome`.
    pub fn auth_reloads(&self, outcome: ReloadOutcome) -> u64 {
        self.auth_reloads.get(outcome)
    }

    pub(crate) fn storage_error(&self) {
        self.storage_errors.inc();
    }
    pub(crate) fn storage_synced(&self) {
        self.storage_syncs.inc();
    }
    pub(crate) fn webhook_delivered(&self, ok: bool) {
        self.webhook_deliveries.inc(ok);
    }
    pub(crate) fn webhook_lost(&self, events: u64) {
        self.webhook_lost.inc_by(events);
    }

    /// Event log operations that failed so far.
    pub fn storage_errors(&self) -> u64 {
        self.storage_errors.get()
    }
    /// Event log syncs so far.
    pub fn storage_syncs(&self) -> u64 {
        self.storage_syncs.get()
    }
    /// Webhook POST attempts so far that succeeded (`ok`) or failed.
    pub fn webhook_deliveries(&self, ok: bool) -> u64 {
        self.webhook_deliveries.get(ok)
    }

    /// Pings sent so far.
    pub fn pings(&self) -> u64 {
        self.pings.get()
    }
    /// Sessions closed so far for `reason`.
    pub fn sessions_closed(&self, reason: CloseReason) -> u64 {
        self.sessions_closed.get(reason)
    }

    /// Clients online now.
    pub fn clients(&self) -> i64 {
        self.clients.get()
    }
    /// Heartbeats accepted so far.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats.get()
    }
    /// Open heartbeat connections now.
    pub fn connections(&self) -> i64 {
        self.connections.get()
    }
    /// Whether the registry actor runs now.
    pub fn is_registry_running(&self) -> bool {
        self.registry_running.get() != 0
    }
    /// Offline transitions so far for `reason`.
    pub fn offline_total(&self, reason: OfflineReason) -> u64 {
        self.offline.get(reason)
    }
}

/// A counter family with one series per key, all created at start, so that counting an event
/// is a scan of a handful of keys and an atomic increment: no label hashing, no allocation.
struct Labelled<K>(Vec<(K, Counter)>);

impl<K: Copy + PartialEq> Labelled<K> {
    fn register<L>(
        registry: &mut Registry,
        name: &str,
        help: &str,
        keys: &[K],
        label: impl Fn(K) -> L,
    ) -> Self
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = Family::<L, Counter>::default();
        registry.register(name, help, family.clone());
        Self(
            keys.iter()
                .map(|&k| (k, family.get_or_create(&label(k)).clone()))
                .collect(),
        )
    }

    fn inc(&self, key: K) {
        if let Some((_, c)) = self.0.iter().find(|(k, _)| *k == key) {
            c.inc();
        }
    }

    fn get(&self, key: K) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, c)| c.get())
    }
}

/// The standard `process_*` series, read from `/proc/self` at each scrape (and absent where
/// there is no `/proc`).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(stats) = ProcessStats::read(None) else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent, in seconds",
            None,
            MetricType::Counter,
        )?)?;
        let rss = ConstGauge::new(stats.rss_bytes as i64);
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size, in bytes",
            None,
            MetricType::Gauge,
        )?)?;
        let threads = ConstGauge::new(stats.threads as i64);
        threads.encode(encoder.encode_descriptor(
            "process_threads",
            "Threads of the process",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

/// The `heartwatch_cluster_*` series (nothing in single-node mode).
struct ClusterCollector(Arc<OnceLock<crate::cluster::Cluster>>);

impl std::fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterCollector")
    }
}

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(cluster) = self.0.get() else {
            return Ok(());
        };
        let stats = cluster.stats();
        let counters = [
            (
                "heartwatch_cluster_events_published",
                "Events this node added to the cluster's stream",
                stats.published.load(Relaxed),
            ),
            (
                "heartwatch_cluster_fenced",
                "Transitions of this node that changed nothing: their claim was no longer in force (the client had moved) or their node incarnation was dead",
                stats.fenced.load(Relaxed),
            ),
            (
                "heartwatch_cluster_stale_claims",
                "Claims of this node that lost to a later claim elsewhere (the client was evicted here)",
                stats.stale.load(Relaxed),
            ),
            (
                "heartwatch_cluster_adopted",
                "Clients this node took over from nodes that died or left",
                stats.adopted.load(Relaxed),
            ),
            (
                "heartwatch_cluster_declared_dead",
                "Peers this node declared dead",
                stats.declared_dead.load(Relaxed),
            ),
            (
                "heartwatch_cluster_rejoined",
                "Times this node found itself declared dead and joined again",
                stats.rejoined.load(Relaxed),
            ),
            (
                "heartwatch_cluster_redis_errors",
                "Redis calls that failed or timed out",
                stats.redis_errors.load(Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        ConstGauge::new(cluster.pending() as i64).encode(encoder.encode_descriptor(
            "heartwatch_cluster_pending",
            "Transitions decided and not yet published to Redis (kept in the event log)",
            None,
            MetricType::Gauge,
        )?)?;
        let healthy = matches!(cluster.health(), crate::cluster::ClusterHealth::Ok);
        ConstGauge::new(i64::from(healthy)).encode(encoder.encode_descriptor(
            "heartwatch_cluster_healthy",
            "1 while Redis has answered within cluster.dead_after",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_required_series() {
        let m = Metrics::new();
        m.client_added();
        m.heartbeat();
        m.offline(OfflineReason::Timeout);
        m.registry_running(true);
        let text = m.render();
        for needle in [
            "heartwatch_clients 1",
            "heartwatch_heartbeats_total 1",
            "heartwatch_offline_total{reason=\"timeout\"} 1",
            "heartwatch_offline_total{reason=\"offline\"} 0",
            "heartwatch_connections 0",
            "heartwatch_registry_running 1",
            "heartwatch_frame_errors_total{code=\"bad_json\"} 0",
            "heartwatch_pings_total 0",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "heartwatch_sessions_closed_total{reason=\"idle\"} 0",
            "heartwatch_auth_reloads_total{result=\"failed\"} 0",
            "heartwatch_tls_reloads_total{result=\"failed\"} 0",
            "heartwatch_storage_syncs_total 0",
            "heartwatch_webhook_lost_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
