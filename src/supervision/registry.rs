//! The registry: which clients are online, by `proj`, and the one place that decides and
//! announces their transitions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::{
    Actor, ActorContext, Addr, ArbiterHandle, AsyncContext, Context, Handler, Message,
    MessageResult,
};

use super::client_record::{ClientInfo, ClientRecord};
use super::monitor::{Monitor, Rearm, Stop};
use crate::clock;
use crate::events::{Event, EventBus, OfflineReason};
use crate::metrics::Metrics;
use crate::protocol::Proj;
use crate::storage::{Journal, RecoveredClient};

/// How long an empty registry lingers before it stops. Stopping the instant the last client
/// leaves would make a proj that churns online/offline from many connections restart the
/// registry on every offline, and each restart bounces the requests queued at that moment
/// (they are retried, but a request could bounce again and again). After a second of
/// emptiness nothing is queued in practice, and an idle server still holds no registry.
pub const IDLE_STOP_AFTER: Duration = Duration::from_secs(1);

/// Apply a heartbeat to `proj` through the registry: to its record if it is online (its
/// monitor re-arms), else by creating its monitor (the client comes online). Fails only when
/// a new client would exceed `server.max_clients`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Resolved, Full>")]
pub struct Resolve {
    /// The client.
    pub proj: Proj,
    /// Where its heartbeat came from.
    pub addr: SocketAddr,
    /// Its requested timeout (clamped), or `None` to keep its current one.
    pub timeout: Option<Duration>,
    /// Where a new monitor runs: the caller's arbiter, so that the caller's later heartbeats
    /// stay on one thread.
    pub home: ArbiterHandle,
}

/// The heartbeat took effect.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The client's monitor: send the next heartbeats straight to it.
    pub monitor: Addr<Monitor>,
    /// The client's effective timeout.
    pub timeout: Duration,
    /// Whether this heartbeat brought the client online.
    pub created: bool,
}

/// The registry holds `max` clients: a new one is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server holds its maximum of {max} online clients")]
pub struct Full {
    /// `server.max_clients`.
    pub max: usize,
}

/// Remove `proj` now (an explicit `offline`). Answers whether it was online.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Remove {
    /// The client.
    pub proj: Proj,
}

/// A monitor's watchdog fired for record generation `generation`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Expired {
    /// The client.
    pub proj: Proj,
    /// The monitor whose watchdog fired.
    pub monitor: Addr<Monitor>,
    /// The record generation the watchdog was armed for.
    pub generation: u64,
    /// When it fired.
    pub at: SystemTime,
}

/// One client's record.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<ClientInfo>")]
pub struct Get {
    /// The client.
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
}

/// Stop every monitor and the registry (server shutdown). No event is published: the
/// clients did not go offline, the server went away.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Close;

/// What a registry needs to create monitors and announce transitions.
#[derive(Clone)]
pub(crate) struct RegistryDeps {
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub default_timeout: Duration,
    pub max_clients: usize,
    /// The durable event log, if on: every published event is appended to it.
    pub journal: Option<Journal>,
}

struct Entry {
    monitor: Addr<Monitor>,
    record: Arc<ClientRecord>,
    /// Recovered from the event log and not heard from since the restart: if its watchdog
    /// fires, the reason is `timeout_after_restart`.
    recovered: bool,
}

/// Maps `proj` to its monitor and record. Started by the first heartbeat of an unknown client;
/// stops itself when its last client leaves (see [`super::RegistryHandle`] for the lazy
/// restart). Steady-state heartbeats never pass through it: sessions keep their monitor's
/// address.
///
/// Every `online` and `offline` event is published here, in the same handler that changes the
/// map: a subscriber that queries the API after an event sees the state the event announced,
/// and one client's events alternate in order.
pub struct Registry {
    clients: BTreeMap<Proj, Entry>,
    /// Counts the times the map became empty: a pending idle stop checks that it is still
    /// the latest emptiness (no client came and went meanwhile).
    emptied: u64,
    deps: RegistryDeps,
    /// Clients recovered from the event log, given monitors when the registry starts.
    seeds: Vec<RecoveredClient>,
}

impl Registry {
    pub(crate) fn new(deps: RegistryDeps) -> Self {
        Self::seeded(deps, Vec::new())
    }

    /// A registry that starts with the clients recovered from the event log, each with a
    /// fresh watchdog of its own timeout (clamped to the current policy by the caller).
    pub(crate) fn seeded(deps: RegistryDeps, seeds: Vec<RecoveredClient>) -> Self {
        Self {
            clients: BTreeMap::new(),
            emptied: 0,
            deps,
            seeds,
        }
    }

    /// Appends `event` to the event log (if on), then publishes it.
    fn announce(&self, event: Event, timeout: Duration) {
        if let Some(journal) = &self.deps.journal {
            journal.append(&event, timeout);
        }
        self.deps.events.publish(event);
    }

    fn create(&mut self, msg: Resolve, ctx: &mut Context<Self>) -> Resolved {
        let timeout = msg.timeout.unwrap_or(self.deps.default_timeout);
        let record = Arc::new(ClientRecord::new(
            msg.proj.clone(),
            msg.addr,
            timeout,
            clock::wall_now(),
        ));
        let monitor = Self::spawn_monitor(&record, &msg.home, ctx);
        let replaced = self.clients.insert(
            msg.proj.clone(),
            Entry {
                monitor: monitor.clone(),
                record,
                recovered: false,
            },
        );
        match replaced {
            // Cannot happen (a record in the map is never removed), but if it did, the old
            // monitor must not live on and the gauge must not count the client twice.
            Some(old) => old.monitor.do_send(Stop),
            None => self.deps.metrics.client_added(),
        }
        self.announce(
            Event::Online {
                proj: msg.proj,
                addr: msg.addr,
                at: clock::wall_now(),
            },
            timeout,
        );
        Resolved {
            monitor,
            timeout,
            created: true,
        }
    }

