//! The monitor: one actor per online client, owning its watchdog.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, SpawnHandle};

use super::client_record::ClientRecord;
use super::registry::{Departed, Registry};
use crate::clock;
use crate::events::{Event, EventBus, OfflineReason};
use crate::metrics::Metrics;

/// A heartbeat for this monitor's client. Answered once the record is updated and the
/// watchdog pushed back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "BeatAck")]
pub struct Beat {
    /// Where it came from.
    pub addr: SocketAddr,
    /// A new timeout (already clamped), or `None` to keep the current one.
    pub timeout: Option<Duration>,
}

/// The heartbeat took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatAck {
    /// The client's effective timeout from now on.
    pub timeout: Duration,
}

/// The client leaves now: publish `offline` with this reason and stop.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// Why.
    pub reason: OfflineReason,
}

/// Watches one client. Its watchdog is a `run_later` timer, cancelled and re-armed on every
/// heartbeat, so an idle server has exactly one pending timer per client and no wake-ups until
/// one is due. When it fires the monitor publishes `offline` (reason `timeout`), tells the
/// registry, and stops.
pub struct Monitor {
    record: Arc<ClientRecord>,
    registry: Addr<Registry>,
    events: EventBus,
    metrics: Arc<Metrics>,
    timeout: Duration,
    watchdog: Option<SpawnHandle>,
    /// Incremented on every re-arm. actix can still run a `run_later` callback cancelled in
    /// the same poll in which its timer expired (actix#284): the callback checks that it is
    /// the current generation before it declares anyone offline.
    generation: u64,
    departed: bool,
}

impl Monitor {
    /// A monitor for a client whose first heartbeat is already in `record`.
    pub(crate) fn new(
        record: Arc<ClientRecord>,
        timeout: Duration,
        registry: Addr<Registry>,
        events: EventBus,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            record,
            registry,
            events,
            metrics,
            timeout,
            watchdog: None,
            generation: 0,
            departed: false,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.watchdog.take() {
            ctx.cancel_future(handle);
        }
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        self.watchdog = Some(ctx.run_later(self.timeout, move |act, ctx| {
            if act.generation == generation {
                act.depart(OfflineReason::Timeout, ctx);
            }
        }));
    }

    fn depart(&mut self, reason: OfflineReason, ctx: &mut Context<Self>) {
        if self.departed {
            return;
        }
        self.departed = true;
        let (last_seen, addr) = self.record.last_seen();
        self.metrics.offline(reason);
        self.events.publish(Event::Offline {
            proj: self.record.proj().clone(),
            reason,
            addr,
            last_seen,
            at: clock::wall_now(),
        });
        self.registry.do_send(Departed {
            proj: self.record.proj().clone(),
            monitor: ctx.address(),
        });
        ctx.stop();
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (_, addr) = self.record.last_seen();
        self.events.publish(Event::Online {
            proj: self.record.proj().clone(),
            addr,
            at: clock::wall_now(),
        });
        self.arm(ctx);
    }
}

impl Handler<Beat> for Monitor {
    type Result = actix::MessageResult<Beat>;

    fn handle(&mut self, beat: Beat, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(timeout) = beat.timeout {
            self.timeout = timeout;
        }
        self.record.beat(beat.addr, self.timeout, clock::wall_now());
        self.arm(ctx);
        actix::MessageResult(BeatAck {
            timeout: self.timeout,
        })
    }
}

impl Handler<Leave> for Monitor {
    type Result = ();

    fn handle(&mut self, leave: Leave, ctx: &mut Context<Self>) {
        self.depart(leave.reason, ctx);
    }
}
