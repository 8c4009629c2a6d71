//! Prometheus metrics, served at `GET /metrics`.
//!
//! Every metric is an atomic shared by all arbiters; the hot path (one heartbeat) touches one
//! counter. Labelled series are created once at start so that no lookup happens per event.

use std::sync::atomic::AtomicI64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::events::OfflineReason;
use crate::process_stats::ProcessStats;
use crate::protocol::ErrorCode;
use crate::transport::CloseReason;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
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
    offline: Vec<(OfflineReason, Counter)>,
    connections: Gauge<i64, AtomicI64>,
    registry_running: Gauge<i64, AtomicI64>,
    frame_errors: Vec<(ErrorCode, Counter)>,
    pings: Counter,
    sessions_closed: Vec<(CloseReason, Counter)>,
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
        let offline_family = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "heartwatch_offline",
            "Clients declared offline, by reason",
            offline_family.clone(),
        );
        let offline = OfflineReason::ALL
            .iter()
            .map(|&r| {
                let label = ReasonLabel { reason: r.as_str() };
                (r, offline_family.get_or_create(&label).clone())
            })
            .collect();
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "heartwatch_connections",
            "Open TCP heartbeat connections",
            connections.clone(),
        );
        let registry_running = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "heartwatch_registry_running",
            "1 while the registry actor runs, 0 while it is stopped (it stops when empty)",
            registry_running.clone(),
        );
        let errors_family = Family::<CodeLabel, Counter>::default();
        registry.register(
            "heartwatch_frame_errors",
            "Frames answered with an error, by code",
            errors_family.clone(),
        );
        let frame_errors = ErrorCode::ALL
            .iter()
            .map(|&c| {
                let label = CodeLabel { code: c.as_str() };
                (c, errors_family.get_or_create(&label).clone())
            })
            .collect();
        let pings = Counter::default();
        registry.register(
            "heartwatch_pings",
            "Pings sent to silent connections (session.idle_ping)",
            pings.clone(),
        );
        let closed_family = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "heartwatch_sessions_closed",
            "Connections ended, by reason",
            closed_family.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        let sessions_closed = CloseReason::ALL
            .iter()
            .map(|&r| {
                let label = ReasonLabel { reason: r.as_str() };
                (r, closed_family.get_or_create(&label).clone())
            })
            .collect();
        Self {
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
        if let Some((_, c)) = self.offline.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
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
    pub(crate) fn frame_error(&self, code: ErrorCode) {
        if let Some((_, c)) = self.frame_errors.iter().find(|(k, _)| *k == code) {
            c.inc();
        }
    }

    pub(crate) fn ping_sent(&self) {
        self.pings.inc();
    }
    pub(crate) fn session_closed(&self, reason: CloseReason) {
        if let Some((_, c)) = self.sessions_closed.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }

    /// Pings sent so far.
    pub fn pings(&self) -> u64 {
        self.pings.get()
    }
    /// Sessions closed so far for `reason`.
    pub fn sessions_closed(&self, reason: CloseReason) -> u64 {
        self.sessions_closed
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, c)| c.get())
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
        self.offline
            .iter()
            .find(|(r, _)| *r == reason)
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
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
