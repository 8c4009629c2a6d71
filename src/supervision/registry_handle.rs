//! The way in to the registry, which may be stopped: it starts one when needed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Arbiter, ArbiterHandle, Handler, MailboxError, Message};

use super::client_record::ClientInfo;
use super::monitor::{Beat, Monitor};
use super::registry::{Close, Full, Get, List, Registry, RegistryDeps, Remove, Resolve};
use super::timeout_policy::TimeoutPolicy;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::protocol::Proj;
use crate::storage::{Journal, RecoveredClient};

/// How many registries one call may find stopping before it gives up. Each retry follows a
/// proof that a registry stopped (it stops only when empty), so even two is very unlikely.
const MAX_ATTEMPTS: usize = 16;

/// The registry could not be reached: the server is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the registry is unavailable (shutting down?)")]
pub struct Unavailable;

/// A heartbeat that was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeatError {
    /// The server is shutting down.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// A new client would exceed `server.max_clients`.
    #[error(transparent)]
    TooManyClients(#[from] Full),
}

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
/// # Why no heartbeat is lost
/// - To a monitor: a monitor refuses a heartbeat only once the registry has removed its
///   client (the decision and the heartbeat meet under the client record's lock), and a
///   stopped monitor answers `Closed`. Either way the heartbeat goes to the registry.
/// - To the registry: it applies a heartbeat in its handler, to the record of an online
///   client or by creating a monitor, so a `Resolve` that reaches a running registry always
///   succeeds. A registry stops only when empty, and between its `ctx.stop()` and the drop of
///   its mailbox a message sent to it is lost: `send` answers `MailboxError::Closed`. On
///   `Closed` the handle replaces the stopped registry (only if it is still the current one,
///   so concurrent callers start one registry, not several) and retries.
#[derive(Clone)]
pub struct RegistryHandle {
    inner: Arc<Inner>,
}

struct Inner {
    current: Mutex<Option<Addr<Registry>>>,
    /// Set by [`RegistryHandle::close`]: no registry is started any more.
    closed: AtomicBool,
    home: ArbiterHandle,
    deps: RegistryDeps,
    policy: TimeoutPolicy,
}

impl RegistryHandle {
    /// A handle whose registries run on `home` and hold at most `max_clients` clients. None
    /// runs until the first heartbeat.
    pub fn new(
        home: ArbiterHandle,
        policy: TimeoutPolicy,
        max_clients: usize,
        events: EventBus,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::with_journal(home, policy, max_clients, events, metrics, None)
    }

    /// [`RegistryHandle::new`], appending every event to `journal`.
    pub fn with_journal(
        home: ArbiterHandle,
        policy: TimeoutPolicy,
        max_clients: usize,
        events: EventBus,
        metrics: Arc<Metrics>,
        journal: Option<Journal>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: Mutex::new(None),
                closed: AtomicBool::new(false),
                home,
                deps: RegistryDeps {
                    events,
                    metrics,
                    default_timeout: policy.default,
                    max_clients,
                    journal,
                },
                policy,
            }),
        }
    }

    /// Starts a registry holding `clients`, recovered from the event log, each with a fresh
    /// watchdog of its own timeout (clamped to the current policy). Call it before any
    /// heartbeat is delivered; with no clients it does nothing.
    pub fn recover(&self, clients: Vec<RecoveredClient>) {
        if clients.is_empty() {
            return;
        }
        let policy = self.inner.policy;
        let seeds = clients
            .into_iter()
            .map(|mut c| {
                c.timeout = c.timeout.clamp(policy.min, policy.max);
                c
            })
            .collect();
        let mut current = self.lock();
        if current.as_ref().is_some_and(Addr::connected) {
            log::warn!("recovery ignored: the registry already runs");
            return;
        }
        let deps = self.inner.deps.clone();
        let registry =
            Registry::start_in_arbiter(&self.inner.home, move |_| Registry::seeded(deps, seeds));
        *current = Some(registry);
    }

    /// The timeout rules in force.
    pub fn policy(&self) -> TimeoutPolicy {
        self.inner.policy
    }

    /// Whether a registry actor runs now.
    pub fn is_running(&self) -> bool {
        self.live().is_some()
    }

    /// Delivers a heartbeat: to `cached` if given and its client still online, else through
    /// the registry (which creates the monitor of a client that is not online). Returns once
    /// the heartbeat has taken effect.
    pub async fn beat(
        &self,
        beat: BeatRequest,
        cached: Option<Addr<Monitor>>,
    ) -> Result<Delivered, BeatError> {
        let timeout = beat.timeout_ms.map(|ms| self.inner.policy.clamp_ms(ms));
        if let Some(monitor) = cached {
            let direct = Beat {
                addr: beat.addr,
                timeout,
            };
            if let Ok(Ok(ack)) = monitor.send(direct).await {
                return Ok(self.delivered(monitor, ack.timeout));
            }
        }
        let resolve = Resolve {
            proj: beat.proj,
            addr: beat.addr,
            timeout,
            home: Arbiter::try_current().unwrap_or_else(|| self.inner.home.clone()),
        };
        match self.call(resolve, true).await? {
            Some(Ok(resolved)) => Ok(self.delivered(resolved.monitor, resolved.timeout)),
            Some(Err(full)) => Err(full.into()),
            None => Err(Unavailable.into()),
        }
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

    /// Shuts the registry down for good (server stop): every monitor is stopped, no event is
    /// published, and later calls answer [`Unavailable`].
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let current = self.lock().take();
        if let Some(registry) = current {
            let _ = registry.send(Close).await;
        }
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
            if self.inner.closed.load(Ordering::SeqCst) {
                return Err(Unavailable);
            }
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
