//! The cluster task: the one place that talks to Redis about this node's state.
//!
//! It runs on its own arbiter (thread), so nothing it waits for delays a heartbeat: the
//! registry hands it transitions through a channel ([`Input`]) and goes on. In a loop it
//! publishes the outbox in order, renews this node's liveness every `renew_interval`, watches
//! the peers' counters, declares dead the ones that stopped, takes over their clients, and
//! writes checkpoints. Everything it asks of the local registry goes out as a [`Command`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use super::error::ClusterError;
use super::liveness::PeerWatch;
use super::outbox::{Outbox, Pending};
use super::store::{Adoption, Applied, PublishItem, PublishKind, Renewal, Store};
use super::token::{random_hex, ClaimToken};
use super::transition::{Command, Transition};
use crate::clock::{millis, Instant};
use crate::events::Event;
use crate::protocol::Proj;

/// Transitions published in one script call at most.
const PUBLISH_BATCH: usize = 256;
/// Inputs taken from the channel at once at most, before the loop looks at its timers.
const DRAIN_INPUTS: usize = 4096;
/// Clients taken over in one script call at most.
const ADOPT_BATCH: usize = 500;
/// Script calls one adoption may take in one round at most (a node of 500k clients).
const ADOPT_CALLS: usize = 1000;
/// Checkpoints written in one script call at most.
const CHECKPOINT_BATCH: usize = 1000;
/// Timeouts from which clients are checkpointed (see [`checkpoint_every`]).
pub const CHECKPOINT_MIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Renewal rounds between two reconciliations of this node's ownership with Redis.
const RECONCILE_ROUNDS: u64 = 30;
/// At most one Redis error logged per this period (all are counted).
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// How often the registry should send [`Cluster::checkpoint`](super::Cluster::checkpoint) for
/// a client with this timeout: every quarter of it, from [`CHECKPOINT_MIN_TIMEOUT`] on; never
/// for shorter timeouts (their deadline after a node's death is bounded by the death itself).
/// A checkpoint costs one Redis write, so a client beating every second with a 1-hour timeout
/// costs 4 writes an hour, not 3600.
pub fn checkpoint_every(timeout: Duration) -> Option<Duration> {
    (timeout >= CHECKPOINT_MIN_TIMEOUT).then(|| timeout / 4)
}

