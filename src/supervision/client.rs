//! The client actor: one per online client, owning its watchdog and, while the client keeps a
//! connection, that connection's reads and writes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::thread::ThreadId;
use std::time::Duration;

use actix::fut::ActorFuture;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, ArbiterHandle, AsyncContext, Context, Handler,
    Message, Running, SpawnHandle, WeakAddr, WrapFuture,
};

use tokio::sync::oneshot;

use super::client_record::{Applied, ClientRecord, Pulse, Removed};
use super::detector::Detection;
use super::heartbeats::BeatError;
use super::registry::{Adopted, Expired, Late, Lost, Recovered, Registry};
use crate::clock::{self, Instant};
use crate::ingest::tcp::{self, Connection, Step, FRAMES_PER_POLL};
use crate::protocol::{ErrorCode, Proj};

/// A heartbeat for this actor's client, from a connection it does not host. Answered once
/// the record is updated and the watchdog pushed back, or with [`Removed`] if the client went
/// offline or moved to another actor meanwhile (the caller then goes through the registry).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<BeatAck, Removed>")]
pub(crate) struct Beat {
    /// Where it came from.
    pub addr: SocketAddr,
    /// A new timeout (already clamped), or `None` to keep the current one.
    pub timeout: Option<Duration>,
}

/// The heartbeat took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BeatAck {
    /// The client's effective timeout from now on.
    pub timeout: Duration,
    /// Set when this actor has no connection: the thread it runs on, so that a connection on
    /// the same thread can be handed to it.
    pub vacant: Option<ThreadId>,
    /// The time since the client's previous heartbeat (for the interval metric).
    pub interval: Option<Duration>,
}

/// The registry applied a heartbeat to this client's record: re-arm the watchdog for it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Rearm {
    pub record: Arc<ClientRecord>,
    pub applied: Applied,
}

/// The registry removed this actor's client, or moved it to another actor: this actor is no
/// longer its watchdog.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Depart {
    /// The record this concerns: a departure of an earlier incarnation of the client is
    /// ignored by an actor the registry has since made the watchdog again.
    pub record: Arc<ClientRecord>,
}

/// A connection that carries this client's heartbeats, handed over by the task that read
/// its first frames: this actor drives it from now on.
///
/// An actor may stop with this message still in its mailbox (its client left meanwhile), and
/// an actor may decline it: either way the message is dropped with the connection in it, and
/// dropping it gives the connection back to the task that sent it, which goes on serving it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Attach {
    conn: Option<Connection>,
    back: Option<oneshot::Sender<Connection>>,
}

impl Attach {
    /// The message, and where the connection comes back if it is not taken.
    pub(crate) fn new(conn: Connection) -> (Self, oneshot::Receiver<Connection>) {
        let (back, returned) = oneshot::channel();
        let attach = Self {
            conn: Some(conn),
            back: Some(back),
        };
        (attach, returned)
    }
}

impl Drop for Attach {
    fn drop(&mut self) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            // If the sender is gone too, the connection closes.
            let _ = back.send(conn);
        }
    }
}

/// Watches one client. Its watchdog is a `run_later` timer, cancelled and re-armed on every
/// heartbeat, so an idle server has exactly one pending timer per client and no wake-ups until
/// one is due.
///
/// While the client keeps a persistent connection, this actor also drives that connection:
/// a heartbeat is read, applied, re-arms the watchdog and is acked in one actor, with no
/// message. A connection that has sent nothing yet costs no actor (a task reads it), and a
/// client whose connection closed keeps its actor and watchdog.
///
/// An actor never decides alone that its client is offline: when its watchdog fires it sends
/// [`Expired`] to the registry, which removes the client only if no heartbeat arrived since
/// (see [`ClientRecord::expire`]), publishes `offline` and tells the actor ([`Depart`]).
///
/// With late verdicts on, the same timer is first armed for the client's `late` moment; when
/// it fires there, it tells the registry ([`Late`]) and re-arms itself for the rest. A timer
/// that fires much later than it was meant to means the server itself stalled: it defers its
/// verdict (see [`super::detector::StallGuard`]).
pub struct Client {
    proj: Proj,
    /// Weak: a strong `Addr` costs an allocation per clone. The registry that maps this
    /// client outlives it (a registry never stops while it maps a client).
    registry: WeakAddr<Registry>,
    detection: Arc<Detection>,
    /// Set while this actor is its client's watchdog.
    watch: Option<Watch>,
    /// The client's connection, while this actor hosts it.
    conn: Option<Connection>,
    /// A frame's work (the registry, a handler) is in flight: the next frame waits for it, so
    /// that replies stay in order. The actor itself does not wait: its watchdog and its
    /// mailbox keep running meanwhile.
    busy: bool,
    /// The actor was asked to let go of its connection while busy: it does so once the work
    /// in flight has answered its frame.
    releasing: bool,
}

