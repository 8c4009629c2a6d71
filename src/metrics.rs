//! Prometheus metrics, served at `GET /metrics` in either exposition format ([`Format`]).
//!
//! Every metric is an atomic shared by all arbiters; the hot path (one heartbeat) touches one
//! counter and, for a client's second heartbeat on, one bucket and the sum of the interval
//! histogram ([`histogram`]). Labelled series are created once at start so that no lookup happens per event.
//! What is cheaper to read than to keep up to date (process figures, webhook queues) is read
//! by a collector at each scrape.

mod histogram;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

use crate::auth::ReloadOutcome;
use crate::events::OfflineReason;
pub use crate::ingest::tcp::CloseReason;
use crate::ingest::Ingest;
use crate::process_stats::ProcessStats;
use crate::protocol::ErrorCode;
use crate::supervision::{ClientState, StateCounts};
use histogram::DurationHistogram;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The states `heartwatch_clients` has a series for: those of a known client.
/// Online first (`clients_online` is its series).
const KNOWN_STATES: [ClientState; 4] = [
    ClientState::Online,
    ClientState::Late,
    ClientState::Paused,
    ClientState::Flapping,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabel {
    ingest: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestCodeLabel {
    ingest: &'static str,
    code: &'static str,
}

/// Upper bounds of `heartwatch_heartbeat_interval_seconds`: from a client beating far too
/// often to one beating hourly.
pub(crate) const INTERVAL_BUCKETS: [f64; 19] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0,
];

/// Upper bounds of `heartwatch_detection_overshoot_seconds`: a timer fires within a
/// millisecond or two of its deadline on an idle server; seconds mean a stalled one.
const OVERSHOOT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    webhook: String,
}

