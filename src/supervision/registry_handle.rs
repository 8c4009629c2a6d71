//! The way in to the registry, which may be stopped: it starts one when needed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, ArbiterHandle, Handler, MailboxError, Message};

use super::client::Client;
use super::client_record::ClientInfo;
use super::heartbeats::BeatError;
use super::registry::{
    Close, Get, List, Registry, RegistryDeps, Relocate, Remove, Resolve, Resolved,
};
use super::timeout_policy::TimeoutPolicy;
use crate::protocol::Proj;
use crate::storage::RecoveredClient;

/// How many registries one call may find stopping before it gives up. Each retry follows a
/// proof that a registry stopped (it stops only when empty), so even two is very unlikely.
const MAX_ATTEMPTS: usize = 16;

/// The registry could not be reached: the server is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the registry is unavailable (the server is shutting down)")]
pub struct Unavailable;

/// A cheap, cloneable, thread-safe handle to the registry, which stops itself when empty:
/// queries ([`RegistryHandle::get`], [`RegistryHandle::list`]) and the lazy start.
///
/// # Why no request is lost
/// A registry stops only when empty, and between its `ctx.stop()` and the drop of its mailbox
/// a message sent to it is lost: `send` answers `MailboxError::Closed`. On `Closed` the handle
/// replaces the stopped registry (only if it is still the current one, so concurrent callers
/// start one registry, not several) and retries.
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
    /// A handle whose registries run on `home`. None runs until the first heartbeat.
    pub(crate) fn new(home: ArbiterHandle, policy: TimeoutPolicy, deps: RegistryDeps) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: Mutex::new(None),
                closed: AtomicBool::new(false),
                home,
                deps,
                policy,
            }),
        }
    }

    /// Starts a registry holding `clients`, recovered from the event log, each with a fresh
    /// watchdog of its own timeout: a timeout the client asked for, clamped to the current
    /// bounds, or the current default for a client that never asked. Call it before any
    /// heartbeat is delivered; with no clients it does nothing.
    pub(crate) fn recover(&self, clients: Vec<RecoveredClient>) {
        if clients.is_empty() {
            return;
        }
        let policy = self.inner.policy;
        let seeds = clients
            .into_iter()
            .map(|mut c| {
                c.timeout = if c.timeout_requested {
                    c.timeout.clamp(policy.min, policy.max)
                } else {
                    policy.default
                };
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
            Registry::start_in_arbiter(&self.inner.home, move |_| Registry::new(deps, seeds));
        *current = Some(registry);
    }

    /// Whether a registry actor runs now.
    pub fn is_running(&self) -> bool {
        self.live().is_some()
    }

    /// One client's record, if it is online.
    pub async fn get(&self, proj: Proj) -> Result<Option<ClientInfo>, Unavailable> {
        Ok(self.call(Get { proj }, false).await?.flatten())
    }

    /// A page of online clients in `proj` order.
    pub async fn list(&self, query: List) -> Result<Vec<ClientInfo>, Unavailable> {
        Ok(self.call(query, false).await?.unwrap_or_default())
    }

    /// Removes `proj` now (an explicit `offline`). Answers whether it was online here. Does
    /// not start a registry (with none running, nobody is online), except in cluster mode,
    /// where a goodbye also ends the client's claim on another node.
    pub(crate) async fn leave(&self, proj: Proj) -> Result<bool, Unavailable> {
        let start = self.inner.deps.cluster.is_some();
        Ok(self.call(Remove { proj }, start).await?.unwrap_or(false))
    }

    /// Applies a heartbeat through the registry, starting one if none runs.
    pub(crate) async fn resolve(&self, resolve: Resolve) -> Result<Resolved, BeatError> {
        match self.call(resolve, true).await? {
            Some(resolved) => Ok(resolved?),
            None => Err(Unavailable.into()),
        }
    }

    /// Moves a client's actor (see [`Relocate`]).
    pub(crate) async fn relocate(&self, relocate: Relocate) -> Option<Addr<Client>> {
        self.call(relocate, false).await.ok().flatten().flatten()
    }

    /// Where registries (and actors of callers outside an arbiter) run.
    pub(crate) fn home(&self) -> ArbiterHandle {
        self.inner.home.clone()
    }

    /// Shuts the registry down for good (server stop): every actor stops watching, no event
    /// is published, and later calls answer [`Unavailable`]. Returns the clients that were
    /// online, with their exact last heartbeat (for the event log's snapshot).
    pub(crate) async fn close(&self) -> Vec<RecoveredClient> {
        self.close_with(Close).await.unwrap_or_default()
    }

    /// [`RegistryHandle::close`] with another closing message (cluster mode's leave).
    pub(crate) async fn close_with<M>(&self, msg: M) -> Option<M::Result>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        Registry: Handler<M>,
        <Registry as Actor>::Context: ToEnvelope<Registry, M>,
    {
        self.inner.closed.store(true, Ordering::SeqCst);
        let current = self.lock().take();
        match current {
            Some(registry) => registry.send(msg).await.ok(),
            None => None,
        }
    }

    /// Sends `msg` to the current registry, retrying on one found stopping. With `start`, a
    /// registry is started when none runs; without it, `Ok(None)` means none runs.
    pub(crate) async fn call<M>(
        &self,
        msg: M,
        start: bool,
    ) -> Result<Option<M::Result>, Unavailable>
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
        let registry =
            Registry::start_in_arbiter(&self.inner.home, move |_| Registry::new(deps, Vec::new()));
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