struct Watch {
    record: Arc<ClientRecord>,
    timer: Option<SpawnHandle>,
    /// The record generation the timer is armed for: re-arms for an older generation (a
    /// registry-applied heartbeat overtaken by a direct one) are ignored.
    armed: u64,
    /// The verdict the timer is for and the moment it is meant to fire.
    slot: Armed,
}

/// Which verdict a watchdog timer is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Late,
    Offline,
}

/// The verdict a watchdog timer is armed for and the moment it is meant to fire (in
/// milliseconds after the stall guard's origin), in one word: a timer that fires much later
/// than that shows a stall of the server, and one that fires before it is a stale firing
/// (actix#284) of a timer re-armed in the same poll.
#[derive(Debug, Clone, Copy)]
struct Armed(u64);

impl Armed {
    fn new(verdict: Verdict, due_ms: u64) -> Self {
        Self(due_ms << 1 | u64::from(verdict == Verdict::Late))
    }

    fn verdict(self) -> Verdict {
        if self.0 & 1 == 1 {
            Verdict::Late
        } else {
            Verdict::Offline
        }
    }

    fn due_ms(self) -> u64 {
        self.0 >> 1
    }
}

impl Client {
    /// Starts the actor of a client whose record the registry holds, on `home`.
    ///
    /// If `home` stops before the actor has started, the registry hears of it as it hears of
    /// an actor dropped with its arbiter ([`Lost`]): the client is watched either way.
    pub(crate) fn start(
        record: Arc<ClientRecord>,
        registry: WeakAddr<Registry>,
        detection: Arc<Detection>,
        home: &ArbiterHandle,
    ) -> Addr<Client> {
        let unborn = Unborn(Some((record, registry, detection)));
        Client::start_in_arbiter(home, move |_| unborn.born())
    }

    fn new(
        record: Arc<ClientRecord>,
        registry: WeakAddr<Registry>,
        detection: Arc<Detection>,
    ) -> Self {
        Self {
            proj: record.proj().clone(),
            registry,
            detection,
            watch: Some(Watch {
                record,
                timer: None,
                armed: 0,
                slot: Armed(0),
            }),
            conn: None,
            busy: false,
            releasing: false,
        }
    }

    fn watch_record(&self, record: &Arc<ClientRecord>) -> bool {
        self.watch
            .as_ref()
            .is_some_and(|w| Arc::ptr_eq(&w.record, record))
    }

    fn arm(&mut self, applied: Applied, ctx: &mut Context<Self>) {
        self.arm_at(applied, clock::now(), ctx);
    }

