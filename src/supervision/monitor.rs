//! The monitor: one actor per online client, owning its watchdog.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, SpawnHandle, WeakAddr};

use super::client_record::{Applied, ClientRecord, Removed};
use super::registry::{Expired, Registry};
use crate::clock;

/// A heartbeat for this monitor's client. Answered once the record is updated and the
/// watchdog pushed back, or with [`Removed`] if the client went offline meanwhile (the caller
/// then goes through the registry, which creates a fresh monitor).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<BeatAck, Removed>")]
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

/// The registry applied a heartbeat to the record: re-arm the watchdog for it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Rearm(pub Applied);

/// The registry removed this client: stop.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Stop;

/// Watches one client. Its watchdog is a `run_later` timer, cancelled and re-armed on every
/// heartbeat, so an idle server has exactly one pending timer per client and no wake-ups until
/// one is due.
///
/// A monitor never decides alone that its client is offline: when its watchdog fires it sends
/// [`Expired`] to the registry, which removes the client only if no heartbeat arrived since
/// (see [`ClientRecord::expire`]), publishes `offline` and stops the monitor.
pub struct Monitor {
    record: Arc<ClientRecord>,
    /// Weak: a strong `Addr` costs an allocation per clone (actix's sender task), and it is
    /// needed only at expiry. A registry outlives its monitors (it never stops while it maps
    /// a client), so the upgrade fails only after `Close`, when expiry no longer matters.
    registry: WeakAddr<Registry>,
    watchdog: Option<SpawnHandle>,
    /// The record generation the watchdog is armed for. Re-arms for an older generation
    /// (a registry-applied heartbeat overtaken by a direct one) are ignored, and a timer
    /// cancelled in the same poll in which it expired (actix#284) finds the generation moved on.
    armed: u64,
}

impl Monitor {
    /// A monitor for a client whose first heartbeat is already in `record`.
    pub(crate) fn new(record: Arc<ClientRecord>, registry: WeakAddr<Registry>) -> Self {
        Self {
            record,
            registry,
            watchdog: None,
            armed: 0,
        }
    }

    fn arm(&mut self, applied: Applied, ctx: &mut Context<Self>) {
        if applied.generation < self.armed {
            return;
        }
        if let Some(handle) = self.watchdog.take() {
            ctx.cancel_future(handle);
        }
        self.armed = applied.generation;
        let generation = applied.generation;
        self.watchdog = Some(ctx.run_later(applied.timeout, move |act, ctx| {
            if act.armed != generation {
                return;
            }
            act.watchdog = None;
            let Some(registry) = act.registry.upgrade() else {
                return;
            };
            registry.do_send(Expired {
                proj: act.record.proj().clone(),
                monitor: ctx.address(),
                generation,
                at: clock::wall_now(),
            });
        }));
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let current = self.record.current();
        self.arm(current, ctx);
    }
}

impl Handler<Beat> for Monitor {
    type Result = Result<BeatAck, Removed>;

    fn handle(&mut self, beat: Beat, ctx: &mut Context<Self>) -> Self::Result {
        let applied = self
            .record
            .beat(beat.addr, beat.timeout, clock::wall_now())?;
        self.arm(applied, ctx);
        Ok(BeatAck {
            timeout: applied.timeout,
        })
    }
}

impl Handler<Rearm> for Monitor {
    type Result = ();

    fn handle(&mut self, Rearm(applied): Rearm, ctx: &mut Context<Self>) {
        self.arm(applied, ctx);
    }
}

impl Handler<Stop> for Monitor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
