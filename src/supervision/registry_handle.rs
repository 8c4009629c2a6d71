//! The way in to the registry, which may be stopped: it starts one when needed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Arbiter, ArbiterHandle, Handler, MailboxError, Message};

use super::client_record::ClientInfo;
use super::monitor::{Beat, Monitor};
use super::registry::{Get, List, Registry, RegistryDeps, Remove, Resolve, Resolved};
use super::timeout_policy::TimeoutPolicy;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::protocol::Proj;

/// How many times one call retries on a registry or monitor found stopping. Each retry follows
/// a proof that the previous target stopped, so more than two is already very unlikely.
const MAX_ATTEMPTS: usize = 8;

/// The registry could not be reached (the server is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the registry is unavailable (shutting down?)")]
pub struct Unavailable;

/// A heartbeat to deliver.
#[derive(Debug, Clone)]
pub struct BeatRequest {
    /// The client.
    pub proj: Proj,
    /// Where it came from.
    pub addr: SocketAddr,
    /// The client's requested timeout in milliseconds (not yet clamped), if any.
    pub timeout_ms: Option<u64>,
}

/// A delivered heartbeat.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The client's monitor: keep it and pass it back with the next heartbeat.
    pub monitor: Addr<Monitor>,
    /// The client's effective timeout.
    pub timeout: Duration,
}

/// A cheap, cloneable, thread-safe handle to the registry, which stops itself when empty.
///
/// # Why this is race-free
/// The registry stops when its last client leaves, and between `ctx.stop()` and the drop of
/// its mailbox a message sent to it is lost (`send` answers `MailboxError::Closed`). Every
/// call here therefore uses `send`, and on `Closed` replaces the stopped registry (only if it
/// is still the current one, so concurrent callers start one registry, not several) and
/// retries. A registry never stops while it maps a client, so no live monitor is orphaned.
/// The same rule covers monitors: a session's cached monitor that answers `Closed` is passed
/// back as `stale`, and the registry replaces it at once.
#[derive(Clone)]
pub struct RegistryHandle {
    inner: Arc<Inner>,
}

struct Inner {
    current: Mutex<Option<Addr<Registry>>>,
    home: ArbiterHandle,
    deps: RegistryDeps,
    policy: TimeoutPolicy,
}

impl RegistryHandle {
    /// A handle whose registries run on `home`. None runs until the first heartbeat.
    pub fn new(
        home: ArbiterHandle,
        policy: TimeoutPolicy,
        events: EventBus,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: Mutex::new(None),
                home,
                deps: RegistryDeps {
                    events,
                    metrics,
                    default_timeout: policy.default,
                },
                policy,
            }),
        }
    }

    /// The timeout rules in force.
    pub fn policy(&self) -> TimeoutPolicy {
        self.inner.policy
    }

    /// Whether a registry actor runs now.
    pub fn is_running(&self) -> bool {
        self.live().is_some()
    }

    /// Delivers a heartbeat: to `cached` if given and alive, else through the registry (which
    /// creates the monitor for a client that is not online). Returns once the heartbeat has
    /// taken effect.
    pub async fn beat(
        &self,
        beat: BeatRequest,
        cached: Option<Addr<Monitor>>,
    ) -> Result<Delivered, Unavailable> {
        let timeout = beat.timeout_ms.map(|ms| self.inner.policy.clamp_ms(ms));
        let to_monitor = Beat {
            addr: beat.addr,
            timeout,
        };
        let mut stale = None;
        if let Some(monitor) = cached {
            match monitor.send(to_monitor.clone()).await {
                Ok(ack) => return Ok(self.delivered(monitor, ack.timeout)),
                Err(_) => stale = Some(monitor),
            }
        }
        let home = Arbiter::try_current().unwrap_or_else(|| self.inner.home.clone());
        for _ in 0..MAX_ATTEMPTS {
            let resolve = Resolve {
                proj: beat.proj.clone(),
                addr: beat.addr,
                timeout,
                stale: stale.take(),
                home: home.clone(),
            };
            match self.call(resolve, true).await? {
                Some(Resolved::Created { monitor, timeout }) => {
                    return Ok(self.delivered(monitor, timeout))
                }
                Some(Resolved::Existing(monitor)) => match monitor.send(to_monitor.clone()).await {
                    Ok(ack) => return Ok(self.delivered(monitor, ack.timeout)),
                    Err(_) => stale = Some(monitor),
                },
                None => return Err(Unavailable),
            }
        }
        Err(Unavailable)
    }

    /// Removes `proj` now (an explicit `offline`). Answers whether it was online. Does not
    /// start a registry: with none running, nobody is online.
    pub async fn leave(&self, proj: Proj) -> Result<bool, Unavailable> {
        Ok(self.call(Remove { proj }, false).await?.unwrap_or(false))
    }

    /// One client's record, if it is online.
    pub async fn get(&self, proj: Proj) -> Option<ClientInfo> {
        self.call(Get { proj }, false)
            .await
            .ok()
            .flatten()
            .flatten()
    }

    /// A page of online clients in `proj` order.
    pub async fn list(&self, query: List) -> Vec<ClientInfo> {
        self.call(query, false)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn delivered(&self, monitor: Addr<Monitor>, timeout: Duration) -> Delivered {
        self.inner.deps.metrics.heartbeat();
        Delivered { monitor, timeout }
    }

    /// Sends `msg` to the current registry, retrying on one found stopping. With `start`, a
    /// registry is started when none runs; without it, `Ok(None)` means none runs.
    async fn call<M>(&self, msg: M, start: bool) -> Result<Option<M::Result>, Unavailable>
    where
        M: Message + Clone + Send + 'static,
        M::Result: Send,
        Registry: Handler<M>,
        <Registry as Actor>::Context: ToEnvelope<Registry, M>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let registry = match (self.live(), start) {
                (Some(registry), _) => registry,
                (None, true) => self.start(),
                (None, false) => return Ok(None),
            };
            match registry.send(msg.clone()).await {
                Ok(result) => return Ok(Some(result)),
                Err(MailboxError::Closed) => self.forget(&registry),
                Err(MailboxError::Timeout) => return Err(Unavailable),
            }
        }
        Err(Unavailable)
    }

    fn live(&self) -> Option<Addr<Registry>> {
        let current = self.lock();
        current.as_ref().filter(|r| r.connected()).cloned()
    }

    /// Starts a registry unless another caller has just done so.
    fn start(&self) -> Addr<Registry> {
        let mut current = self.lock();
        if let Some(registry) = current.as_ref().filter(|r| r.connected()) {
            return registry.clone();
        }
        let deps = self.inner.deps.clone();
        let registry = Registry::start_in_arbiter(&self.inner.home, move |_| Registry::new(deps));
        *current = Some(registry.clone());
        registry
    }

    /// Drops `stopped` as the current registry, unless it was already replaced.
    fn forget(&self, stopped: &Addr<Registry>) {
        let mut current = self.lock();
        if current.as_ref() == Some(stopped) {
            *current = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Addr<Registry>>> {
        self.inner.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}