/// The two text formats a scraper may ask for. Their counters differ: OpenMetrics names the
/// family `x` and its sample `x_total` and ends with `# EOF`; Prometheus text 0.0.4 names
/// both `x_total` and has no end marker. A body parsed with the other format's parser loses
/// the counters' types, hence the negotiation in `GET /metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0, what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for every other scraper (and `curl`).
    PrometheusText,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Clients known (in the registry) now, whatever their state.
    clients: AtomicI64,
    /// `heartwatch_clients{state}`: counted from the registry at each scrape
    /// ([`Metrics::set_states`]); in between, clients coming and going move `online`.
    client_states: Vec<(ClientState, Gauge<i64, AtomicI64>)>,
    /// The `online` series of `client_states`.
    clients_online: Gauge<i64, AtomicI64>,
    heartbeats: Counter,
    heartbeat_interval: DurationHistogram,
    detection_overshoot: DurationHistogram,
    ingest_requests: Labelled<Ingest>,
    ingest_errors: Labelled<(Ingest, ErrorCode)>,
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
    stalls: Counter,
    event_stream_subscribers: Gauge<i64, AtomicI64>,
    webhook_queues: WebhookQueues,
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
        let states = Family::<StateLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "heartwatch_clients",
            "Clients known now, by state (online, late, paused, flapping); offline clients are not counted",
            states.clone(),
        );
        let client_states: Vec<_> = KNOWN_STATES
            .iter()
            .map(|&state| {
                let label = StateLabel {
                    state: state.as_str(),
                };
                (state, states.get_or_create(&label).clone())
            })
            .collect();
        let clients_online = client_states[0].1.clone();
        let clients = AtomicI64::new(0);
        let heartbeats = Counter::default();
        registry.register(
            "heartwatch_heartbeats",
            "Heartbeats accepted",
            heartbeats.clone(),
        );
        let heartbeat_interval = DurationHistogram::new(&INTERVAL_BUCKETS);
        registry.register_with_unit(
            "heartwatch_heartbeat_interval",
            "Time between two heartbeats of one client while it stays online (a client's first heartbeat after coming online is not counted)",
            Unit::Seconds,
            heartbeat_interval.clone(),
        );
        let detection_overshoot = DurationHistogram::new(&OVERSHOOT_BUCKETS);
        registry.register_with_unit(
            "heartwatch_detection_overshoot",
            "How long after its deadline a client was declared offline by timeout (the verdict's time minus the deadline)",
            Unit::Seconds,
            detection_overshoot.clone(),
        );
        let ingest_requests = Labelled::register(
            &mut registry,
            "heartwatch_ingest_requests",
            "HTTP pings and UDP datagrams received by the ingest listeners, by ingest",
            &Ingest::ALL,
            |i| IngestLabel { ingest: i.as_str() },
        );
        // Every code but those of connections and custom handlers, which these ingests have not.
        let ingest_keys: Vec<(Ingest, ErrorCode)> = Ingest::ALL
            .iter()
            .flat_map(|&i| {
                ErrorCode::ALL
                    .iter()
                    .filter(|c| {
                        !matches!(c, ErrorCode::TooManyConnections | ErrorCode::HandlerError)
                    })
                    .map(move |&c| (i, c))
            })
            .collect();
        let ingest_errors = Labelled::register(
            &mut registry,
            "heartwatch_ingest_errors",
            "HTTP pings and UDP datagrams refused, by ingest and error code (counted whether or not the answer was sent)",
            &ingest_keys,
            |(i, c)| IngestCodeLabel {
                ingest: i.as_str(),
                code: c.as_str(),
            },
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
        let stalls = Counter::default();
        registry.register(
            "heartwatch_stalls",
            "Times the server itself stalled (a timer fired later than server.stall_threshold, or the wall clock jumped); verdicts were deferred for server.stall_grace each time",
            stalls.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "heartwatch_build_info",
            "Always 1; its label is the version of the running heartwatch",
            build_info.clone(),
        );
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let event_stream_subscribers = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "heartwatch_event_stream_subscribers",
            "Open /api/v1/events responses",
            event_stream_subscribers.clone(),
        );
        let webhook_queues = WebhookQueues::default();
        registry.register_collector(Box::new(webhook_queues.clone()));
        registry.register_collector(Box::new(ProcessCollector));
        let cluster = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(ClusterCollector(cluster.clone())));
        Self {
            cluster,
            watchdogs_lost,
            stalls,
            event_stream_subscribers,
            webhook_queues,
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
            client_states,
            clients_online,
            heartbeats,
            heartbeat_interval,
            detection_overshoot,
            ingest_requests,
            ingest_errors,
            offline,
            connections,
            registry_running,
            frame_errors,
        }
    }

    /// Every metric, in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        out
    }

    /// Exposes cluster mode's `heartwatch_cluster_*` series from now on.
    pub(crate) fn set_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// Counts one open event stream until the returned slot is dropped (with the response).
    pub(crate) fn event_stream_subscriber(&self) -> GaugeSlot {
        GaugeSlot::take(&self.event_stream_subscribers)
    }

    /// Event-stream responses open now.
    pub fn event_stream_subscribers(&self) -> i64 {
        self.event_stream_subscribers.get()
    }

    /// Exposes the queue of the webhook named `name`: the events `committed` to the log and
    /// not yet `delivered` (its cursor), read at each scrape.
    pub(crate) fn watch_webhook_queue(
        &self,
        name: String,
        committed: watch::Receiver<u64>,
        delivered: Arc<AtomicU64>,
    ) {
        self.webhook_queues.add(WebhookQueue {
            name,
            committed,
            delivered,
        });
    }

    pub(crate) fn client_added(&self) {
        self.clients.fetch_add(1, Ordering::Relaxed);
        self.clients_online.inc();
    }
    pub(crate) fn client_removed(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
        self.clients_online.dec();
    }
    /// Sets `heartwatch_clients{state}` to `counts` (taken from the registry at a scrape).
    pub(crate) fn set_states(&self, counts: &StateCounts) {
        for (state, gauge) in &self.client_states {
            gauge.set(i64::try_from(counts.get(*state)).unwrap_or(i64::MAX));
        }
    }

    /// One heartbeat applied; `interval` since the client's previous one, if it had one
    /// while online.
    pub(crate) fn heartbeat(&self, interval: Option<Duration>) {
        self.heartbeats.inc();
        if let Some(interval) = interval {
            self.heartbeat_interval.observe(interval);
        }
    }
    /// A client was declared offline by timeout `overshoot` after its deadline.
    pub(crate) fn detection_overshoot(&self, overshoot: Duration) {
        self.detection_overshoot.observe(overshoot);
    }
    pub(crate) fn ingest_request(&self, ingest: Ingest) {
        self.ingest_requests.inc(ingest);
    }
    pub(crate) fn ingest_error(&self, ingest: Ingest, code: ErrorCode) {
        self.ingest_errors.inc((ingest, code));
    }
    /// Heartbeat intervals observed so far, and their sum.
    pub fn heartbeat_intervals(&self) -> (u64, Duration) {
        (
            self.heartbeat_interval.count(),
            self.heartbeat_interval.sum(),
        )
    }
    /// Timeout verdicts observed so far, and the sum of their overshoots.
    pub fn detection_overshoots(&self) -> (u64, Duration) {
        (
            self.detection_overshoot.count(),
            self.detection_overshoot.sum(),
        )
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
    pub(crate) fn stall(&self) {
        self.stalls.inc();
    }
    /// Stalls of the server itself noticed so far.
    pub fn stalls(&self) -> u64 {
        self.stalls.get()
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

    /// Clients known now (online, late, paused or flapping).
    pub fn clients(&self) -> i64 {
        self.clients.load(Ordering::Relaxed)
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

/// One unit of a gauge, held for as long as what it counts exists: the count cannot leak on
/// an early return or a dropped future.
#[derive(Debug)]
pub(crate) struct GaugeSlot(Gauge<i64, AtomicI64>);

impl GaugeSlot {
    fn take(gauge: &Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeSlot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What one webhook's queue depth is computed from.
#[derive(Debug)]
struct WebhookQueue {
    name: String,
    committed: watch::Receiver<u64>,
    /// The webhook's cursor: `u64::MAX` until its delivery starts (an empty queue).
    delivered: Arc<AtomicU64>,
}

/// `heartwatch_webhook_queue_depth{webhook}`, one series per webhook, absent without
/// webhooks. Read at each scrape, so that a delivery costs no metric update.
#[derive(Debug, Clone, Default)]
struct WebhookQueues(Arc<Mutex<Vec<WebhookQueue>>>);

impl WebhookQueues {
    fn add(&self, queue: WebhookQueue) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(queue);
    }
}

impl Collector for WebhookQueues {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let queues = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if queues.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "heartwatch_webhook_queue_depth",
            "Events committed to the event log and not yet delivered, per webhook",
            None,
            MetricType::Gauge,
        )?;
        for queue in queues.iter() {
            let committed = *queue.committed.borrow();
            let depth = committed.saturating_sub(queue.delivered.load(Ordering::Acquire));
            let label = WebhookLabel {
                webhook: queue.name.clone(),
            };
            ConstGauge::new(i64::try_from(depth).unwrap_or(i64::MAX))
                .encode(family.encode_family(&label)?)?;
        }
        Ok(())
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
        m.heartbeat(None);
        m.heartbeat(Some(Duration::from_millis(1500)));
        m.detection_overshoot(Duration::from_micros(700));
        m.offline(OfflineReason::Timeout);
        m.registry_running(true);
        let text = m.render(Format::PrometheusText);
        for needle in [
            "heartwatch_clients{state=\"online\"} 1",
            "heartwatch_clients{state=\"late\"} 0",
            "heartwatch_heartbeats_total 2",
            "heartwatch_heartbeat_interval_seconds_bucket{le=\"1\"} 0",
            "heartwatch_heartbeat_interval_seconds_bucket{le=\"2.5\"} 1",
            "heartwatch_heartbeat_interval_seconds_bucket{le=\"+Inf\"} 1",
            "heartwatch_heartbeat_interval_seconds_sum 1.5",
            "heartwatch_heartbeat_interval_seconds_count 1",
            "heartwatch_detection_overshoot_seconds_bucket{le=\"0.0005\"} 0",
            "heartwatch_detection_overshoot_seconds_bucket{le=\"0.001\"} 1",
            "heartwatch_detection_overshoot_seconds_count 1",
            "heartwatch_ingest_requests_total{ingest=\"udp\"} 0",
            "heartwatch_ingest_errors_total{ingest=\"http\",code=\"unauthorized\"} 0",
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
            "heartwatch_event_stream_subscribers 0",
            "heartwatch_stalls_total 0",
            concat!(
                "heartwatch_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn an_event_stream_is_counted_while_its_slot_lives() {
        let m = Metrics::new();
        let first = m.event_stream_subscriber();
        let second = m.event_stream_subscriber();
        assert_eq!(m.event_stream_subscribers(), 2);
        drop(first);
        assert_eq!(m.event_stream_subscribers(), 1);
        drop(second);
        assert_eq!(m.event_stream_subscribers(), 0);
    }

    #[test]
    fn a_webhook_queue_is_the_committed_events_its_cursor_has_not_reached() {
        let m = Metrics::new();
        let text = m.render(Format::OpenMetrics);
        assert!(
            !text.contains("webhook_queue"),
            "no webhook, no family:\n{text}"
        );
        let (committed, watched) = watch::channel(0);
        let delivered = Arc::new(AtomicU64::new(u64::MAX));
        m.watch_webhook_queue("hook-a".into(), watched, delivered.clone());
        let series = "heartwatch_webhook_queue_depth{webhook=\"hook-a\"}";
        let depth = |m: &Metrics| {
            let text = m.render(Format::PrometheusText);
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        };
        assert_eq!(depth(&m), 0, "not started yet");
        delivered.store(0, Ordering::Release);
        committed.send_replace(7);
        assert_eq!(depth(&m), 7);
        delivered.store(5, Ordering::Release);
        assert_eq!(depth(&m), 2);
        delivered.store(7, Ordering::Release);
        assert_eq!(depth(&m), 0);
    }
}
