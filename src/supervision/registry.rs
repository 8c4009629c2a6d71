//! The registry: which clients are online, by `proj`, and the one place that decides and
//! announces their transitions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::{
    Actor, ActorContext, Addr, ArbiterHandle, AsyncContext, Context, Handler, Message,
    MessageResult, SpawnHandle, WeakAddr,
};

use super::client::{Client, Depart, Rearm};
use super::client_record::{ClientInfo, ClientRecord, Pulse};
use super::detector::Detection;
use super::heartbeats::BeatError;
use super::pauses::PauseBook;
use super::states::{ClientState, StateCounts};
use crate::clock;
use crate::cluster::{Claim, Cluster};
use crate::events::{ClientTimeout, Event, OfflineReason, Pipeline};
use crate::metrics::Metrics;
use crate::protocol::Proj;
use crate::storage::RecoveredClient;

/// How long an empty registry lingers before it stops. Stopping the instant the last client
/// leaves would make a proj that churns online/offline from many connections restart the
/// registry on every offline, and each restart bounces the requests queued at that moment
/// (they are retried, but a request could bounce again and again). After a second of
/// emptiness nothing is queued in practice, and an idle server still holds no registry.
pub(crate) const IDLE_STOP_AFTER: Duration = Duration::from_secs(1);

/// Apply a heartbeat to `proj` through the registry: to its record if it is online (its
/// actor re-arms), else by bringing it online (a new actor, or `host`). Fails only when a new
/// client would exceed `server.max_clients`, or with `shed` (the registry is overloaded).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Resolved, BeatError>")]
pub(crate) struct Resolve {
    pub proj: Proj,
    /// Where its heartbeat came from.
    pub addr: SocketAddr,
    /// Its requested timeout (clamped), or `None` to keep its current one.
    pub timeout: Option<Duration>,
    /// Where a new actor runs: the caller's arbiter, so that the caller's connection can be
    /// handed to it and its later heartbeats stay on one thread.
    pub home: ArbiterHandle,
    /// An actor that hosts the caller's connection and offers to be this client's actor if
    /// the client is not online (its own client, back after going offline).
    pub host: Option<Addr<Client>>,
    /// Set when too many heartbeats wait for the registry: applied only if the client is
    /// online; a new client is refused with this retry delay.
    pub shed: Option<Duration>,
}

/// The heartbeat took effect.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The client's actor.
    pub client: Addr<Client>,
    /// The client's effective timeout.
    pub timeout: Duration,
    /// Whether this heartbeat brought the client online.
    pub created: bool,
    /// Set when the `host` became the client's actor.
    pub adopted: Option<Adopted>,
    /// The time since the client's previous heartbeat (for the interval metric).
    pub interval: Option<Duration>,
}

/// What an actor needs to become a client's watchdog.
#[derive(Debug, Clone)]
pub(crate) struct Adopted {
    pub record: Arc<ClientRecord>,
    pub registry: WeakAddr<Registry>,
}

/// The registry holds `max` clients: a new one is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server holds its maximum of {max} online clients")]
pub struct Full {
    /// `server.max_clients`.
    pub max: usize,
}

/// Move `proj` from its actor `from`, which has no connection, to a new actor on `home`,
/// where a connection of the client waits to be handed to it. Answers the new actor, or
/// `None` if `from` is no longer the client's actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<Addr<Client>>")]
pub(crate) struct Relocate {
    pub proj: Proj,
    pub from: Addr<Client>,
    pub home: ArbiterHandle,
}

/// Remove `proj` now (an explicit `offline`). Answers whether it was online.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub(crate) struct Remove {
    pub proj: Proj,
}

/// A client actor's watchdog fired for record generation `generation`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Expired {
    pub proj: Proj,
    /// The record the watchdog watched: it names the actor's incarnation (each actor of a
    /// client has its own record).
    pub record: Arc<ClientRecord>,
    /// The record generation the watchdog was armed for.
    pub generation: u64,
    /// When it fired.
    pub at: SystemTime,
}

/// A client actor's watchdog reached its client's `late` moment for record generation
/// `generation` (handled in `registry/verdicts.rs`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Late {
    pub proj: Proj,
    pub record: Arc<ClientRecord>,
    pub generation: u64,
    pub at: SystemTime,
}

/// A heartbeat a client's actor applied ended its client's `late` (handled in
/// `registry/verdicts.rs`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Recovered {
    pub proj: Proj,
    pub record: Arc<ClientRecord>,
    pub addr: SocketAddr,
    pub at: SystemTime,
}

