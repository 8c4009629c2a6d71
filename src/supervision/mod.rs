//! Liveness supervision: one [`Client`] actor per online client with its watchdog, the
//! registry that maps `proj` to actors and decides every transition, and [`Heartbeats`], the
//! one way in for heartbeats and offlines.

mod client;
mod client_record;
mod detector;
mod heartbeats;
mod pauses;
pub(crate) mod registry;
mod registry_handle;
mod states;
mod timeout_policy;

use std::sync::Arc;

use actix::ArbiterHandle;

pub(crate) use client::{error_code, Attach};
pub use client_record::ClientInfo;
pub(crate) use client_record::ClientRecord;
pub(crate) use detector::{watch_stalls, Detection, StallGuard};
pub use detector::{IntervalSummary, PhiConfig, PhiValue};
pub use heartbeats::{BeatAck, BeatError, Heartbeat, Heartbeats};
pub(crate) use heartbeats::{Route, Vacancy};
pub(crate) use pauses::{glob, PauseBook, Until};
pub(crate) use registry::Target;
pub use registry::{Full, List, PauseError};
pub use registry_handle::{RegistryHandle, Unavailable};
pub use states::{ClientState, StateCounts};
pub use timeout_policy::TimeoutPolicy;

use crate::events::Pipeline;
use crate::metrics::Metrics;
use registry::RegistryDeps;

/// What a server's supervision is bound by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub policy: TimeoutPolicy,
    /// `server.max_clients`.
    pub max_clients: usize,
    /// `server.max_pending`.
    pub max_pending: usize,
    /// `server.interval_ratio`.
    pub interval_ratio: f64,
}

impl Limits {
    /// The limits of `config`.
    pub(crate) fn of(config: &crate::config::ServerConfig) -> Self {
        Self {
            policy: config.timeout_policy(),
            max_clients: config.max_clients,
            max_pending: config.max_pending,
            interval_ratio: config.interval_ratio,
        }
    }
}

/// The supervision of a server: registries run on `home` (started on demand), clients past
/// `limits` are refused, silent clients are judged by `detection` (and paused by `pauses`),
/// and every transition goes through `pipeline`.
pub(crate) fn start(
    home: ArbiterHandle,
    limits: Limits,
    pipeline: Pipeline,
    detection: Arc<Detection>,
    pauses: PauseBook,
    metrics: Arc<Metrics>,
    cluster: Option<crate::cluster::Cluster>,
) -> Heartbeats {
    let deps = RegistryDeps {
        pipeline,
        metrics: metrics.clone(),
        default_timeout: limits.policy.default,
        max_clients: limits.max_clients,
        cluster,
        detection: detection.clone(),
        pauses: Arc::new(std::sync::Mutex::new(pauses)),
    };
    let registry = RegistryHandle::new(home, limits.policy, limits.max_pending, deps);
    Heartbeats::new(
        registry,
        limits.policy,
        limits.interval_ratio,
        detection,
        metrics,
    )
}

#[cfg(test)]
mod tests;
