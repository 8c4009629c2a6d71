//! Cluster mode on Redis: several nodes, one view of the clients, one event stream.
//!
//! The design and its guarantees are in `docs/cluster.md`. In short: each node supervises the
//! clients connected to it exactly as a single node does (heartbeats never touch Redis); Redis
//! holds who owns which client (with a fencing token per claim), the nodes' liveness (renewal
//! counters watched by their peers), and the event stream. Every transition is one Lua script
//! that checks the token, changes the state and appends the event together.
//!
//! # The interface
//! [`Cluster`] is a handle the local registry uses:
//! - [`Cluster::transition`] (never blocks, never waits on Redis) for every claim and offline
//!   it decides, with the claim's [`ClaimToken`];
//! - [`Cluster::checkpoint`] for long-timeout clients (see [`checkpoint_every`]);
//! - the [`Command`]s in [`ClusterFeeds::commands`] (evict a client claimed elsewhere; adopt a
//!   client of a lost node);
//! - queries for the HTTP API ([`Cluster::clients`], [`Cluster::client`], [`Cluster::nodes`]),
//!   and the event stream ([`Cluster::subscribe`], [`Cluster::events_after`]);
//! - [`Cluster::health`], [`Cluster::leave`] and [`Cluster::stop`].
//!
//! All Redis work happens on the cluster's own arbiter (a thread): the state machine in
//! [`task`](self), the control channel, the stream tail and the webhook consumers.
//!
//! # Layout
//! - `config.rs`: `[cluster]`.
//! - `keys.rs`, `scripts.rs` and `scripts/*.lua`: the data model and its atomic steps.
//! - `store.rs`: typed operations on Redis, one script or pipeline each.
//! - `task.rs`: the cluster task (publish, renew, judge peers, adopt, checkpoint, leave).
//! - `liveness.rs`: peer liveness by renewal counters.
//! - `outbox.rs`: the transitions on their way to Redis, durable in the event log.
//! - `control.rs`: evictions from other nodes (pub/sub).
//! - `stream.rs`: the event stream's tail.
//! - `webhooks.rs`: webhook delivery through consumer groups.
//! - `transition.rs`, `token.rs`: the types the registry exchanges with the cluster.

mod claim;
mod config;
mod control;
mod error;
mod keys;
mod liveness;
pub(crate) mod node;
mod outbox;
pub(crate) mod registry_hooks;
mod scripts;
mod sink;
mod store;
mod stream;
mod task;
#[cfg(test)]
mod tests;
mod token;
mod transition;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::Arbiter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub(crate) use claim::{goodbye, stamp, Claim};
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use outbox::OutboxCursor;
pub(crate) use sink::ClusterSink;
pub use store::{ClusterClient, NodeInfo, StreamEvent};
pub use task::{checkpoint_every, ClusterStats};
pub use token::ClaimToken;
pub use transition::{Command, Transition};

use keys::Keys;
use outbox::{Outbox, Pending};
use store::Store;
use task::{ClusterTask, Input, Settings, Shared};

use crate::metrics::Metrics;
use crate::notify::{NotifyConfig, Sender};
use crate::protocol::Proj;
use crate::storage::{ClusterStamp, Journal};

/// Stream events buffered for a slow local reader before it lags.
const EVENT_BUFFER: usize = 16_384;

/// What a node brings to the cluster besides `[cluster]`.
pub struct ClusterOptions {
    /// The heartbeat listener's address (the default node name's port; shown in the nodes
    /// list).
    pub listen: SocketAddr,
    /// The HTTP API's address, if any (shown in the nodes list).
    pub http: Option<SocketAddr>,
    /// The event log, the durable outbox, with its published cursor (read before the log was
    /// opened, and given to it as a hold). Without it, transitions decided while Redis is down
    /// survive the outage but not a crash of the node.
    pub journal: Option<(Journal, OutboxCursor)>,
    /// Webhooks (`[notify]`), delivered through consumer groups on the event stream, and the
    /// metrics their deliveries are counted in.
    pub webhooks: Option<(NotifyConfig, Arc<Metrics>)>,
    /// Whether webhooks get an outage's members (`outage.webhooks`, docs/detection.md).
    pub outage_webhooks: crate::events::OutageWebhooks,
}

/// The feeds a node reads from the cluster.
pub struct ClusterFeeds {
    /// What the cluster asks of the local registry, in order.
    pub commands: mpsc::UnboundedReceiver<Command>,
}

/// Whether this node's view of the cluster is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterHealth {
    /// Redis answered within `dead_after`.
    Ok,
    /// Redis has not answered for longer than `dead_after` (or this node has not joined yet):
    /// the node keeps supervising its clients, but peers may declare it dead, so a load
    /// balancer should send new clients elsewhere.
    Degraded {
        /// What is wrong, for people.
        cause: String,
        /// For how long.
        since: Duration,
    },
}