/// A client's actor was dropped while it watched the client (its arbiter was stopped).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Lost {
    pub proj: Proj,
    pub record: Arc<ClientRecord>,
}

/// One client's record.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<ClientInfo>")]
pub(crate) struct Get {
    pub proj: Proj,
}

/// A page of clients in `proj` order.
#[derive(Debug, Clone, Default, Message)]
#[rtype(result = "Vec<ClientInfo>")]
pub struct List {
    /// Start after this `proj` (exclusive), for paging.
    pub after: Option<Proj>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Only clients in this state (before paging, so that a page is full).
    pub state: Option<ClientState>,
}

/// How many clients are in each state now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "StateCounts")]
pub(crate) struct CountStates;

/// Forget every client and stop (server shutdown); answers the clients online, with their
/// exact last heartbeat, for the event log. No event is published: the clients did not go
/// offline, the server went away.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<RecoveredClient>")]
pub(crate) struct Close;

/// What a registry needs to create actors and announce transitions.
#[derive(Clone)]
pub(crate) struct RegistryDeps {
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    pub default_timeout: Duration,
    pub max_clients: usize,
    /// Cluster mode: every transition carries its claim's token (see `src/cluster/`).
    pub cluster: Option<Cluster>,
    /// How silent clients are judged.
    pub detection: Arc<Detection>,
    /// The pauses in force (shared: windows outlast a registry that stops when empty).
    pub pauses: Arc<Mutex<PauseBook>>,
}

pub(crate) struct Entry {
    /// Weak: a strong address costs an allocation per client, and the actor does not need
    /// one to live (it keeps itself running while it watches).
    client: WeakAddr<Client>,
    pub(crate) record: Arc<ClientRecord>,
    /// Recovered from the event log and not heard from since the restart: if its watchdog
    /// fires, the reason is `timeout_after_restart`.
    recovered: bool,
    /// Cluster mode: the claim this node holds the client under.
    pub(crate) claim: Option<Claim>,
}

impl Entry {
    /// Tells the actor it is no longer this client's watchdog.
    fn depart(self) {
        if let Some(client) = self.client.upgrade() {
            client.do_send(Depart {
                record: self.record,
            });
        }
    }
}

/// Maps `proj` to its actor and record, and decides every transition. Started by the first
/// heartbeat of an unknown client; stops itself when its last client leaves (see
/// [`super::RegistryHandle`] for the lazy restart). Steady-state heartbeats never pass through
/// it: each client's actor applies them.
///
/// Every transition is published here, through the pipeline of sinks, in the same handler
/// that changes the map: a sink sees the state the event announced, and one client's events
/// alternate in order.
pub struct Registry {
    clients: BTreeMap<Proj, Entry>,
    /// Counts the times the map became empty: a pending idle stop checks that it is still
    /// the latest emptiness (no client came and went meanwhile).
    emptied: u64,
    deps: RegistryDeps,
    /// Clients recovered from the event log, given actors when the registry starts.
    seeds: Vec<RecoveredClient>,
    /// The timer of the next end of a pause.
    pause_timer: Option<SpawnHandle>,
}

mod pauses;
mod verdicts;

pub use pauses::PauseError;
pub(crate) use pauses::{Pause, Resume, Target};

impl Registry {
    pub(crate) fn new(deps: RegistryDeps, seeds: Vec<RecoveredClient>) -> Self {
        Self {
            clients: BTreeMap::new(),
            emptied: 0,
            deps,
            seeds,
            pause_timer: None,
        }
    }

    pub(crate) fn spawn(
        &self,
        record: &Arc<ClientRecord>,
        home: &ArbiterHandle,
        ctx: &mut Context<Self>,
    ) -> Addr<Client> {
        let detection = self.deps.detection.clone();
        Client::start(record.clone(), ctx.address().downgrade(), detection, home)
    }

    /// How silent clients are judged (cluster hooks: an adopted client's record).
    pub(crate) fn detection(&self) -> &Arc<Detection> {
        &self.deps.detection
    }

    pub(crate) fn insert(&mut self, proj: Proj, entry: Entry) {
        match self.clients.insert(proj, entry) {
            // Cannot happen (the callers check), but if it did, the old actor must not watch
            // on and the gauge must not count the client twice.
            Some(old) => old.depart(),
            None => self.deps.metrics.client_added(),
        }
    }