    fn spawn_monitor(
        record: &Arc<ClientRecord>,
        home: &ArbiterHandle,
        ctx: &mut Context<Self>,
    ) -> Addr<Monitor> {
        let registry = ctx.address().downgrade();
        let record = record.clone();
        Monitor::start_in_arbiter(home, move |_| Monitor::new(record, registry))
    }

    /// Takes `proj` out of the map (its record is already marked removed), stops its monitor
    /// and announces it.
    fn depart(
        &mut self,
        proj: &Proj,
        reason: OfflineReason,
        at: SystemTime,
        ctx: &mut Context<Self>,
    ) {
        let Some(entry) = self.clients.remove(proj) else {
            return;
        };
        entry.monitor.do_send(Stop);
        let (last_seen, addr) = entry.record.last_seen();
        self.deps.metrics.client_removed();
        self.deps.metrics.offline(reason);
        self.announce(
            Event::Offline {
                proj: proj.clone(),
                reason,
                addr,
                last_seen,
                at,
            },
            Duration::ZERO,
        );
        if self.clients.is_empty() {
            self.emptied += 1;
            let emptied = self.emptied;
            ctx.run_later(IDLE_STOP_AFTER, move |act, ctx| {
                if act.clients.is_empty() && act.emptied == emptied {
                    ctx.stop();
                }
            });
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
            let record = Arc::new(ClientRecord::recovered(
                seed.proj.clone(),
                seed.addr,
                seed.timeout,
                seed.last_seen,
            ));
            let monitor = Self::spawn_monitor(&record, &home, ctx);
            let entry = Entry {
                monitor,
                record,
                recovered: true,
            };
            if self.clients.insert(seed.proj, entry).is_none() {
                self.deps.metrics.client_added();
            }
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.deps.metrics.registry_running(false);
        log::debug!("registry stopped");
    }
}

impl Handler<Resolve> for Registry {
    type Result = Result<Resolved, Full>;

    fn handle(&mut self, msg: Resolve, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(entry) = self.clients.get_mut(&msg.proj) {
            if entry.recovered {
                // Back after the restart, without a second `online`. Its monitor moves to
                // the caller's arbiter, where its later heartbeats arrive.
                entry.recovered = false;
                let old = std::mem::replace(
                    &mut entry.monitor,
                    Self::spawn_monitor(&entry.record, &msg.home, ctx),
                );
                old.do_send(Stop);
            } else if !entry.monitor.connected() {
                // Its monitor died with its arbiter (an embedding application stopped it):
                // the client is still online, give it a new watchdog.
                entry.monitor = Self::spawn_monitor(&entry.record, &msg.home, ctx);
            }
            // Online: apply the heartbeat here, so it cannot race with the monitor's removal,
            // and let the monitor re-arm for it. A record in the map is never removed.
            if let Ok(applied) = entry.record.beat(msg.addr, msg.timeout, clock::wall_now()) {
                entry.monitor.do_send(Rearm(applied));
                return Ok(Resolved {
                    monitor: entry.monitor.clone(),
                    timeout: applied.timeout,
                    created: false,
                });
            }
        }
        if self.clients.len() >= self.deps.max_clients {
            return Err(Full {
                max: self.deps.max_clients,
            });
        }
        Ok(self.create(msg, ctx))
    }
}

impl Handler<Remove> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: Remove, ctx: &mut Context<Self>) -> bool {
        let Some(entry) = self.clients.get(&msg.proj) else {
            return false;
        };
        // From here on, a heartbeat that reaches the monitor is refused and goes on to create
        // a new monitor, whose `online` follows this `offline`.
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
        if entry.monitor != msg.monitor || !entry.record.expire(msg.generation) {
            // A heartbeat arrived after the watchdog fired: the monitor re-arms for it.
            return;
        }
        let reason = if entry.recovered {
            OfflineReason::TimeoutAfterRestart
        } else {
            OfflineReason::Timeout
        };
        self.depart(&msg.proj, reason, msg.at, ctx);
    }
}

impl Handler<Get> for Registry {
    type Result = Option<ClientInfo>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        self.clients.get(&msg.proj).map(|e| e.record.snapshot())
    }
}

impl Handler<List> for Registry {
    type Result = MessageResult<List>;

    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        let lower = match &msg.after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let page = self
            .clients
            .range::<Proj, _>((lower, Bound::Unbounded))
            .take(msg.limit.unwrap_or(usize::MAX))
            .map(|(_, e)| e.record.snapshot())
            .collect();
        MessageResult(page)
    }
}

impl Handler<Close> for Registry {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        if let Some(journal) = &self.deps.journal {
            // The exact state at the stop, last heartbeats included, for the next start.
            let clients = self
                .clients
                .values()
                .map(|e| {
                    let info = e.record.snapshot();
                    RecoveredClient {
                        proj: info.proj,
                        addr: info.addr,
                        last_seen: info.last_seen,
                        timeout: Duration::from_millis(info.timeout_ms),
                    }
                })
                .collect();
            journal.snapshot(clients);
        }
        for (_, entry) in std::mem::take(&mut self.clients) {
            entry.record.remove();
            entry.monitor.do_send(Stop);
            self.deps.metrics.client_removed();
        }
        ctx.stop();
    }
}