    /// Cancels the watchdog's timer and arms a new one for `applied`'s late moment (if it
    /// has one ahead) or its deadline, `now` being the current time.
    fn arm_at(&mut self, applied: Applied, now: Instant, ctx: &mut Context<Self>) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        if applied.generation < watch.armed {
            return;
        }
        watch.armed = applied.generation;
        let (at, verdict) = match applied.late_at {
            Some(late_at) if late_at > now => (late_at, Verdict::Late),
            _ => (applied.deadline, Verdict::Offline),
        };
        self.schedule(verdict, at, now, ctx);
    }

    /// Arms the watchdog for `verdict` at `at` (at once if that is past), replacing its timer.
    fn schedule(&mut self, verdict: Verdict, at: Instant, now: Instant, ctx: &mut Context<Self>) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        if let Some(timer) = watch.timer.take() {
            ctx.cancel_future(timer);
        }
        let due = at.max(now);
        watch.slot = Armed::new(verdict, self.detection.stall.millis(due));
        // The callback captures nothing, so that re-arming allocates only actix's timer.
        watch.timer = Some(ctx.run_later(due - now, |act, ctx| act.watchdog_fired(ctx)));
    }

    /// The watchdog's timer fired. It may be a timer cancelled in the same poll in which a
    /// heartbeat re-armed the watchdog (actix#284), or one that fired just before a `Rearm`
    /// for a heartbeat the registry applied: then the record's generation, or the moment the
    /// watchdog is armed for, says it is stale, and nothing happens (the newer timer, or the
    /// `Rearm`, takes over). A timer much later than it was meant to be shows that the server
    /// stalled: the verdict waits for the end of the grace period.
    fn watchdog_fired(&mut self, ctx: &mut Context<Self>) {
        let Some(watch) = self.watch.as_mut() else {
            return;
        };
        let current = watch.record.current(&self.detection);
        let due = self.detection.stall.instant(watch.slot.due_ms());
        let now = clock::now();
        if current.generation != watch.armed || now < due {
            return;
        }
        watch.timer = None;
        let verdict = watch.slot.verdict();
        if let Some(until) = self.detection.stall.defer(now, due) {
            // The server stalled: the client's heartbeats may be waiting to be read.
            return self.schedule(verdict, until, now, ctx);
        }
        let record = watch.record.clone();
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let at = clock::wall_now();
        match verdict {
            Verdict::Late => {
                registry.do_send(Late {
                    proj: self.proj.clone(),
                    record,
                    generation: current.generation,
                    at,
                });
                self.schedule(Verdict::Offline, current.deadline, now, ctx);
            }
            Verdict::Offline => registry.do_send(Expired {
                proj: self.proj.clone(),
                record,
                generation: current.generation,
                at,
            }),
        }
    }

    /// A heartbeat this actor applied ended its client's `late`: the registry announces it.
    fn recovered(&self, applied: &Applied, addr: SocketAddr) {
        if !applied.recovered {
            return;
        }
        let (Some(watch), Some(registry)) = (&self.watch, self.registry.upgrade()) else {
            return;
        };
        registry.do_send(Recovered {
            proj: self.proj.clone(),
            record: watch.record.clone(),
            addr,
            at: clock::wall_now(),
        });
    }

    /// This actor is no longer its client's watchdog.
    fn unwatch(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.watch.take().and_then(|w| w.timer) {
            ctx.cancel_future(timer);
        }
    }

    fn adopt(&mut self, adopted: Adopted, ctx: &mut Context<Self>) {
        self.unwatch(ctx);
        let current = adopted.record.current(&self.detection);
        self.registry = adopted.registry;
        self.watch = Some(Watch {
            record: adopted.record,
            timer: None,
            armed: 0,
            slot: Armed(0),
        });
        self.arm(current, ctx);
    }

    /// Hands the connection back to a task (this actor is no longer its client's watchdog),
    /// or stops if there is none.
    fn release(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.releasing = true;
            return;
        }
        if let Some(conn) = self.conn.take() {
            actix::spawn(tcp::serve(conn));
        }
        ctx.stop();
    }

    /// One frame from the hosted connection.
    fn on_frame(&mut self, frame: &[u8], ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match conn.on_frame(frame) {
            Step::Done => {}
            Step::Heartbeat {
                proj,
                seq,
                timeout_ms,
                at,
            } if proj.as_str() == self.proj.as_str() => {
                // The steady state: applied, re-armed and acked here, without a message.
                if let Some(watch) = &self.watch {
                    let applied = conn.services().heartbeats.apply(
                        &watch.record,
                        conn.peer(),
                        timeout_ms,
                        at,
                    );
                    if let Ok(applied) = applied {
                        conn.ack(self.proj.clone(), seq, applied.timeout);
                        let peer = conn.peer();
                        self.arm_at(applied, at, ctx);
                        self.recovered(&applied, peer);
                        return;
                    }
                }
                // Its client went offline (or moved) while the connection stayed: offer this
                // actor to the registry as its watchdog again.
                let host = ctx.address();
                self.deliver(self.proj.clone(), seq, timeout_ms, Some(host), ctx);
            }
            Step::Heartbeat {
                proj,
                seq,
                timeout_ms,
                ..
            } => self.deliver(proj.to_proj(), seq, timeout_ms, None, ctx),
            Step::Offline { proj, seq } => {
                let heartbeats = conn.services().heartbeats.clone();
                let work = async move { tcp::offline(&heartbeats, proj, seq).await };
                self.work(work, ctx, |answer, act, _| {
                    if let Some(conn) = act.conn.as_mut() {
                        conn.answer(answer);
                    }
                });
            }
            Step::Custom(frame, grant) => {
                let work = tcp::custom(conn.services(), frame, grant);
                self.work(work, ctx, |answer, act, _| {
                    if let Some(conn) = act.conn.as_mut() {
                        conn.answer(answer);
                    }
                });
            }
        }
    }

    /// Delivers a heartbeat that this actor cannot apply itself, and acks it when done.
    fn deliver(
        &mut self,
        proj: Proj,
        seq: Option<u64>,
        timeout_ms: Option<u64>,
        host: Option<Addr<Client>>,
        ctx: &mut Context<Self>,
    ) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let heartbeats = conn.services().heartbeats.clone();
        let route = conn.route.take();
        let addr = conn.peer();
        let target = proj.clone();
        let work = async move {
            heartbeats
                .deliver(target, addr, timeout_ms, route, host)
                .await
        };
        self.work(work, ctx, move |(result, route), act, ctx| match result {
            Ok(delivered) => {
                let own = delivered.adopted.is_none() && proj == act.proj;
                if let Some(adopted) = delivered.adopted {
                    act.adopt(adopted, ctx);
                }
                if let Some(conn) = act.conn.as_mut() {
                    conn.route = route;
                    conn.ack(proj, seq, delivered.timeout);
                }
                if own {
                    // The client is this actor's but another actor watches it: this
                    // connection is served like any other, by a task.
                    act.release(ctx);
                }
            }
            Err(e) => {
                if let Some(conn) = act.conn.as_mut() {
                    conn.route = route;
                    conn.refuse(&e);
                }
            }
        });
    }
}

