//! The result of a run, as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// Percentiles of a distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// Server-side cost over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCost {
    /// Resident memory at the end of the window, in bytes.
    pub rss_bytes: u64,
    /// Resident memory before the first connection, in bytes.
    pub rss_baseline_bytes: u64,
    /// (RSS at the end − baseline) / connected clients, in bytes.
    pub rss_per_client_bytes: f64,
    /// CPU seconds the server used in the window.
    pub cpu_seconds: f64,
    /// CPU seconds per 100,000 acked heartbeats.
    pub cpu_seconds_per_100k: f64,
    /// CPU seconds the server used from before the first connect to the start of the window:
    /// the connects (and TLS handshakes, and hellos) plus the warm-up's heartbeats.
    pub cpu_seconds_before_window: f64,
}

/// Hung-client detection: offline event time − (last heartbeat + timeout).
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Clients that went silent.
    pub silenced: usize,
    /// Of those, detected (an `offline` event seen).
    pub detected: usize,
    /// Silenced clients never reported offline.
    pub missing: usize,
    /// Offline events before the deadline, or for clients that kept beating.
    pub premature: usize,
    /// Overshoot percentiles, in milliseconds.
    pub overshoot_ms: Percentiles,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The target.
    pub server: String,
    /// Clients asked for.
    pub clients: usize,
    /// Whether the clients spoke TLS.
    pub tls: bool,
    /// Whether each connection authenticated with a `hello` token.
    pub token: bool,
    /// Heartbeat interval, in milliseconds.
    pub interval_ms: u64,
    /// Measured window, in seconds.
    pub window_s: f64,
    /// Connections that opened.
    pub established: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Heartbeats sent per second in the window.
    pub offered_per_s: f64,
    /// Heartbeats answered per second in the window.
    pub acked_per_s: f64,
    /// Ack latency, in milliseconds.
    pub latency_ms: Percentiles,
    /// Errors by kind, over the whole run.
    pub errors: BTreeMap<String, u64>,
    /// The server's cost, when its pid or HTTP address was given.
    pub server_cost: Option<ServerCost>,
    /// The cluster's Redis commands during the window, with `--redis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<super::RedisCost>,
    /// Detection of hung clients, with `--silence`.
    pub detection: Option<Detection>,
}

impl BenchReport {
    /// A table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let p = |p: &Percentiles| {
            format!(
                "p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                p.p50, p.p99, p.p999, p.max
            )
        };
        let over = match (self.tls, self.token) {
            (false, false) => "",
            (true, false) => " over TLS",
            (false, true) => " with a hello token",
            (true, true) => " over TLS with a hello token",
        };
        let _ = writeln!(
            out,
            "heartwatch bench: {} clients on {}{}, one heartbeat every {} ms, {:.1} s measured",
            self.clients, self.server, over, self.interval_ms, self.window_s
        );
        let _ = writeln!(
            out,
            "  connections       established {}   failed {}",
            self.established, self.failed
        );
        let _ = writeln!(
            out,
            "  heartbeats/s      offered {:.1}   acked {:.1}",
            self.offered_per_s, self.acked_per_s
        );
        let _ = writeln!(out, "  ack latency (ms)  {}", p(&self.latency_ms));
        if self.errors.is_empty() {
            let _ = writeln!(out, "  errors            none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(out, "  errors            {}", list.join(", "));
        }
        match &self.server_cost {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "  server RSS        {:.1} MiB ({:.0} B per client over a {:.1} MiB baseline)",
                    c.rss_bytes as f64 / 1048576.0,
                    c.rss_per_client_bytes,
                    c.rss_baseline_bytes as f64 / 1048576.0
                );
                let _ = writeln!(
                    out,
                    "  server CPU        {:.2} s in the window, {:.3} s per 100k heartbeats ({:.2} s before it: connects, warm-up)",
                    c.cpu_seconds, c.cpu_seconds_per_100k, c.cpu_seconds_before_window
                );
            }
            None => {
                let _ = writeln!(out, "  server cost       (give --pid or --http to measure)");
            }
        }
        if let Some(r) = &self.redis {
            let top: Vec<String> = r
                .by_command
                .iter()
                .map(|(k, v)| format!("{k} {v:.1}"))
                .collect();
            let _ = writeln!(
                out,
                "  redis             {:.1} commands/s ({:.2} per 1k clients), {:.1} scripts/s: {}",
                r.commands_per_s,
                r.commands_per_s_per_1k_clients,
                r.scripts_per_s,
                top.join(", ")
            );
        }
        if let Some(d) = &self.detection {
            let _ = writeln!(
                out,
                "  hung clients      {} silenced, {} detected, {} missing, {} premature",
                d.silenced, d.detected, d.missing, d.premature
            );
            let _ = writeln!(out, "  overshoot (ms)    {}", p(&d.overshoot_ms));
        }
        out
    }
}