    fn create(&mut self, msg: Resolve, ctx: &mut Context<Self>) -> Resolved {
        let pulse = Pulse::now(msg.addr, msg.timeout);
        let record = Arc::new(ClientRecord::new(
            msg.proj.clone(),
            pulse,
            self.deps.default_timeout,
            &self.deps.detection,
        ));
        let (client, adopted) = match msg.host {
            Some(host) => {
                let adopted = Adopted {
                    record: record.clone(),
                    registry: ctx.address().downgrade(),
                };
                (host, Some(adopted))
            }
            None => (self.spawn(&record, &msg.home, ctx), None),
        };
        let timeout = record.timeout();
        let claim = self.deps.cluster.as_ref().map(|_| Claim::new());
        let stamp = crate::cluster::stamp(self.deps.cluster.as_ref(), claim.as_ref());
        self.insert(
            msg.proj.clone(),
            Entry {
                client: client.downgrade(),
                record: record.clone(),
                recovered: false,
                claim,
            },
        );
        self.deps.pipeline.publish_stamped(
            Event::Online {
                proj: msg.proj.clone(),
                addr: msg.addr,
                at: pulse.wall,
                recovered: false,
                outage: None,
            },
            Some(timeout),
            stamp,
        );
        // Inside a maintenance window: paused at once.
        self.paused_on_arrival(&msg.proj, &record);
        Resolved {
            client,
            timeout: timeout.timeout,
            created: true,
            adopted,
            interval: None,
        }
    }

    /// Takes `proj` out of the map (its record is already marked removed), tells its actor
    /// and announces it, with the evidence of the verdict.
    fn depart(
        &mut self,
        proj: &Proj,
        reason: OfflineReason,
        at: SystemTime,
        ctx: &mut Context<Self>,
    ) {
        let (evidence, intervals) = match self.clients.get(proj) {
            Some(entry) => (
                entry.record.evidence(clock::now(), &self.deps.detection),
                entry.record.intervals(),
            ),
            None => return,
        };
        let Some((last_seen, addr, claim)) = self.take_out(proj, ctx) else {
            return;
        };
        self.forget_pause(proj);
        self.deps.metrics.offline(reason);
        let stamp = crate::cluster::stamp(self.deps.cluster.as_ref(), claim.as_ref());
        self.deps.pipeline.publish_offline(
            Event::Offline {
                proj: proj.clone(),
                reason,
                addr,
                last_seen,
                at,
                evidence: Some(evidence),
                outage: None,
            },
            intervals,
            stamp,
        );
    }

    /// Takes `proj` out of the map (its record is already marked removed) and tells its
    /// actor, without announcing anything (a departure, or a client that moved to another
    /// cluster node). Answers its last heartbeat, where it came from, and its claim.
    pub(crate) fn take_out(
        &mut self,
        proj: &Proj,
        ctx: &mut Context<Self>,
    ) -> Option<(SystemTime, SocketAddr, Option<Claim>)> {
        let mut entry = self.clients.remove(proj)?;
        let (last_seen, addr) = entry.record.last_seen();
        let claim = entry.claim.take();
        entry.depart();
        self.deps.metrics.client_removed();
        if self.clients.is_empty() {
            self.emptied += 1;
            let emptied = self.emptied;
            ctx.run_later(IDLE_STOP_AFTER, move |act, ctx| {
                if act.clients.is_empty() && act.emptied == emptied {
                    ctx.stop();
                }
            });
        }
        Some((last_seen, addr, claim))
    }

    /// The client's entry (cluster hooks).
    pub(crate) fn entry(&self, proj: &Proj) -> Option<&Entry> {
        self.clients.get(proj)
    }

    /// Every entry, mutably (cluster hooks: checkpoints).
    pub(crate) fn entries_mut(&mut self) -> impl Iterator<Item = (&Proj, &mut Entry)> {
        self.clients.iter_mut()
    }

