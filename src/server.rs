//! Starting and stopping a heartwatch server inside an actix System.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use actix::{Arbiter, Recipient, System};
use actix_web::dev::ServerHandle;
use tokio::task::JoinHandle;

use crate::auth::ReloadOutcome;
use crate::auth::{AuthError, Authenticator, Reloaded};
use crate::cluster::{node as cluster_node, Cluster, ClusterConfig, OutboxCursor};
use crate::config::{
    validate_detection, validate_http_tokens, validate_parts, AuthConfig, Config, ConfigError,
    FlapConfig, HistoryConfig, OutageConfig, PhiConfig, ServerConfig, SessionConfig,
};
use crate::events::{Event, EventBus, LogSink, Pipeline, Sink, Stage};
use crate::extension::{FrameHandler, HandlerNameError, Handlers};
use crate::http::{self, ApiState, SseHub};
use crate::ingest::tcp::{self, TcpServices, TlsAcceptor};
use crate::ingest::{BoundIngests, IngestConfig, IngestDeps, Ingests};
use crate::metrics::Metrics;
use crate::notify::{self, NotifyConfig};
use crate::storage::{History, Journal, RecoveredClient, StorageConfig, StorageError};
use crate::supervision::{self, Detection, Heartbeats, PauseBook, RegistryHandle, StallGuard};
use crate::tls::{ServerTls, TlsError};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A custom handler has an unusable name.
    #[error(transparent)]
    Handler(#[from] HandlerNameError),
    /// The event log could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A webhook's delivery cursor could not be read or created.
    #[error("webhooks: {0}")]
    Webhook(std::io::Error),
    /// Cluster mode could not start (a bad Redis URL; Redis being down is not an error).
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The protocol tokens cannot be used (a bad pattern, an unreadable `auth.tokens_file`).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// `start` was called outside an actix System.
    #[error("heartwatch must be started inside a running actix System")]
    NoSystem,
    /// A setting the configuration loader would refuse (its message names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Configures and starts heartwatch inside the current actix System.
///
/// ```no_run
/// # async fn run() -> Result<(), heartwatch::StartError> {
/// let config = heartwatch::Config::default();
/// let server = heartwatch::Builder::new(config.server).start().await?;
/// println!("heartbeats on {}", server.tcp_addr());
/// server.stop().await;
/// # Ok(()) }
/// ```
pub struct Builder {
    config: ServerConfig,
    phi: PhiConfig,
    flap: FlapConfig,
    outage: OutageConfig,
    history: HistoryConfig,
    session: SessionConfig,
    auth: AuthConfig,
    storage: Option<StorageConfig>,
    notify: Option<NotifyConfig>,
    handlers: Vec<(String, Arc<dyn FrameHandler>)>,
    subscribers: Vec<Recipient<Event>>,
    sinks: Vec<Box<dyn Sink>>,
    http: bool,
    log_events: bool,
    tls: Option<ServerTls>,
    cluster: Option<ClusterConfig>,
    ingest: Option<IngestConfig>,
}

impl Builder {
    /// A server with `config`, the HTTP API on its own listener, and events logged.
    pub fn new(config: ServerConfig) -> Self {
        let defaults = Config::default();
        Self {
            config,
            phi: defaults.phi,
            flap: defaults.flap,
            outage: defaults.outage,
            history: defaults.history,
            session: SessionConfig::default(),
            auth: AuthConfig::default(),
            storage: None,
            notify: None,
            handlers: Vec::new(),
            subscribers: Vec::new(),
            sinks: Vec::new(),
            http: true,
            log_events: true,
            tls: None,
            cluster: None,
            ingest: None,
        }
    }

    /// The phi-accrual detector's settings (`[phi]`, used with `server.detector = "phi"`); the
    /// defaults of `config/default.toml` otherwise.
    pub fn phi(mut self, phi: PhiConfig) -> Self {
        self.phi = phi;
        self
    }

    /// Flap damping (`[flap]`); the defaults of `config/default.toml` otherwise.
    pub fn flap(mut self, flap: FlapConfig) -> Self {
        self.flap = flap;
        self
    }

    /// Grouping of correlated offlines (`[outage]`); the defaults of `config/default.toml`
    /// otherwise.
    pub fn outage(mut self, outage: OutageConfig) -> Self {
        self.outage = outage;
        self
    }

    /// What the history endpoint keeps (`[history]`); the defaults of `config/default.toml`
    /// otherwise.
    pub fn history(mut self, history: HistoryConfig) -> Self {
        self.history = history;
        self
    }

    /// Per-connection liveness settings (pings, first-frame deadline, TCP keepalive); the
    /// defaults of `config/default.toml` otherwise.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Who may read the HTTP API, and which tokens heartbeat connections need (`[auth]`); by
    /// default anyone, and none.
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// The durable event log (`[storage]`): events are appended to it and the clients online
    /// at the last stop are recovered from it. Off by default in the library (the binary
    /// passes its configuration); off too if `storage.path` is empty.
    pub fn storage(mut self, storage: StorageConfig) -> Self {
        self.storage = Some(storage).filter(StorageConfig::enabled);
        self
    }

    /// Webhooks (`[notify]`); they need [`Builder::storage`] (without it, `start` refuses them
    /// as the configuration loader does).
    pub fn notify(mut self, notify: NotifyConfig) -> Self {
        self.notify = Some(notify);
        self
    }

    /// Serves TLS on both the heartbeat listener and the HTTP API (see [`ServerTls::load`]);
    /// plaintext otherwise.
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Answers frames of type `kind` with `handler` (the extension point).
    pub fn handler(mut self, kind: impl Into<String>, handler: impl FrameHandler) -> Self {
        self.handlers.push((kind.into(), Arc::new(handler)));
        self
    }

    /// Sends every event to `subscriber`.
    pub fn subscribe(mut self, subscriber: Recipient<Event>) -> Self {
        self.subscribers.push(subscriber);
        self
    }

    /// Sends every transition to `sink`, after the built-in sinks (the event log, the log,
    /// the event stream, the subscribers), in the registry's order. See [`Sink`].
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Whether to serve the HTTP API on `server.http` (default yes). Without it, mount
    /// [`http::configure`] with [`Running::api_state`] into your own actix-web `App`.
    pub fn http(mut self, enabled: bool) -> Self {
        self.http = enabled;
        self
    }

    /// Cluster mode (`[cluster]`, docs/cluster.md): several nodes share one view of the
    /// clients and one event stream through Redis. Off unless `cluster.redis` is set.
    pub fn cluster(mut self, cluster: ClusterConfig) -> Self {
        self.cluster = Some(cluster).filter(ClusterConfig::enabled);
        self
    }

    /// HTTP pings and UDP heartbeats (`[ingest]`), each on its own listener; both off
    /// unless their address is set.
    pub fn ingest(mut self, ingest: IngestConfig) -> Self {
        self.ingest = Some(ingest).filter(IngestConfig::enabled);
        self
    }

    /// Whether to log each event at info level (default yes).
    pub fn log_events(mut self, enabled: bool) -> Self {
        self.log_events = enabled;
        self
    }

    /// Binds the listeners and starts the arbiters. Must run inside an actix System.
    pub async fn start(self) -> Result<Running, StartError> {
        if System::try_current().is_none() {
            return Err(StartError::NoSystem);
        }
        validate_parts(
            &self.config,
            &self.session,
            self.storage.as_ref(),
            self.notify.as_ref(),
            self.cluster.is_some(),
        )?;
        validate_detection(
            &self.config,
            &self.phi,
            &self.flap,
            &self.outage,
            &self.history,
        )?;
        if let Some(cluster) = &self.cluster {
            cluster
                .check()
                .map_err(|(key, problem)| ConfigError::Value { key, problem })?;
        }
        validate_http_tokens(&self.auth)?;
        if let Some(ingest) = &self.ingest {
            ingest.check()?;
        }
        let config = self.config;
        let handlers = Handlers::new(self.handlers)?;
        let metrics = Arc::new(Metrics::new());
        let auth = Authenticator::from_config(&self.auth, Some(metrics.clone()))?.map(Arc::new);
        // Cluster mode: each node its own event log (the durable outbox), webhooks from the
        // Redis stream instead of the log.
        let node = self.cluster.as_ref().map(|c| c.node_name(config.listen));
        let storage_config = match (&self.storage, &node) {
            (Some(storage), Some(node)) => Some(cluster_node::node_storage(storage, node)),
            (storage, _) => storage.clone(),
        };
        let outbox = match (&self.cluster, &storage_config) {
            (Some(_), Some(storage)) => Some(OutboxCursor::prepare(&storage.path).map_err(
                |source| StorageError::Io {
                    what: "prepare the cluster outbox in",
                    path: storage.path.clone(),
                    source,
                },
            )?),
            _ => None,
        };
        let log_webhooks = self.notify.as_ref().filter(|_| self.cluster.is_none());
        let history = History::new(&self.history);
        let storage = open_storage(
            storage_config.as_ref(),
            log_webhooks,
            (&history, self.history.retention),
            &metrics,
            outbox.as_ref().map(OutboxCursor::hold),
        )?;
        let joined = match &self.cluster {
            Some(cluster) => Some(
                cluster_node::join(
                    cluster,
                    config.listen,
                    config.http,
                    storage.journal.clone().zip(outbox),
                    self.notify.clone(),
                    self.outage.webhooks,
                    &metrics,
                )
                .await?,
            ),
            None => None,
        };
        let (cluster, cluster_feeds) = match joined {
            Some((cluster, feeds)) => {
                metrics.set_cluster(cluster.clone());
                (Some(cluster), Some(feeds))
            }
            None => (None, None),
        };

        // Every transition goes through these sinks, in this order: the durable log first, then
        // the history (which needs the muted ones too).
        // In cluster mode the log, the event stream and the subscribers follow the cluster's
        // stream instead (every node's events), and the cluster sink publishes to it.
        let events = EventBus::new();
        for subscriber in self.subscribers {
            events.subscribe(subscriber);
        }
        let (hub, stream_sender) = SseHub::new();
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(journal) = &storage.journal {
            sinks.push(Box::new(journal.clone()));
        }
        sinks.push(Box::new(history.clone()));
        match &cluster {
            Some(cluster) => {
                sinks.push(cluster_node::sink(cluster));
                actix_rt::spawn(cluster_node::feed_local(
                    cluster.subscribe(),
                    self.log_events,
                    events.clone(),
                ));
            }
            None => {
                if self.log_events {
                    sinks.push(Box::new(LogSink));
                }
                sinks.push(Box::new(hub));
                sinks.push(Box::new(events.clone()));
            }
        }
        sinks.extend(self.sinks);
        // Between the registry and the sinks: flap damping and outage grouping.
        let stage = Stage::new(&self.flap, &self.outage, storage.recovered.len());
        let pipeline = Pipeline::with_stage(storage.last_seq, sinks, stage);
        let detection = detection(&config, &self.phi, &self.history, &metrics);
        let background = vec![
            actix_rt::spawn(pipeline.clone().housekeeping()),
            actix_rt::spawn(supervision::watch_stalls(detection.stall.clone())),
        ];

        let pauses = PauseBook::open(storage_config.as_ref().map(|s| s.path.as_path()));
        let heartbeats = supervision::start(
            Arbiter::current(),
            supervision::Limits::of(&config),
            pipeline,
            detection,
            pauses,
            metrics.clone(),
            cluster.clone(),
        );
        match (&cluster, cluster_feeds) {
            (Some(_), Some(feeds)) => {
                // The previous run's clients are taken over through the cluster (this node's
                // new incarnation reaps its old one), not recovered from the log.
                actix_rt::spawn(crate::cluster::registry_hooks::forward(
                    feeds.commands,
                    heartbeats.registry().clone(),
                ));
                actix_rt::spawn(crate::cluster::registry_hooks::sweep(
                    heartbeats.registry().clone(),
                ));
            }
            _ => heartbeats.registry().recover(storage.recovered),
        }
        let api = ApiState {
            registry: heartbeats.registry().clone(),
            metrics: metrics.clone(),
            events: stream_sender,
            history,
            token: Some(self.auth.http_token)
                .filter(|t| !t.is_empty())
                .map(Arc::from),
            admin_token: Some(self.auth.http_admin_token)
                .filter(|t| !t.is_empty())
                .map(Arc::from),
            cluster: cluster.clone(),
            node: Arc::new((
                node.clone()
                    .unwrap_or_else(|| ClusterConfig::default().node_name(config.listen)),
                crate::clock::wall_now(),
            )),
        };

        let listener =
            tcp::bind(config.listen, config.backlog, config.reuse_port).map_err(|source| {
                StartError::Bind {
                    what: "heartbeats",
                    addr: config.listen,
                    source,
                }
            })?;
        let tcp_addr = listener.local_addr().map_err(|source| StartError::Bind {
            what: "heartbeats",
            addr: config.listen,
            source,
        })?;
        let ingests = match &self.ingest {
            Some(ingest) => BoundIngests::bind(ingest, self.tls.as_ref())?,
            None => BoundIngests::default(),
        };
        let (http_handle, http_addr) = if self.http {
            let (handle, addr) = start_http(&config, api.clone(), self.tls.as_ref())?;
            (Some(handle), Some(addr))
        } else {
            (None, None)
        };
        let webhooks = start_webhooks(
            storage.webhooks,
            storage.journal.as_ref(),
            self.notify.as_ref(),
            &self.outage,
            &metrics,
        )?;
        let arbiters: Vec<Arbiter> = (0..config.worker_count()).map(|_| Arbiter::new()).collect();
        let ingests = ingests.run(IngestDeps {
            heartbeats: heartbeats.clone(),
            auth: auth.clone(),
            metrics: metrics.clone(),
            session: self.session.clone(),
            max_frame_bytes: config.max_frame_bytes,
            arbiters: arbiters.iter().map(Arbiter::handle).collect(),
        });
        let services = Arc::new(TcpServices {
            heartbeats: heartbeats.clone(),
            handlers,
            metrics: metrics.clone(),
            max_frame_bytes: config.max_frame_bytes,
            max_write_backlog: config.max_write_backlog,
            session: self.session,
            open: AtomicUsize::new(0),
            max_connections: config.max_connections,
            auth: auth.clone(),
            tls: self.tls.as_ref().map(|tls| TlsAcceptor {
                acceptor: tls.acceptor(),
                handshake_timeout: tls.handshake_timeout,
            }),
        });
        let accept = actix_rt::spawn(tcp::accept_loop(
            listener,
            arbiters.iter().map(Arbiter::handle).collect(),
            services,
        ));
        log_started(tcp_addr, http_addr, self.tls.is_some(), auth.as_deref());
        Ok(Running {
            tcp_addr,
            http_addr,
            heartbeats,
            events,
            metrics,
            api,
            accept,
            http: http_handle,
            ingests,
            arbiters,
            journal: storage.journal,
            webhooks,
            background,
            auth,
            tls: self.tls,
            cluster,
        })
    }
}

/// How silent clients are judged: the detector, late verdicts, and the stall guard.
fn detection(
    config: &ServerConfig,
    phi: &PhiConfig,
    history: &HistoryConfig,
    metrics: &Arc<Metrics>,
) -> Arc<Detection> {
    let stall = StallGuard::new(config.stall_threshold, config.stall_grace, metrics.clone());
    Arc::new(Detection::new(
        config.detector,
        config.late_ratio,
        phi,
        history.samples,
        Arc::new(stall),
    ))
}

/// The event log and the webhooks that read it, opened; or nothing, without `[storage]`.
#[derive(Default)]
struct Storage {
    journal: Option<Journal>,
    /// The clients online when the log ends, to watch again.
    recovered: Vec<RecoveredClient>,
    /// The last event number used.
    last_seq: u64,
    webhooks: Option<notify::Webhooks>,
}

/// Opens the event log (after reading the webhooks' cursors, which hold its old segments),
/// folding it into the history, which keeps its segments for the history's retention.
fn open_storage(
    storage: Option<&StorageConfig>,
    notify: Option<&NotifyConfig>,
    history: (&History, std::time::Duration),
    metrics: &Arc<Metrics>,
    outbox: Option<Arc<std::sync::atomic::AtomicU64>>,
) -> Result<Storage, StartError> {
    let Some(storage) = storage else {
        return Ok(Storage::default());
    };
    let webhooks = match notify {
        Some(notify) => {
            Some(notify::Webhooks::prepare(notify, &storage.path).map_err(StartError::Webhook)?)
        }
        None => None,
    };
    let mut holds = webhooks.as_ref().map(|w| w.holds()).unwrap_or_default();
    holds.extend(outbox);
    let (journal, recovered) = Journal::open_with(storage, metrics.clone(), holds, Some(history))?;
    Ok(Storage {
        journal: Some(journal),
        recovered: recovered.clients,
        last_seq: recovered.last_seq,
        webhooks,
    })
}

/// Serves the HTTP API on `server.http`.
fn start_http(
    config: &ServerConfig,
    api: ApiState,
    tls: Option<&ServerTls>,
) -> Result<(ServerHandle, SocketAddr), StartError> {
    let (server, handle, addr) =
        http::start(config.http, config.http_workers, api, tls).map_err(|source| {
            StartError::Bind {
                what: "HTTP API",
                addr: config.http,
                source,
            }
        })?;
    actix_rt::spawn(server);
    Ok((handle, addr))
}

/// Starts one delivery task per webhook; they follow the event log.
fn start_webhooks(
    webhooks: Option<notify::Webhooks>,
    journal: Option<&Journal>,
    notify: Option<&NotifyConfig>,
    outage: &OutageConfig,
    metrics: &Arc<Metrics>,
) -> Result<Vec<JoinHandle<()>>, StartError> {
    // Webhooks without the event log are refused by the configuration's validation.
    match (journal, webhooks, notify) {
        (Some(journal), Some(webhooks), Some(notify)) => webhooks
            .spawn(notify, outage.webhooks, journal, metrics)
            .map_err(StartError::Webhook),
        _ => Ok(Vec::new()),
    }
}

fn log_started(
    tcp_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    tls: bool,
    auth: Option<&Authenticator>,
) {
    let scheme = if tls {
        log::info!("TLS on for the heartbeat listener and the HTTP API");
        "https"
    } else {
        "http"
    };
    log::info!(
        "heartwatch listening for heartbeats on {tcp_addr}{}",
        http_addr.map_or(String::new(), |a| format!(", HTTP API on {scheme}://{a}"))
    );
    if let Some(auth) = auth {
        let store = auth.current();
        log::info!(
            "protocol authentication on: {}{} pattern rules",
            if store.has_global() {
                "a global token and "
            } else {
                ""
            },
            store.rules()
        );
    }
}

/// A running server. Dropping it leaves it running; call [`Running::stop`] to stop it.
pub struct Running {
    tcp_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    heartbeats: Heartbeats,
    events: EventBus,
    metrics: Arc<Metrics>,
    api: ApiState,
    accept: JoinHandle<()>,
    http: Option<ServerHandle>,
    ingests: Ingests,
    arbiters: Vec<Arbiter>,
    journal: Option<Journal>,
    webhooks: Vec<JoinHandle<()>>,
    /// The pipeline's timers and the stall watch.
    background: Vec<JoinHandle<()>>,
    auth: Option<Arc<Authenticator>>,
    tls: Option<ServerTls>,
    cluster: Option<Cluster>,
}

impl Running {
    /// The heartbeat listener's address (useful with port 0).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The HTTP API's address, if it runs on its own listener.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The HTTP ingest's address (`ingest.http`), when it is on.
    pub fn http_ingest_addr(&self) -> Option<SocketAddr> {
        self.ingests.http_addr()
    }

    /// The UDP ingest's address (`ingest.udp`), when it is on.
    pub fn udp_ingest_addr(&self) -> Option<SocketAddr> {
        self.ingests.udp_addr()
    }

    /// The registry: query clients.
    pub fn registry(&self) -> &RegistryHandle {
        self.heartbeats.registry()
    }

    /// Deliver heartbeats and offlines from another transport.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.heartbeats
    }

    /// The subscribers: subscribe more recipients at any time.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Cluster mode's handle, when it is on.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What [`http::configure`] needs to mount the API in another actix-web `App`.
    pub fn api_state(&self) -> ApiState {
        self.api.clone()
    }

    /// Re-reads `auth.tokens_file` (what the binary does on SIGHUP) and puts its tokens in
    /// force for every connection's next frame. On failure (unreadable file, bad pattern) the
    /// error is logged, counted in `heartwatch_auth_reloads_total{result="failed"}` and
    /// returned, and the previous tokens stay in force. Fails with
    /// [`AuthError::NothingToReload`] when no tokens file is configured.
    pub fn reload_tokens(&self) -> Result<Reloaded, AuthError> {
        match &self.auth {
            Some(auth) => auth.reload(),
            None => Err(AuthError::NothingToReload),
        }
    }

    /// Re-reads `tls.cert` and `tls.key` (a renewed certificate): new connections on both
    /// listeners get it, established ones keep theirs. On error the current certificate stays;
    /// either way the outcome is logged and counted in `heartwatch_tls_reloads_total`.
    /// `Ok(false)` when there is nothing to re-read (TLS off, or an application's own rustls
    /// configuration).
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        let Some(tls) = &self.tls else {
            return Ok(false);
        };
        match tls.reload() {
            Ok(reloaded) => {
                if reloaded {
                    self.metrics.tls_reload(ReloadOutcome::Ok);
                    log::info!("TLS certificate reloaded");
                }
                Ok(reloaded)
            }
            Err(e) => {
                self.metrics.tls_reload(ReloadOutcome::Failed);
                log::error!("TLS certificate not reloaded, the current one stays: {e}");
                Err(e)
            }
        }
    }

    /// Stops accepting, stops the HTTP API and the HTTP and UDP ingests, closes every session
    /// and joins the session threads.
    pub async fn stop(self) {
        self.accept.abort();
        // Wait for the accept task to go, so the listening socket is closed on return.
        let _ = self.accept.await;
        if let Some(http) = self.http {
            http.stop(false).await;
        }
        self.ingests.stop().await;
        // In cluster mode the node leaves: its peers take its clients over with their exact
        // deadlines.
        if let Some(cluster) = &self.cluster {
            cluster_node::leave(cluster, self.heartbeats.registry()).await;
        }
        // The registry forgets its clients without announcing anything (they did not go
        // offline; the server went away) and refuses later library calls. Its actors stop
        // with their arbiters.
        let online = self.heartbeats.registry().close().await;
        // A delivery in flight is cut: its cursor was not advanced, so it is sent again after
        // the next start (at least once).
        for task in self.webhooks.iter().chain(&self.background) {
            task.abort();
        }
        if let Some(journal) = &self.journal {
            // The exact state at the stop, last heartbeats included, for the next start.
            journal.snapshot(online);
            journal.close().await;
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        let arbiters = self.arbiters;
        let joined = actix_rt::task::spawn_blocking(move || {
            for arbiter in arbiters {
                let _ = arbiter.join();
            }
        });
        let _ = joined.await;
        log::info!("heartwatch stopped");
    }
}