/// What the handle sends the task.
pub(crate) enum Input {
    /// Boxed: an event with its evidence is several times the size of the other inputs.
    Transition(Box<Pending>),
    Checkpoint {
        proj: Proj,
        token: ClaimToken,
        seen: SystemTime,
    },
    /// From the control channel: another node claimed `proj` from this one.
    Evicted {
        proj: Proj,
        token: ClaimToken,
    },
    Leave {
        clients: Vec<(Proj, ClaimToken, SystemTime)>,
        done: oneshot::Sender<Result<(), ClusterError>>,
    },
    /// Answer once the outbox is empty.
    Flushed(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// Fixed for the task's life.
pub(crate) struct Settings {
    pub name: String,
    pub info: String,
    pub renew_interval: Duration,
    pub dead_rounds: u32,
    pub max_len: u64,
}

/// Counters of the task's work, readable from any thread.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Events this node added to the stream.
    pub published: AtomicU64,
    /// Transitions that changed nothing because their token was no longer in force.
    pub fenced: AtomicU64,
    /// Claims that lost to a later claim (the client was evicted here).
    pub stale: AtomicU64,
    /// Clients this node took over from lost nodes.
    pub adopted: AtomicU64,
    /// Peers this node declared dead.
    pub declared_dead: AtomicU64,
    /// Times this node found itself declared dead and joined again.
    pub rejoined: AtomicU64,
    /// Redis calls that failed or timed out.
    pub redis_errors: AtomicU64,
}

/// What the handle reads of the task's state.
pub(crate) struct Shared {
    /// The current incarnation.
    pub id: Mutex<String>,
    /// Since when Redis has been failing, if it is (cleared by a successful renewal).
    pub failing_since: Mutex<Option<Instant>>,
    pub registered: AtomicBool,
    pub outbox: AtomicUsize,
    pub stats: ClusterStats,
}

impl Shared {
    pub fn new(id: String) -> Self {
        Self {
            id: Mutex::new(id),
            failing_since: Mutex::new(Some(crate::clock::now())),
            registered: AtomicBool::new(false),
            outbox: AtomicUsize::new(0),
            stats: ClusterStats::default(),
        }
    }
}

/// A client this node supervises, as the task knows it (its mirror of the registry).
struct Owned {
    token: ClaimToken,
    addr: SocketAddr,
    timeout: Duration,
    decided: Instant,
    /// Adopted and not beaten here since.
    detached: bool,
}

pub(crate) struct ClusterTask {
    pub store: Store,
    pub settings: Settings,
    pub shared: Arc<Shared>,
    pub inputs: mpsc::UnboundedReceiver<Input>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub control_id: watch::Sender<String>,
    pub outbox: Outbox,
    id: String,
    registered: bool,
    left: bool,
    owned: HashMap<Proj, Owned>,
    checkpoints: HashMap<Proj, (ClaimToken, SystemTime)>,
    watch: PeerWatch,
    rounds: u64,
    /// An adoption failed: its answer may be lost, compare ownership with Redis.
    must_reconcile: bool,
    last_error_log: Option<Instant>,
}

enum Flow {
    Go,
    Stop(oneshot::Sender<()>),
}

impl ClusterTask {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        settings: Settings,
        shared: Arc<Shared>,
        inputs: mpsc::UnboundedReceiver<Input>,
        commands: mpsc::UnboundedSender<Command>,
        control_id: watch::Sender<String>,
        outbox: Outbox,
    ) -> Self {
        let id = shared.id.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let watch = PeerWatch::new(settings.dead_rounds);
        Self {
            store,
            settings,
            shared,
            inputs,
            commands,
            control_id,
            outbox,
            id,
            registered: false,
            left: false,
            owned: HashMap::new(),
            checkpoints: HashMap::new(),
            watch,
            rounds: 0,
            must_reconcile: false,
            last_error_log: None,
        }
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.settings.renew_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut retry_at: Option<Instant> = None;
        let mut backoff = self.settings.renew_interval / 10;
        let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
        let mut failing = false;
        loop {
            self.shared
                .outbox
                .store(self.outbox.len(), Ordering::Relaxed);
            if self.outbox.is_empty() {
                for waiter in flushed.drain(..) {
                    let _ = waiter.send(());
                }
            }
            let ready = !self.outbox.is_empty()
                && retry_at.is_none()
                && !self.left
                && (self.registered || self.front_is_foreign());
            let retry = retry_at.unwrap_or_else(crate::clock::now);
            tokio::select! {
                input = self.inputs.recv() => {
                    let Some(input) = input else { return };
                    // Take everything already queued too, so that a burst of transitions (a
                    // mass reconnect) is published in large batches, not one call each.
                    let mut next = Some(input);
                    let mut taken = 0;
                    while let Some(input) = next.take() {
                        match input {
                            Input::Flushed(waiter) => flushed.push(waiter),
                            input => if let Flow::Stop(done) = self.handle(input).await {
                                let _ = done.send(());
                                return;
                            },
                        }
                        taken += 1;
                        if taken < DRAIN_INPUTS {
                            next = self.inputs.try_recv().ok();
                        }
                    }
                }
                _ = tick.tick() => self.round().await,
                _ = tokio::time::sleep_until(retry), if retry_at.is_some() => retry_at = None,
                _ = std::future::ready(()), if ready => {
                    // After a failure, a PING first: a claim's age is taken when its batch is
                    // built, so the batch must not then wait in a reconnect (it would look
                    // younger than it is to Redis, and could win against a later claim).
                    let probe = if failing { self.store.ping().await } else { Ok(()) };
                    match probe {
                        Ok(()) => {}
                        Err(e) => {
                            self.failed(&e);
                            retry_at = Some(crate::clock::now() + backoff);
                            backoff = (backoff * 2).min(self.settings.renew_interval);
                            continue;
                        }
                    }
                    match self.publish_once().await {
                        Ok(()) => {
                            backoff = self.settings.renew_interval / 10;
                            failing = false;
                        }
                        Err(e) => {
                            failing = true;
                            self.failed(&e);
                            retry_at = Some(crate::clock::now() + backoff);
                            backoff = (backoff * 2).min(self.settings.renew_interval);
                        }
                    }
                }
            }
        }
    }