impl Client {
    /// Runs a frame's `work` (a registry round trip, a custom handler), then `done` with its
    /// output, while the actor goes on: the driver stops reading until `done` has run, then a
    /// new one takes over.
    fn work<F, D>(&mut self, work: F, ctx: &mut Context<Self>, done: D)
    where
        F: std::future::Future + 'static,
        D: FnOnce(F::Output, &mut Self, &mut Context<Self>) + 'static,
    {
        self.busy = true;
        ctx.spawn(work.into_actor(self).map(move |output, act, ctx| {
            act.busy = false;
            done(output, act, ctx);
            if act.releasing {
                act.release(ctx);
            } else if act.conn.is_some() {
                ctx.spawn(Driver);
            }
        }));
    }
}

/// The wire code of an undelivered heartbeat.
pub(crate) fn error_code(e: &BeatError) -> ErrorCode {
    match e {
        BeatError::TooManyClients(_) => ErrorCode::TooManyClients,
        BeatError::Unavailable(_) | BeatError::Overloaded { .. } => ErrorCode::Unavailable,
    }
}

/// Drives the hosted connection: reads frames while no frame's work is in flight (a frame
/// that needs the registry or a handler holds the next one back, so replies stay in order and
/// one connection queues at most one frame of work). One runs at a time: it ends when a
/// frame's work starts, and `Client::work` starts the next.
struct Driver;