/// The handle to cluster mode. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    store: Store,
    inputs: mpsc::UnboundedSender<Input>,
    shared: Arc<Shared>,
    events: broadcast::Sender<StreamEvent>,
    dead_after: Duration,
    arbiter: Mutex<Option<Arbiter>>,
}

impl Cluster {
    /// Starts cluster mode on its own arbiter: connects lazily (a Redis that is down delays
    /// nothing here), joins as a new incarnation of this node, follows the event stream.
    /// Must run inside an actix System.
    pub async fn start(
        config: &ClusterConfig,
        options: ClusterOptions,
    ) -> Result<(Cluster, ClusterFeeds), ClusterError> {
        let client = redis::Client::open(config.redis.as_str())?;
        let name = config.node_name(options.listen);
        let keys = Keys::new(&config.key_prefix);
        let timeout = op_timeout(config.dead_after);
        let id = task::new_incarnation(&name);
        let shared = Arc::new(Shared::new(id.clone()));
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (control_id, control_rx) = watch::channel(id);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let outbox = match options.journal {
            Some((journal, cursor)) => {
                let committed = *journal.committed().borrow();
                Outbox::with_log(cursor, journal.dir(), committed)
            }
            None => Outbox::in_memory(),
        };
        let info = serde_json::json!({
            "listen": options.listen.to_string(),
            "http": options.http.map(|a| a.to_string()),
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        let settings = Settings {
            name: name.clone(),
            info,
            renew_interval: config.renew_interval,
            dead_rounds: config.dead_rounds(),
            max_len: config.stream_max_len,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let tls = match &options.webhooks {
            Some((notify, _)) => {
                crate::notify::tls_for(notify).map_err(|e| ClusterError::Unexpected {
                    what: "webhooks",
                    detail: e.to_string(),
                })?
            }
            None => None,
        };
        let webhooks = options.webhooks;
        let outage_webhooks = options.outage_webhooks;
        let min_idle = webhooks
            .as_ref()
            .map(|(notify, _)| webhooks::min_idle(config.dead_after, notify.timeout));
        let node = name.clone();
        let arbiter = Arbiter::new();
        let (ready, store) = oneshot::channel();
        let task_inputs = inputs.clone();
        let task_shared = shared.clone();
        let task_events = events.clone();
        let started = arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let manager =
                    match ConnectionManager::new_lazy_with_config(client.clone(), manager_config) {
                        Ok(manager) => manager,
                        Err(e) => {
                            let _ = ready.send(Err(ClusterError::Redis(e)));
                            return;
                        }
                    };
                let store = Store::new(manager, keys.clone(), timeout);
                let _ = ready.send(Ok(store.clone()));
                actix_rt::spawn(control::listen(
                    client.clone(),
                    keys.clone(),
                    control_rx.clone(),
                    task_inputs,
                    timeout,
                ));
                if let (Some((notify, metrics)), Some(min_idle)) = (webhooks, min_idle) {
                    for hook in &notify.webhook {
                        let consumer = webhooks::Consumer {
                            client: client.clone(),
                            store: store.clone(),
                            keys: keys.clone(),
                            sender: Sender::new(
                                hook.clone(),
                                &notify,
                                tls.clone(),
                                metrics.clone(),
                            ),
                            node: node.clone(),
                            min_idle,
                            outage: outage_webhooks,
                        };
                        actix_rt::spawn(consumer.run());
                    }
                }
                actix_rt::spawn(stream::tail(client, keys, None, task_events, timeout));
                ClusterTask::new(
                    store,
                    settings,
                    task_shared,
                    inputs_rx,
                    commands,
                    control_id,
                    outbox,
                )
                .run()
                .await;
            });
        });
        if !started {
            return Err(ClusterError::Stopped);
        }
        let store = store.await.map_err(|_| ClusterError::Stopped)??;
        log::info!(
            "cluster mode: node {name}, Redis {}, keys {{{}}}:*",
            redact(&config.redis),
            config.key_prefix
        );
        let cluster = Cluster {
            inner: Arc::new(Inner {
                name,
                store,
                inputs,
                shared,
                events,
                dead_after: config.dead_after,
                arbiter: Mutex::new(Some(arbiter)),
            }),
        };
        Ok((
            cluster,
            ClusterFeeds {
                commands: commands_rx,
            },
        ))
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This node's current incarnation (a new one per start, and after being fenced).
    pub fn incarnation(&self) -> String {
        lock(&self.inner.shared.id).clone()
    }

    /// Hands a transition to the cluster, queued for Redis. Never blocks. Without an event
    /// log (or for a library user who keeps none), it survives an outage of Redis but not a
    /// crash of the node; see [`Cluster::transition_logged`].
    pub fn transition(&self, transition: Transition) {
        self.queue(None, transition);
    }