    fn front_is_foreign(&self) -> bool {
        self.outbox
            .batch(1)
            .first()
            .is_some_and(|p| p.incarnation.is_some())
    }

    async fn handle(&mut self, input: Input) -> Flow {
        match input {
            Input::Transition(pending) => {
                self.mirror(&pending);
                self.outbox.push(*pending);
            }
            Input::Checkpoint { proj, token, seen } => {
                if self.owned.get(&proj).is_some_and(|o| o.token == token) {
                    self.checkpoints.insert(proj, (token, seen));
                }
            }
            Input::Evicted { proj, token } => {
                if self.owned.get(&proj).is_some_and(|o| o.token == token) {
                    self.owned.remove(&proj);
                    self.checkpoints.remove(&proj);
                    let _ = self.commands.send(Command::Evict { proj, token });
                }
            }
            Input::Leave { clients, done } => {
                let result = self.leave(clients).await;
                let _ = done.send(result);
            }
            Input::Flushed(_) => {}
            Input::Stop(done) => return Flow::Stop(done),
        }
        Flow::Go
    }

    /// Keeps the mirror of what this node supervises in step with the registry.
    fn mirror(&mut self, pending: &Pending) {
        match &pending.transition {
            Transition::Online {
                event: Event::Online { proj, addr, .. },
                token,
                timeout,
                ..
            } => {
                self.owned.insert(
                    proj.clone(),
                    Owned {
                        token: token.clone(),
                        addr: *addr,
                        timeout: *timeout,
                        decided: pending.decided,
                        detached: false,
                    },
                );
            }
            Transition::Offline {
                event: Event::Offline { proj, .. },
                token,
                ..
            } => {
                if self.owned.get(proj).is_some_and(|o| &o.token == token) {
                    self.owned.remove(proj);
                    self.checkpoints.remove(proj);
                }
            }
            Transition::Online { .. } | Transition::Offline { .. } | Transition::Note { .. } => {}
        }
    }

    /// Counts a Redis failure and logs it, at most once per [`ERROR_LOG_EVERY`].
    fn failed(&mut self, e: &ClusterError) {
        self.shared
            .stats
            .redis_errors
            .fetch_add(1, Ordering::Relaxed);
        let mut since = self
            .shared
            .failing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        since.get_or_insert_with(crate::clock::now);
        drop(since);
        let now = crate::clock::now();
        if self
            .last_error_log
            .is_none_or(|at| now.duration_since(at) >= ERROR_LOG_EVERY)
        {
            log::warn!(
                "cluster: {e} ({} transition(s) waiting to be published; heartbeats are \
                 still acked and supervised locally)",
                self.outbox.len()
            );
            self.last_error_log = Some(now);
        }
    }

    fn healthy(&mut self) {
        let mut since = self
            .shared
            .failing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if since.take().is_some() && self.last_error_log.is_some() {
            log::info!("cluster: Redis answers again");
            self.last_error_log = None;
        }
    }

