//! Liveness supervision: one [`Client`] actor per online client with its watchdog, the
//! registry that maps `proj` to actors and decides every transition, and [`Heartbeats`], the
//! one way in for heartbeats and offlines.

mod client;
mod client_record;
mod detector;
mod heartbeats;
mod pauses;
mod registry;
mod registry_handle;
mod states;
mod timeout_policy;

use std::sync::Arc;

use actix::ArbiterHandle;

pub(crate) use client::{error_code, Attach};
pub use client_record::ClientInfo;
pub(crate) use detector::{watch_stalls, Detection, StallGuard};
pub use detector::{IntervalSummary, PhiConfig, PhiValue};
pub use heartbeats::{BeatAck, BeatError, Heartbeat, Heartbeats};
pub(crate) use heartbeats::{Route, Vacancy};
pub(crate) use pauses::{glob, PauseBook, Until};
pub(crate) use registry::Target;
pub use registry::{Full, List, PauseError};
pub use registry_handle::{RegistryHandle, Unavailable};
pub use states::ClientState;
pub use timeout_policy::TimeoutPolicy;

use crate::events::Pipeline;
use crate::metrics::Metrics;
use registry::RegistryDeps;

/// The supervision of a server: registries run on `home` (started on demand), clients past
/// `max_clients` are refused, silent clients are judged by `detection`, and every transition
/// goes through `pipeline`.
pub(crate) fn start(
    home: ArbiterHandle,
    policy: TimeoutPolicy,
    max_clients: usize,
    pipeline: Pipeline,
    detection: Arc<Detection>,
    pauses: PauseBook,
    metrics: Arc<Metrics>,
) -> Heartbeats {
    let deps = RegistryDeps {
        pipeline,
        metrics: metrics.clone(),
        default_timeout: policy.default,
        max_clients,
        detection: detection.clone(),
        pauses: Arc::new(std::sync::Mutex::new(pauses)),
    };
    let registry = RegistryHandle::new(home, policy, deps);
    Heartbeats::new(registry, policy, detection, metrics)
}

#[cfg(test)]
mod tests;