    /// The cluster handle, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.deps.cluster.as_ref()
    }

    /// Every client with its claim and exact last heartbeat (cluster hooks: a clean leave).
    pub(crate) fn claims(&self) -> Vec<(Proj, &Claim, SystemTime)> {
        self.clients
            .iter()
            .filter_map(|(proj, e)| Some((proj.clone(), e.claim.as_ref()?, e.record.last_seen().0)))
            .collect()
    }

    /// A new entry for a client this node took over from a lost cluster node.
    pub(crate) fn adopted_entry(
        client: Addr<Client>,
        record: Arc<ClientRecord>,
        claim: Claim,
    ) -> Entry {
        Entry {
            client: client.downgrade(),
            record,
            recovered: false,
            claim: Some(claim),
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.deps.metrics.registry_running(true);
        log::debug!("registry started");
        let home = actix::Arbiter::current();
        for seed in std::mem::take(&mut self.seeds) {
            let timeout = ClientTimeout {
                timeout: seed.timeout,
                requested: seed.timeout_requested,
            };
            let record = Arc::new(ClientRecord::recovered(
                seed.proj.clone(),
                seed.addr,
                timeout,
                seed.last_seen,
                &self.deps.detection,
            ));
            let client = self.spawn(&record, &home, ctx);
            let entry = Entry {
                client: client.downgrade(),
                record,
                recovered: true,
                claim: None,
            };
            self.insert(seed.proj, entry);
        }
        self.restore_pauses(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.deps.metrics.registry_running(false);
        log::debug!("registry stopped");
    }
}

impl Handler<Resolve> for Registry {
    type Result = Result<Resolved, BeatError>;

    fn handle(&mut self, msg: Resolve, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(entry) = self.clients.get_mut(&msg.proj) {
            // Online: apply the heartbeat here, so it cannot race with its removal, and let
            // the actor re-arm for it. A record in the map is never removed.
            let pulse = Pulse::now(msg.addr, msg.timeout);
            if let Ok(applied) = entry.record.beat(pulse, &self.deps.detection) {
                entry.recovered = false;
                let client = match entry.client.upgrade() {
                    Some(client) => client,
                    // Its actor is gone and its `Lost` not handled yet: watch it again now.
                    None => {
                        let detection = self.deps.detection.clone();
                        let home = &msg.home;
                        let client = Client::start(
                            entry.record.clone(),
                            ctx.address().downgrade(),
                            detection,
                            home,
                        );
                        entry.client = client.downgrade();
                        client
                    }
                };
                client.do_send(Rearm {
                    record: entry.record.clone(),
                    applied,
                });
                if entry.claim.as_ref().is_some_and(Claim::is_detached) {
                    // A client taken over from a lost node beats here: claim it for real,
                    // which lifts its capped deadline in the cluster (no event).
                    let claim = Claim::new();
                    let stamp = crate::cluster::stamp(self.deps.cluster.as_ref(), Some(&claim));
                    entry.claim = Some(claim);
                    let timeout = entry.record.timeout();
                    self.deps.pipeline.publish_stamped(
                        Event::Online {
                            proj: msg.proj.clone(),
                            addr: msg.addr,
                            at: pulse.wall,
                            recovered: false,
                            outage: None,
                        },
                        Some(timeout),
                        stamp,
                    );
                }
                if applied.recovered {
                    let record = entry.record.clone();
                    self.announce_recovered(&msg.proj, &record, msg.addr, pulse.wall);
                }
                return Ok(Resolved {
                    client,
                    timeout: applied.timeout,
                    created: false,
                    adopted: None,
                    interval: applied.interval,
                });
            }
        }
        if let Some(retry_after) = msg.shed {
            return Err(BeatError::Overloaded { retry_after });
        }
        if self.clients.len() >= self.deps.max_clients && !self.clients.contains_key(&msg.proj) {
            return Err(Full {
                max: self.deps.max_clients,
            }
            .into());
        }
        Ok(self.create(msg, ctx))
    }
}

impl Handler<Relocate> for Registry {
    type Result = Option<Addr<Client>>;

    fn handle(&mut self, msg: Relocate, ctx: &mut Context<Self>) -> Self::Result {
        let entry = self.clients.get_mut(&msg.proj)?;
        if entry.client.upgrade().as_ref() != Some(&msg.from) {
            return None;
        }
        let record = Arc::new(entry.record.relocate()?);
        let detection = self.deps.detection.clone();
        let client = Client::start(
            record.clone(),
            ctx.address().downgrade(),
            detection,
            &msg.home,
        );
        let claim = entry.claim.take();
        let old = std::mem::replace(
            entry,
            Entry {
                client: client.downgrade(),
                record,
                recovered: entry.recovered,
                claim,
            },
        );
        old.depart();
        Some(client)
    }
}

impl Handler<Remove> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: Remove, ctx: &mut Context<Self>) -> bool {
        let Some(entry) = self.clients.get(&msg.proj) else {
            if let Some(cluster) = &self.deps.cluster {
                crate::cluster::goodbye(cluster, &self.deps.pipeline, msg.proj);
            }
            return false;
        };
        // From here on, a heartbeat that reaches the actor is refused and goes through the
        // registry, which brings the client online again: its `online` follows this `offline`.
        entry.record.remove();
        self.depart(&msg.proj, OfflineReason::Offline, clock::wall_now(), ctx);
        true
    }
}

