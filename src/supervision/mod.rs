//! Liveness supervision: one [`Monitor`] actor per client with its watchdog, and the
//! [`Registry`] that maps `proj` to monitors, reached through a [`RegistryHandle`].

mod client_record;
mod monitor;
mod registry;
mod registry_handle;
mod timeout_policy;

pub use client_record::{Applied, ClientInfo, ClientRecord, ClientState, Removed};
pub use monitor::{Beat, BeatAck, Monitor};
pub use registry::{
    Close, Expired, Full, Get, List, Registry, Remove, Resolve, Resolved, IDLE_STOP_AFTER,
};
pub use registry_handle::{BeatError, BeatRequest, Delivered, RegistryHandle, Unavailable};
pub use timeout_policy::TimeoutPolicy;

#[cfg(test)]
mod tests;