    /// [`Cluster::transition`] for a transition the event log holds as `seq` (with its
    /// [`ClusterStamp`], see [`Cluster::stamp`]): the log is its durable outbox, and the
    /// cluster marks it published there once Redis has it.
    pub fn transition_logged(&self, seq: u64, transition: Transition) {
        self.queue(Some(seq), transition);
    }

    fn queue(&self, seq: Option<u64>, transition: Transition) {
        let _ = self.inner.inputs.send(Input::Transition(Box::new(Pending {
            seq,
            transition,
            decided: crate::clock::now(),
            incarnation: None,
        })));
    }

    /// What the event log must keep of `transition` to publish it after a restart.
    pub fn stamp(&self, transition: &Transition) -> ClusterStamp {
        ClusterStamp {
            token: transition
                .token()
                .map(ToString::to_string)
                .unwrap_or_default(),
            node: self.incarnation(),
            lost_node: match transition {
                Transition::Offline { lost_node, .. } => lost_node.clone(),
                Transition::Online { .. } | Transition::Note { .. } => None,
            },
        }
    }

    /// The last heartbeat of a client with a long timeout (send it every
    /// [`checkpoint_every`]): peers then bound its deadline if this node dies.
    pub fn checkpoint(&self, proj: Proj, token: ClaimToken, last_seen: SystemTime) {
        let _ = self.inner.inputs.send(Input::Checkpoint {
            proj,
            token,
            seen: last_seen,
        });
    }

    /// Online clients of every node, in `proj` order, after `after`, at most `limit`.
    pub async fn clients(
        &self,
        after: Option<&Proj>,
        limit: usize,
    ) -> Result<Vec<ClusterClient>, ClusterError> {
        self.inner.store.clients(after, limit).await
    }

    /// One online client, on whichever node.
    pub async fn client(&self, proj: &Proj) -> Result<Option<ClusterClient>, ClusterError> {
        self.inner.store.client(proj).await
    }

    /// How many clients are online in the cluster.
    pub async fn online_count(&self) -> Result<u64, ClusterError> {
        self.inner.store.online_count().await
    }

    /// Every node, with its state and client count.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        self.inner.store.nodes().await
    }

    /// Every event of every node from now on, in the stream's order.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.inner.events.subscribe()
    }

    /// Events after the id `after` (exclusive), oldest first, at most `limit`: to resume a
    /// reader (`Last-Event-ID`) on any node.
    pub async fn events_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StreamEvent>, ClusterError> {
        self.inner.store.events_after(after, limit).await
    }

    /// The id of the newest event (`0-0` if none).
    pub async fn last_event_id(&self) -> Result<String, ClusterError> {
        self.inner.store.last_event_id().await
    }

    /// Whether Redis has answered within `dead_after`.
    pub fn health(&self) -> ClusterHealth {
        let since = *lock(&self.inner.shared.failing_since);
        match since {
            Some(at) if at.elapsed() > self.inner.dead_after => ClusterHealth::Degraded {
                cause: if self.inner.shared.registered.load(Ordering::Relaxed) {
                    "redis_unreachable".into()
                } else {
                    "cluster_not_joined".into()
                },
                since: at.elapsed(),
            },
            _ => ClusterHealth::Ok,
        }
    }

    /// Counters of the cluster's work.
    pub fn stats(&self) -> &ClusterStats {
        &self.inner.shared.stats
    }

    /// Transitions waiting to be published.
    pub fn pending(&self) -> usize {
        self.inner.shared.outbox.load(Ordering::Relaxed)
    }

    /// Waits until every transition handed over so far is published (or fenced).
    pub async fn flushed(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.inputs.send(Input::Flushed(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Leaves the cluster cleanly: publishes what is queued, records each client's exact last
    /// heartbeat (`clients`: proj, token, last seen), and marks this node `left`, so that its
    /// peers take its clients over at once with exact deadlines. Then the node must stop.
    pub async fn leave(
        &self,
        clients: Vec<(Proj, ClaimToken, SystemTime)>,
    ) -> Result<(), ClusterError> {
        let (done, wait) = oneshot::channel();
        self.inner
            .inputs
            .send(Input::Leave { clients, done })
            .map_err(|_| ClusterError::Stopped)?;
        wait.await.map_err(|_| ClusterError::Stopped)?
    }

    /// Stops the cluster task and its arbiter. Without [`Cluster::leave`] first, peers take
    /// this node for dead after `dead_after`.
    pub async fn stop(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.inputs.send(Input::Stop(done)).is_ok() {
            let _ = wait.await;
        }
        let arbiter = lock(&self.inner.arbiter).take();
        if let Some(arbiter) = arbiter {
            arbiter.stop();
            let _ = actix_rt::task::spawn_blocking(move || arbiter.join()).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The deadline of one Redis call: half of `dead_after`, within 0.5..=5 s. A call must fail
/// well before peers could judge this node, and a frozen Redis must show as failures, not as
/// a stalled task.
fn op_timeout(dead_after: Duration) -> Duration {
    (dead_after / 2).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

/// The URL without its password, for the log.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