    /// One renewal round: join if needed, renew, judge the peers, take over the dead's
    /// clients, write checkpoints, and now and then reconcile.
    async fn round(&mut self) {
        if self.left {
            return;
        }
        if !self.registered {
            if self.front_is_foreign() {
                // An earlier run's transitions go first, as the incarnation that decided them.
                return;
            }
            if let Err(e) = self.register().await {
                self.failed(&e);
                return;
            }
        }
        match self.store.renew(&self.id).await {
            Ok(Renewal::Fenced) => self.fenced().await,
            Ok(Renewal::Alive(marks)) => {
                self.healthy();
                self.rounds += 1;
                let verdict = self.watch.round(&self.id, &marks);
                for (peer, seen) in verdict.declare {
                    match self.store.declare_dead(&self.id, &peer, &seen).await {
                        Ok(Some(true)) => {
                            self.shared
                                .stats
                                .declared_dead
                                .fetch_add(1, Ordering::Relaxed);
                            log::warn!(
                                "cluster: node incarnation {peer} declared dead (no renewal \
                                 for {} rounds); taking over its clients",
                                self.settings.dead_rounds
                            );
                            if self.adopt_all(&peer).await {
                                return self.fenced().await;
                            }
                        }
                        Ok(Some(false)) => {}
                        Ok(None) => return self.fenced().await,
                        Err(e) => self.failed(&e),
                    }
                }
                for dead in verdict.adopt {
                    if self.adopt_all(&dead).await {
                        return self.fenced().await;
                    }
                }
                self.write_checkpoints().await;
                if self.must_reconcile || self.rounds.is_multiple_of(RECONCILE_ROUNDS) {
                    self.reconcile().await;
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    async fn register(&mut self) -> Result<(), ClusterError> {
        let replaced = self
            .store
            .register(&self.id, &self.settings.name, &self.settings.info)
            .await?;
        self.registered = true;
        self.shared.registered.store(true, Ordering::Relaxed);
        self.healthy();
        log::info!(
            "cluster: node {} joined as incarnation {}",
            self.settings.name,
            self.id
        );
        if let Some(previous) = replaced {
            log::info!(
                "cluster: the previous incarnation {previous} of node {} is taken over by this \
                 one",
                self.settings.name
            );
            self.watch.adopt_next(&previous);
            // Fenced already? The next renewal says so.
            self.adopt_all(&previous).await;
        }
        Ok(())
    }

    /// This incarnation was declared dead (cut off from Redis longer than `dead_after`, or
    /// frozen): join again under a new one, and claim again what the registry still
    /// supervises. A claim keeps its token and its decision time, so a client that moved to
    /// another node meanwhile stays there (the claim is stale, and is evicted here). Adopted
    /// clients are dropped: the reaper of the old incarnation takes them over with their caps.
    async fn fenced(&mut self) {
        let old = std::mem::replace(&mut self.id, new_incarnation(&self.settings.name));
        log::warn!(
            "cluster: this node's incarnation {old} was declared dead by its peers; joining \
             again as {} and claiming its {} client(s) again",
            self.id,
            self.owned.len()
        );
        self.shared.stats.rejoined.fetch_add(1, Ordering::Relaxed);
        *self.shared.id.lock().unwrap_or_else(|e| e.into_inner()) = self.id.clone();
        let _ = self.control_id.send(self.id.clone());
        self.registered = false;
        self.shared.registered.store(false, Ordering::Relaxed);
        let mut claims = Vec::new();
        let mut dropped = Vec::new();
        for (proj, owned) in &self.owned {
            if owned.detached {
                dropped.push((proj.clone(), owned.token.clone()));
                continue;
            }
            claims.push(Pending {
                seq: None,
                transition: Transition::Online {
                    event: Event::Online {
                        proj: proj.clone(),
                        addr: owned.addr,
                        at: crate::clock::wall_now(),
                        recovered: false,
                        outage: None,
                    },
                    token: owned.token.clone(),
                    timeout: owned.timeout,
                    quiet: false,
                },
                decided: owned.decided,
                incarnation: None,
            });
        }
        for (proj, token) in dropped {
            self.owned.remove(&proj);
            let _ = self.commands.send(Command::Evict { proj, token });
        }
        claims.sort_by_key(|p| p.decided);
        self.outbox.push_front_all(claims);
        if let Err(e) = self.register().await {
            self.failed(&e);
        }
    }

    /// Takes over every client of the dead or departed incarnation `dead` this node reaps.
    /// Answers whether this node turned out to be fenced.
    async fn adopt_all(&mut self, dead: &str) -> bool {
        for _ in 0..ADOPT_CALLS {
            match self
                .store
                .adopt(&self.id, &self.settings.name, dead, ADOPT_BATCH)
                .await
            {
                Ok(Adoption::Batch {
                    lost_node,
                    clients,
                    done,
                }) => {
                    self.shared
                        .stats
                        .adopted
                        .fetch_add(clients.len() as u64, Ordering::Relaxed);
                    if !clients.is_empty() {
                        log::info!(
                            "cluster: took over {} client(s) of node {lost_node}",
                            clients.len()
                        );
                    }
                    for c in clients {
                        self.owned.insert(
                            c.proj.clone(),
                            Owned {
                                token: c.token.clone(),
                                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                                timeout: c.timeout,
                                decided: crate::clock::now(),
                                detached: true,
                            },
                        );
                        let _ = self.commands.send(Command::Adopt {
                            proj: c.proj,
                            deadline: c.cap,
                            last_seen: c.seen,
                            timeout: c.timeout,
                            lost_node: lost_node.clone(),
                            token: c.token,
                            addr: c.addr,
                        });
                    }
                    if done {
                        return false;
                    }
                }
                Ok(Adoption::Gone | Adoption::Busy) => return false,
                Ok(Adoption::Fenced) => return true,
                Err(e) => {
                    // The batch may have been taken over without this node hearing of it:
                    // the next reconciliation finds it.
                    self.failed(&e);
                    self.must_reconcile = true;
                    return false;
                }
            }
        }
        false
    }

    async fn write_checkpoints(&mut self) {
        if self.checkpoints.is_empty() {
            return;
        }
        let items: Vec<(Proj, ClaimToken, SystemTime)> = self
            .checkpoints
            .iter()
            .take(CHECKPOINT_BATCH)
            .map(|(p, (t, s))| (p.clone(), t.clone(), *s))
            .collect();
        match self.store.checkpoint(&self.id, &items).await {
            Ok(_) => {
                for (proj, token, seen) in items {
                    if self.checkpoints.get(&proj) == Some(&(token, seen)) {
                        self.checkpoints.remove(&proj);
                    }
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    /// Clients Redis says this node owns that the mirror does not know (an adoption whose
    /// answer was lost) are handed to the registry as adopted. Periodically only a count is
    /// compared (one command); the members are read when it differs, or after a failed
    /// adoption.
    async fn reconcile(&mut self) {
        if !self.outbox.is_empty() {
            // Claims on their way would look unknown: reconcile when the outbox is drained.
            return;
        }
        if !self.must_reconcile {
            match self.store.owned_count(&self.id).await {
                Ok(n) if n == self.owned.len() as u64 => return,
                Ok(_) => {}
                Err(e) => return self.failed(&e),
            }
        }
        self.must_reconcile = false;
        let owned = match self.store.owned(&self.id).await {
            Ok(owned) => owned,
            Err(e) => return self.failed(&e),
        };
        let unknown: Vec<Proj> = owned
            .into_iter()
            .filter_map(|(proj, token)| {
                let proj = Proj::new(&proj).ok()?;
                let known = self
                    .owned
                    .get(&proj)
                    .is_some_and(|o| Some(o.token.as_str()) == token.as_deref());
                (!known).then_some(proj)
            })
            .collect();
        for proj in unknown {
            match self.store.detached(&proj).await {
                Ok(Some(c)) => {
                    log::info!("cluster: reconciliation found {} owned here", c.proj);
                    self.owned.insert(
                        c.proj.clone(),
                        Owned {
                            token: c.token.clone(),
                            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                            timeout: c.timeout,
                            decided: crate::clock::now(),
                            detached: true,
                        },
                    );
                    let _ = self.commands.send(Command::Adopt {
                        proj: c.proj,
                        deadline: c.cap,
                        last_seen: c.seen,
                        timeout: c.timeout,
                        lost_node: c.lost_node,
                        token: c.token,
                        addr: c.addr,
                    });
                }
                Ok(None) => {}
                Err(e) => return self.failed(&e),
            }
        }
    }

    /// Publishes the next batch of the outbox.
    async fn publish_once(&mut self) -> Result<(), ClusterError> {
        let batch = self.outbox.batch(PUBLISH_BATCH);
        if batch.is_empty() {
            return Ok(());
        }
        let foreign = batch[0].incarnation.clone();
        let me = foreign.clone().unwrap_or_else(|| self.id.clone());
        let items: Vec<PublishItem<'_>> = batch
            .iter()
            .map(|p| publish_item(p, &self.settings.name))
            .collect();
        let applied = self
            .store
            .publish(&me, &self.settings.name, self.settings.max_len, &items)
            .await?;
        let Some(applied) = applied else {
            if foreign.is_some() {
                log::info!(
                    "cluster: {} transition(s) of incarnation {me} of the previous run are \
                     fenced (it was declared dead; its clients were taken over)",
                    batch.len()
                );
                self.shared
                    .stats
                    .fenced
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.outbox.done(batch.len());
            } else {
                self.fenced().await;
            }
            return Ok(());
        };
        self.healthy();
        for (pending, applied) in batch.iter().zip(applied) {
            match applied {
                Applied::Event(_) => {
                    self.shared.stats.published.fetch_add(1, Ordering::Relaxed);
                }
                Applied::Stale => {
                    self.shared.stats.stale.fetch_add(1, Ordering::Relaxed);
                    let claim = pending.transition.proj().zip(pending.transition.token());
                    if let (None, Some((proj, token))) = (&pending.incarnation, claim) {
                        let (proj, token) = (proj.clone(), token.clone());
                        if self.owned.get(&proj).is_some_and(|o| o.token == token) {
                            self.owned.remove(&proj);
                            let _ = self.commands.send(Command::Evict { proj, token });
                        }
                    }
                }
                Applied::Fenced => {
                    self.shared.stats.fenced.fetch_add(1, Ordering::Relaxed);
                }
                Applied::Moved | Applied::Refresh | Applied::Dup | Applied::Quiet => {}
            }
        }
        self.outbox.done(batch.len());
        Ok(())
    }

    /// A clean leave: publish what is queued, checkpoint every client's exact last heartbeat,
    /// and mark this node `left`, so that peers take over exact deadlines at once.
    async fn leave(
        &mut self,
        clients: Vec<(Proj, ClaimToken, SystemTime)>,
    ) -> Result<(), ClusterError> {
        if !self.registered {
            self.register().await?;
        }
        let mut tries = 0;
        while !self.outbox.is_empty() {
            if let Err(e) = self.publish_once().await {
                tries += 1;
                if tries >= 3 {
                    return Err(e);
                }
            }
        }
        for chunk in clients.chunks(CHECKPOINT_BATCH) {
            self.store.checkpoint(&self.id, chunk).await?;
        }
        self.store.leave(&self.id).await?;
        self.left = true;
        log::info!(
            "cluster: node {} left; peers take over its {} client(s)",
            self.settings.name,
            clients.len()
        );
        Ok(())
    }
}

fn publish_item<'a>(pending: &'a Pending, node: &str) -> PublishItem<'a> {
    let t = &pending.transition;
    let (kind, timeout, addr) = match t {
        Transition::Online {
            event: Event::Online { addr, .. },
            timeout,
            ..
        } => (PublishKind::Claim, *timeout, addr.to_string()),
        Transition::Online { timeout, .. } => (PublishKind::Claim, *timeout, String::new()),
        Transition::Offline { .. } => (PublishKind::End, Duration::ZERO, String::new()),
        Transition::Note { event } => (
            PublishKind::Note(event.kind()),
            Duration::ZERO,
            String::new(),
        ),
    };
    PublishItem {
        kind,
        proj: t.proj().map_or("", Proj::as_str),
        token: t.token().map_or("", ClaimToken::as_str),
        age_ms: millis(pending.age()),
        timeout_ms: millis(timeout),
        checkpoint_ms: checkpoint_every(timeout).map_or(0, millis),
        addr,
        // A quiet one: no stream entry.
        json: if t.quiet() {
            String::new()
        } else {
            t.event_json(node)
        },
    }
}

/// A new incarnation id: the name's first bytes (for people reading keys) and 64 random bits.
pub(crate) fn new_incarnation(name: &str) -> String {
    let head: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(24)
        .collect();
    format!("{head}.{}", &random_hex()[..16])
}