impl Handler<Expired> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Expired, ctx: &mut Context<Self>) {
        let Some(entry) = self.clients.get(&msg.proj) else {
            return;
        };
        if !Arc::ptr_eq(&entry.record, &msg.record) || !entry.record.expire(msg.generation) {
            // A heartbeat arrived after the watchdog fired: the actor re-arms for it.
            return;
        }
        let reason = if entry.recovered {
            OfflineReason::TimeoutAfterRestart
        } else {
            OfflineReason::Timeout
        };
        let due = entry.record.current(&self.deps.detection).deadline;
        self.deps
            .metrics
            .detection_overshoot(clock::now().saturating_duration_since(due));
        self.depart(&msg.proj, reason, msg.at, ctx);
    }
}

impl Handler<Lost> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Lost, ctx: &mut Context<Self>) {
        let Some(entry) = self.clients.get_mut(&msg.proj) else {
            return;
        };
        if !Arc::ptr_eq(&entry.record, &msg.record) {
            return;
        }
        // Watched again from here, on the registry's own arbiter, until its deadline.
        log::warn!(
            "the watchdog of client {} was lost with its arbiter; watching it again",
            msg.proj
        );
        self.deps.metrics.watchdog_lost();
        let detection = self.deps.detection.clone();
        let home = actix::Arbiter::current();
        entry.client =
            Client::start(msg.record, ctx.address().downgrade(), detection, &home).downgrade();
    }
}

/// A client's state with flapping (which the pipeline's stage knows) applied: flapping wins
/// over late and online, a pause wins over flapping.
fn flapping_state(mut info: ClientInfo, flapping: &dyn Fn(&Proj) -> bool) -> ClientInfo {
    if info.state != ClientState::Paused && flapping(&info.proj) {
        info.state = ClientState::Flapping;
    }
    info
}

impl Handler<Get> for Registry {
    type Result = Option<ClientInfo>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        let record = &self.clients.get(&msg.proj)?.record;
        let mut info = record.snapshot();
        info.intervals = record.intervals();
        Some(
            self.deps
                .pipeline
                .with_flapping(|flapping| flapping_state(info, flapping)),
        )
    }
}

impl Handler<List> for Registry {
    type Result = MessageResult<List>;

    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        let lower = match &msg.after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let page = self.deps.pipeline.with_flapping(|flapping| {
            self.clients
                .range::<Proj, _>((lower, Bound::Unbounded))
                .map(|(_, e)| flapping_state(e.record.snapshot(), flapping))
                .filter(|info| msg.state.is_none_or(|s| info.state == s))
                .take(msg.limit.unwrap_or(usize::MAX))
                .collect()
        });
        MessageResult(page)
    }
}

impl Handler<CountStates> for Registry {
    type Result = MessageResult<CountStates>;

    fn handle(&mut self, _: CountStates, _: &mut Context<Self>) -> Self::Result {
        let mut counts = StateCounts::default();
        self.deps.pipeline.with_flapping(|flapping| {
            for (proj, entry) in &self.clients {
                let state = entry.record.state();
                let state = if state != ClientState::Paused && flapping(proj) {
                    ClientState::Flapping
                } else {
                    state
                };
                counts.add(state);
            }
        });
        MessageResult(counts)
    }
}

impl Handler<Close> for Registry {
    type Result = MessageResult<Close>;

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) -> Self::Result {
        let mut clients = Vec::with_capacity(self.clients.len());
        for (_, entry) in std::mem::take(&mut self.clients) {
            let info = entry.record.snapshot();
            let timeout = entry.record.timeout();
            clients.push(RecoveredClient {
                proj: info.proj,
                addr: info.addr,
                last_seen: info.last_seen,
                timeout: timeout.timeout,
                timeout_requested: timeout.requested,
            });
            // Its actor stops watching (a removed record is not watched) and is dropped with
            // its arbiter: the server is stopping.
            entry.record.remove();
            self.deps.metrics.client_removed();
        }
        ctx.stop();
        MessageResult(clients)
    }
}
