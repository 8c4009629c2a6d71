//! Liveness supervision: one [`Client`] actor per online client with its watchdog, the
//! registry that maps `proj` to actors and decides every transition, and [`Heartbeats`], the
//! one way in for heartbeats and offlines.

mod client;
mod client_record;
mod heartbeats;
pub(crate) mod registry;
mod registry_handle;
mod timeout_policy;

use std::sync::Arc;

use actix::ArbiterHandle;

pub(crate) use client::{error_code, Attach};
pub(crate) use client_record::ClientRecord;
pub use client_record::{ClientInfo, ClientState};
pub use heartbeats::{BeatAck, BeatError, Heartbeat, Heartbeats};
pub(crate) use heartbeats::{Route, Vacancy};
pub use registry::{Full, List};
pub use registry_handle::{RegistryHandle, Unavailable};
pub use timeout_policy::TimeoutPolicy;

use crate::events::Pipeline;
use crate::metrics::Metrics;
use registry::RegistryDeps;

/// The supervision of a server: registries run on `home` (started on demand), clients past
/// `max_clients` are refused, and every transition goes through `pipeline`.
pub(crate) fn start(
    home: ArbiterHandle,
    policy: TimeoutPolicy,
    max_clients: usize,
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    cluster: Option<crate::cluster::Cluster>,
) -> Heartbeats {
    let deps = RegistryDeps {
        pipeline,
        metrics: metrics.clone(),
        default_timeout: policy.default,
        max_clients,
        cluster,
    };
    let registry = RegistryHandle::new(home, policy, deps);
    Heartbeats::new(registry, policy, metrics)
}

#[cfg(test)]
mod tests;
