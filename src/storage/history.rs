//! What the history endpoint answers from: each client's recent events, folded from the event
//! log at start and fed by the pipeline since.

use std::time::Duration;

use serde::Deserialize;

/// `[history]`: the history endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Events kept per client.
    pub limit: usize,
    /// How long a client stays known after its last event (and how young a segment of the
    /// event log must be to be kept for it).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Heartbeat intervals each online client keeps under the fixed detector.
    pub samples: usize,
}
