//! The way in to the registry, which may be stopped: it starts one when needed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, ArbiterHandle, Handler, MailboxError, Message};

use super::client::Client;
use super::client_record::ClientInfo;
use super::heartbeats::BeatError;
use super::pauses::Until;
use super::registry::{
    Close, Get, List, Pause, PauseError, Registry, RegistryDeps, Relocate, Remove, Resolve,
    Resolved, Resume, Target,
};
use super::states::StateCounts;
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

/// One heartbeat on its way through the registry, counted while it lives.
struct Pending<'a>(usize, &'a AtomicUsize);

impl<'a> Pending<'a> {
    fn count(pending: &'a AtomicUsize) -> Self {
        Self(pending.fetch_add(1, Ordering::AcqRel) + 1, pending)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.1.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a client refused with `pending` heartbeats on their way (past `max`) should wait:
/// about a second per `max` of them (the registry applies hundreds of thousands a second, so
/// that is the backlog's drain time with a wide margin), spread by ±50% so that the refused do
/// not all come back at once.
fn retry_after(pending: usize, max: usize) -> std::time::Duration {
    let load = pending as f64 / max.max(1) as f64;
    let spread = 0.5 + fastrand::f64();
    std::time::Duration::from_secs_f64((load * spread).clamp(0.1, 30.0))
}

/// The target of a pause or a resume.
trait TargetOf {
    fn target(&self) -> &Target;
}

impl TargetOf for Pause {
    fn target(&self) -> &Target {
        &self.target
    }
}

impl TargetOf for Resume {
    fn target(&self) -> &Target {
        &self.target
    }
}

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
    /// Heartbeats on their way through the registry now.
    pending: AtomicUsize,
    /// `server.max_pending`.
    max_pending: usize,
    /// Set by [`RegistryHandle::close`]: no registry is started any more.
    closed: AtomicBool,
    home: ArbiterHandle,
    deps: RegistryDeps,
    policy: TimeoutPolicy,
}

impl RegistryHandle {
    /// A handle whose registries run on `home`. None runs until the first heartbeat.
    pub(crate) fn new(
        home: ArbiterHandle,
        policy: TimeoutPolicy,
        max_pending: usize,
        deps: RegistryDeps,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: Mutex::new(None),
                pending: AtomicUsize::new(0),
                max_pending,
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
        {
            // A pause by name is for a client that is known: one that was not online at the
            // end of the log is dropped.
            let known: std::collections::HashSet<&Proj> = clients.iter().map(|c| &c.proj).collect();
            let mut book = self
                .inner
                .deps
                .pauses
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            book.keep_only(|p| known.contains(p));
        }
        if clients.is_empty() {
            return;
        }
        let policy = self.inner.policy;
        let seeds: Vec<RecoveredClient> = clients
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

    /// How many clients are in each state now (none while no registry runs).
    pub async fn count_states(&self) -> Result<StateCounts, Unavailable> {
        Ok(self
            .call(super::registry::CountStates, false)
            .await?
            .unwrap_or_default())
    }

    /// A page of online clients in `proj` order.
    pub async fn list(&self, query: List) -> Result<Vec<ClientInfo>, Unavailable> {
        Ok(self.call(query, false).await?.unwrap_or_default())
    }

    /// Pauses `target`: one client (which must be online), or every client a glob matches,
    /// now and as they come online, until `until` or until resumed. Answers the clients
    /// paused.
    pub(crate) async fn pause(
        &self,
        target: Target,
        until: Option<Until>,
    ) -> Result<Result<Vec<Proj>, PauseError>, Unavailable> {
        self.pause_call(Pause { target, until }).await
    }

    /// Ends the pause of `target`. Answers the clients resumed.
    pub(crate) async fn resume(
        &self,
        target: Target,
    ) -> Result<Result<Vec<Proj>, PauseError>, Unavailable> {
        self.pause_call(Resume { target }).await
    }

    /// A pause or resume: of one client, through a running registry (none runs: the client is
    /// not known); of a window, through a registry started if needed, so that it is ordered
    /// with the clients coming online.
    async fn pause_call<M>(&self, msg: M) -> Result<Result<Vec<Proj>, PauseError>, Unavailable>
    where
        M: Message<Result = Result<Vec<Proj>, PauseError>> + Clone + Send + TargetOf + 'static,
        Registry: Handler<M>,
    {
        let not_known = match msg.target() {
            Target::Proj(proj) => Some(proj.clone()),
            Target::Glob(_) => None,
        };
        match self.call(msg, not_known.is_none()).await? {
            Some(result) => Ok(result),
            None => Ok(Err(PauseError::NotKnown(not_known.ok_or(Unavailable)?))),
        }
    }

    /// Removes `proj` now (an explicit `offline`). Answers whether it was online here. Does
    /// not start a registry (with none running, nobody is online), except in cluster mode,
    /// where a goodbye also ends the client's claim on another node.
    pub(crate) async fn leave(&self, proj: Proj) -> Result<bool, Unavailable> {
        let start = self.inner.deps.cluster.is_some();
        Ok(self.call(Remove { proj }, start).await?.unwrap_or(false))
    }

    /// Applies a heartbeat through the registry, starting one if none runs. Past
    /// `server.max_pending` heartbeats on their way, it is applied only if its client is
    /// online: a new client is told when to retry.
    pub(crate) async fn resolve(&self, mut resolve: Resolve) -> Result<Resolved, BeatError> {
        let pending = Pending::count(&self.inner.pending);
        if pending.0 > self.inner.max_pending {
            resolve.shed = Some(retry_after(pending.0, self.inner.max_pending));
        }
        match self.call(resolve, true).await? {
            Some(resolved) => resolved,
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
