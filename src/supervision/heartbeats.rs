//! The one way a heartbeat or an offline reaches supervision, from any ingest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Arbiter};

use super::client::{Beat, Client};
use super::client_record::{Applied, ClientRecord, Pulse, Removed};
use super::detector::Detection;
use super::registry::{Full, Relocate, Resolve};
use super::registry_handle::{RegistryHandle, Unavailable};
use super::timeout_policy::TimeoutPolicy;
use crate::metrics::Metrics;
use crate::protocol::Proj;

/// A heartbeat that was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeatError {
    /// The server is shutting down.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// A new client would exceed `server.max_clients`.
    #[error(transparent)]
    TooManyClients(#[from] Full),
    /// Too many heartbeats wait for the registry (`server.max_pending`): a client not online
    /// yet is asked to come back later.
    #[error("the server is overloaded (too many clients coming online at once); retry in {} ms", retry_after.as_millis())]
    Overloaded {
        /// When to try again.
        retry_after: Duration,
    },
}

/// How long a client refused because the server is shutting down should wait: about as long as
/// a restart takes.
pub const RETRY_AFTER_SHUTDOWN: Duration = Duration::from_secs(1);

impl BeatError {
    /// How long the refused client should wait before it tries again, if it should.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BeatError::Unavailable(_) => Some(RETRY_AFTER_SHUTDOWN),
            BeatError::Overloaded { retry_after } => Some(*retry_after),
            BeatError::TooManyClients(_) => None,
        }
    }
}

/// A heartbeat, from whatever transport.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// The client.
    pub proj: Proj,
    /// Where it came from.
    pub addr: SocketAddr,
    /// The timeout the client asks for, in milliseconds (not yet clamped), if any. Once asked
    /// for, a timeout stays until the client asks for another or goes offline; a client that
    /// never asks follows the server's default.
    pub timeout_ms: Option<u64>,
}

/// A heartbeat took effect: a query made after this sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatAck {
    /// The client's watchdog timeout from now on.
    pub timeout: Duration,
    /// How often the client should beat: its timeout times `server.interval_ratio`.
    pub interval: Duration,
}

/// A client's actor, remembered by a connection that delivers that client's heartbeats
/// without hosting it (a gateway carrying several clients, a client's second connection): its
/// next heartbeats go straight to the actor.
#[derive(Debug)]
pub(crate) struct Route {
    pub proj: Proj,
    pub client: Addr<Client>,
}

/// Whether the actor a heartbeat reached has no connection, so that the connection that
/// delivered it could be handed to it.
#[derive(Debug, Clone)]
pub(crate) enum Vacancy {
    /// It has one, or this is not known.
    Taken,
    /// It has none and runs on the caller's thread: attach the connection to it.
    Here(Addr<Client>),
    /// It has none and runs on another thread: ask the registry to move it here first.
    Elsewhere(Addr<Client>),
}

/// A heartbeat delivered through [`Heartbeats::deliver`].
#[derive(Debug)]
pub(crate) struct Delivered {
    pub timeout: Duration,
    pub vacancy: Vacancy,
    /// The registry made the caller (`host`) the client's actor: its record.
    pub adopted: Option<super::registry::Adopted>,
}

/// Delivers heartbeats and offlines: the TCP connections, the library, and every other ingest
/// go through it, so that the clamp of a requested timeout and the heartbeat metric happen in
/// one place, and so does the rule of delivery.
///
/// # Why no heartbeat is lost
/// - To a client's actor (the steady state): the actor refuses a heartbeat only once the
///   registry has removed its client or moved it to a new actor (the decision and the
///   heartbeat meet under the client record's lock), and a stopped actor answers `Closed`.
///   Either way the heartbeat goes to the registry.
/// - To the registry: it applies a heartbeat in its handler, to the record of an online client
///   or by bringing the client online, so a heartbeat that reaches a running registry always
///   takes effect (see [`RegistryHandle`] for a registry that is stopping).
///
/// Cheap to clone; usable from any thread of the System.
#[derive(Clone)]
pub struct Heartbeats {
    registry: RegistryHandle,
    policy: TimeoutPolicy,
    /// The interval suggested to a client, as a fraction of its timeout.
    interval_ratio: f64,
    detection: Arc<Detection>,
    metrics: Arc<Metrics>,
}

