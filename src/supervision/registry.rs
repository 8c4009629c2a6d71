//! The registry: which clients are online, by `proj`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, ArbiterHandle, AsyncContext, Context, Handler,
    Message, MessageResult, ResponseActFuture, WrapFuture,
};

use super::client_record::{ClientInfo, ClientRecord};
use super::monitor::{Leave, Monitor};
use crate::clock;
use crate::events::{EventBus, OfflineReason};
use crate::metrics::Metrics;
use crate::protocol::Proj;

/// Find the monitor of `proj`, creating it (the client comes online) if there is none.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Resolved")]
pub struct Resolve {
    /// The client.
    pub proj: Proj,
    /// Where its heartbeat came from.
    pub addr: SocketAddr,
    /// Its requested timeout (clamped), or `None` for the default.
    pub timeout: Option<Duration>,
    /// A monitor the caller found stopped: if the registry still maps `proj` to it, it is
    /// replaced at once instead of waiting for its `Departed`.
    pub stale: Option<Addr<Monitor>>,
    /// Where a new monitor runs: the caller's arbiter, so that the caller's later heartbeats
    /// stay on one thread.
    pub home: ArbiterHandle,
}

/// The answer to [`Resolve`].
#[derive(Debug, Clone)]
pub enum Resolved {
    /// A new monitor was created from this heartbeat, which has taken effect.
    Created {
        /// The new monitor.
        monitor: Addr<Monitor>,
        /// The client's effective timeout.
        timeout: Duration,
    },
    /// The client was online: send it the heartbeat.
    Existing(Addr<Monitor>),
}

/// Remove `proj` now (an explicit `offline`). Answers whether it was online.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Remove {
    /// The client.
    pub proj: Proj,
}

/// A monitor has stopped; forget it if it is still the one mapped to `proj`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Departed {
    /// The client.
    pub proj: Proj,
    /// The monitor that stopped.
    pub monitor: Addr<Monitor>,
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

/// What a registry needs to create monitors.
#[derive(Clone)]
pub(crate) struct RegistryDeps {
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub default_timeout: Duration,
}

struct Entry {
    monitor: Addr<Monitor>,
    record: Arc<ClientRecord>,
}

/// Maps `proj` to its monitor. Started by the first heartbeat of an unknown client; stops
/// itself when its last client leaves (see [`super::RegistryHandle`] for the lazy restart).
/// Steady-state heartbeats never pass through it: sessions keep their monitor's address.
pub struct Registry {
    clients: BTreeMap<Proj, Entry>,
    /// `Remove`s waiting for their monitor to leave. The registry does not stop under them:
    /// stopping would drop their reply and make an offline look like it failed.
    removing: usize,
    deps: RegistryDeps,
}

impl Registry {
    pub(crate) fn new(deps: RegistryDeps) -> Self {
        Self {
            clients: BTreeMap::new(),
            removing: 0,
            deps,
        }
    }

    fn forget(&mut self, proj: &Proj, monitor: &Addr<Monitor>, ctx: &mut Context<Self>) {
        if self
            .clients
            .get(proj)
            .is_some_and(|e| e.monitor == *monitor)
        {
            self.clients.remove(proj);
            self.deps.metrics.client_removed();
        }
        self.stop_if_idle(ctx);
    }

    /// Stops when no client is online and no removal is in flight; the next heartbeat starts
    /// a fresh registry through the handle.
    fn stop_if_idle(&mut self, ctx: &mut Context<Self>) {
        if self.clients.is_empty() && self.removing == 0 {
            ctx.stop();
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.deps.metrics.registry_running(true);
        log::debug!("registry started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.deps.metrics.registry_running(false);
        log::debug!("registry stopped");
    }
}

impl Handler<Resolve> for Registry {
    type Result = MessageResult<Resolve>;

    fn handle(&mut self, msg: Resolve, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(entry) = self.clients.get(&msg.proj) {
            let stale = msg.stale.as_ref() == Some(&entry.monitor) || !entry.monitor.connected();
            if !stale {
                return MessageResult(Resolved::Existing(entry.monitor.clone()));
            }
            self.clients.remove(&msg.proj);
            self.deps.metrics.client_removed();
        }
        let timeout = msg.timeout.unwrap_or(self.deps.default_timeout);
        let record = Arc::new(ClientRecord::new(
            msg.proj.clone(),
            msg.addr,
            timeout,
            clock::wall_now(),
        ));
        let registry = ctx.address();
        let deps = self.deps.clone();
        let monitor_record = record.clone();
        let monitor = Monitor::start_in_arbiter(&msg.home, move |_| {
            Monitor::new(monitor_record, timeout, registry, deps.events, deps.metrics)
        });
        self.clients.insert(
            msg.proj,
            Entry {
                monitor: monitor.clone(),
                record,
            },
        );
        self.deps.metrics.client_added();
        MessageResult(Resolved::Created { monitor, timeout })
    }
}

impl Handler<Remove> for Registry {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, msg: Remove, _: &mut Context<Self>) -> Self::Result {
        let Some(entry) = self.clients.get(&msg.proj) else {
            return Box::pin(actix::fut::ready(false));
        };
        let monitor = entry.monitor.clone();
        // The monitor publishes `offline` itself, so that a client's events stay in order even
        // if it beats again right away: its next monitor is created only after this one is
        // forgotten, below, or found stopped by the session.
        let leave = monitor.send(Leave {
            reason: OfflineReason::Offline,
        });
        self.removing += 1;
        Box::pin(leave.into_actor(self).map(move |_, act, ctx| {
            act.removing -= 1;
            act.forget(&msg.proj, &monitor, ctx);
            true
        }))
    }
}

impl Handler<Departed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Departed, ctx: &mut Context<Self>) {
        self.forget(&msg.proj, &msg.monitor, ctx);
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