impl ActorFuture<Client> for Driver {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Client,
        ctx: &mut Context<Client>,
        task: &mut TaskContext<'_>,
    ) -> Poll<()> {
        for _ in 0..FRAMES_PER_POLL {
            if act.busy {
                // A frame's work is in flight; a new driver takes over when it is done.
                return Poll::Ready(());
            }
            let Some(conn) = act.conn.as_mut() else {
                return Poll::Ready(());
            };
            match conn.poll_frame(task) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    // Closed (EOF, error, idle): the client keeps its actor and watchdog.
                    act.conn = None;
                    if act.watch.is_none() {
                        ctx.stop();
                    }
                    return Poll::Ready(());
                }
                Poll::Ready(Some(frame)) => act.on_frame(&frame, ctx),
            }
        }
        task.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Actor for Client {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(watch) = &self.watch {
            let current = watch.record.current(&self.detection);
            self.arm(current, ctx);
        }
    }

    /// An actor keeps running while it watches an online client, even when nothing holds its
    /// address (the registry keeps a weak one) and no timer is pending (its watchdog fired
    /// and the registry has not answered yet).
    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        match &self.watch {
            Some(watch) if !watch.record.is_removed() => Running::Continue,
            _ => Running::Stop,
        }
    }
}

impl Drop for Client {
    /// An actor dropped while it still watches an online client died with its arbiter (an
    /// embedding application stopped the arbiter it was started on): the registry is told,
    /// so that the client is watched again instead of staying online forever.
    fn drop(&mut self) {
        if let Some(watch) = self.watch.take() {
            report_lost(watch.record, &self.registry);
        }
    }
}

/// A client actor not started yet: what its arbiter runs to start it.
struct Unborn(Option<(Arc<ClientRecord>, WeakAddr<Registry>, Arc<Detection>)>);

impl Unborn {
    fn born(mut self) -> Client {
        let (record, registry, detection) = self.0.take().expect("an actor is born once");
        Client::new(record, registry, detection)
    }
}

impl Drop for Unborn {
    /// Its arbiter stopped before starting it.
    fn drop(&mut self) {
        if let Some((record, registry, _)) = self.0.take() {
            report_lost(record, &registry);
        }
    }
}

/// Tells the registry that nobody watches `record`'s client any more, unless it is offline.
fn report_lost(record: Arc<ClientRecord>, registry: &WeakAddr<Registry>) {
    if record.is_removed() {
        return;
    }
    if let Some(registry) = registry.upgrade() {
        registry.do_send(Lost {
            proj: record.proj().clone(),
            record,
        });
    }
}

impl Handler<Beat> for Client {
    type Result = Result<BeatAck, Removed>;

    fn handle(&mut self, beat: Beat, ctx: &mut Context<Self>) -> Self::Result {
        let watch = self.watch.as_ref().ok_or(Removed)?;
        let applied = watch
            .record
            .beat(Pulse::now(beat.addr, beat.timeout), &self.detection)?;
        self.arm(applied, ctx);
        self.recovered(&applied, beat.addr);
        Ok(BeatAck {
            timeout: applied.timeout,
            vacant: self.conn.is_none().then(|| std::thread::current().id()),
            interval: applied.interval,
        })
    }
}

impl Handler<Rearm> for Client {
    type Result = ();

    fn handle(&mut self, rearm: Rearm, ctx: &mut Context<Self>) {
        if self.watch_record(&rearm.record) {
            self.arm(rearm.applied, ctx);
        }
    }
}

impl Handler<Depart> for Client {
    type Result = ();

    fn handle(&mut self, depart: Depart, ctx: &mut Context<Self>) {
        if !self.watch_record(&depart.record) {
            return;
        }
        self.unwatch(ctx);
        self.release(ctx);
    }
}

impl Handler<Attach> for Client {
    type Result = ();

    fn handle(&mut self, mut attach: Attach, ctx: &mut Context<Self>) {
        if self.conn.is_some() || self.watch.is_none() {
            // Another connection got here first (or the client just left): dropping the
            // message gives this one back to its task.
            return;
        }
        self.conn = attach.conn.take();
        ctx.spawn(Driver);
    }
}