impl Heartbeats {
    pub(crate) fn new(
        registry: RegistryHandle,
        policy: TimeoutPolicy,
        interval_ratio: f64,
        detection: Arc<Detection>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            registry,
            policy,
            interval_ratio,
            detection,
            metrics,
        }
    }

    /// How often a client with this timeout should beat (`interval_ms` in acks), to the
    /// nearest millisecond.
    pub fn interval(&self, timeout: Duration) -> Duration {
        let ms = timeout.as_secs_f64() * 1000.0 * self.interval_ratio;
        Duration::from_millis(ms.round() as u64)
    }

    /// Delivers one heartbeat, bringing its client online if it was not; returns once it has
    /// taken effect. Its client's watchdog runs on the caller's actix arbiter (or the server's
    /// own when called from outside one).
    pub async fn beat(&self, heartbeat: Heartbeat) -> Result<BeatAck, BeatError> {
        let (delivered, _) = self
            .deliver(
                heartbeat.proj,
                heartbeat.addr,
                heartbeat.timeout_ms,
                None,
                None,
            )
            .await;
        delivered.map(|d| BeatAck {
            timeout: d.timeout,
            interval: self.interval(d.timeout),
        })
    }

    /// Takes `proj` offline now (an explicit offline). Answers whether it was online.
    pub async fn offline(&self, proj: Proj) -> Result<bool, Unavailable> {
        self.registry.leave(proj).await
    }

    /// The timeout rules in force.
    pub fn policy(&self) -> TimeoutPolicy {
        self.policy
    }

    /// The registry, for queries.
    pub fn registry(&self) -> &RegistryHandle {
        &self.registry
    }

    /// Applies a heartbeat to a record its caller holds: the client's own actor, for a
    /// heartbeat on the connection it hosts.
    pub(crate) fn apply(
        &self,
        record: &ClientRecord,
        addr: SocketAddr,
        timeout_ms: Option<u64>,
        at: crate::clock::Instant,
    ) -> Result<Applied, Removed> {
        let applied = record.beat(Pulse::at(addr, self.clamp(timeout_ms), at), &self.detection)?;
        self.metrics.heartbeat(applied.interval);
        Ok(applied)
    }

    /// Delivers a heartbeat for `proj`: straight to the actor `route` remembers, if it is
    /// that client's; otherwise (or if that actor refuses) through the registry. With a
    /// `host`, an actor that owns the caller's connection offers itself as the client's actor
    /// if the client is not online. Returns the route to remember for the next heartbeat.
    pub(crate) async fn deliver(
        &self,
        proj: Proj,
        addr: SocketAddr,
        timeout_ms: Option<u64>,
        route: Option<Box<Route>>,
        host: Option<Addr<Client>>,
    ) -> (Result<Delivered, BeatError>, Option<Box<Route>>) {
        let timeout = self.clamp(timeout_ms);
        if let Some(route) = route.filter(|r| r.proj == proj) {
            if let Ok(Ok(ack)) = route.client.send(Beat { addr, timeout }).await {
                self.metrics.heartbeat(ack.interval);
                let vacancy = match ack.vacant {
                    Some(thread) if thread == std::thread::current().id() => {
                        Vacancy::Here(route.client.clone())
                    }
                    Some(_) => Vacancy::Elsewhere(route.client.clone()),
                    None => Vacancy::Taken,
                };
                let delivered = Delivered {
                    timeout: ack.timeout,
                    vacancy,
                    adopted: None,
                };
                return (Ok(delivered), Some(route));
            }
        }
        let resolve = Resolve {
            proj: proj.clone(),
            addr,
            timeout,
            home: Arbiter::try_current().unwrap_or_else(|| self.registry.home()),
            host,
            shed: None,
        };
        match self.registry.resolve(resolve).await {
            Ok(resolved) => {
                self.metrics.heartbeat(resolved.interval);
                let vacancy = if resolved.created && resolved.adopted.is_none() {
                    Vacancy::Here(resolved.client.clone())
                } else {
                    Vacancy::Taken
                };
                let route = resolved.adopted.is_none().then(|| {
                    Box::new(Route {
                        proj,
                        client: resolved.client,
                    })
                });
                let delivered = Delivered {
                    timeout: resolved.timeout,
                    vacancy,
                    adopted: resolved.adopted,
                };
                (Ok(delivered), route)
            }
            Err(e) => (Err(e), None),
        }
    }

    /// Moves `proj`'s actor `from` to the caller's thread (it has no connection; the caller's
    /// connection is about to be handed to the new one). `None` if it is no longer that
    /// client's actor.
    pub(crate) async fn relocate(&self, proj: Proj, from: Addr<Client>) -> Option<Addr<Client>> {
        let home = Arbiter::try_current()?;
        self.registry.relocate(Relocate { proj, from, home }).await
    }

    fn clamp(&self, timeout_ms: Option<u64>) -> Option<Duration> {
        timeout_ms.map(|ms| self.policy.clamp_ms(ms))
    }
}
