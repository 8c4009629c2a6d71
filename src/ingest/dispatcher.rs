//! Where the HTTP and UDP ingests deliver: on the session arbiters, by `proj`.
//!
//! [`Heartbeats::deliver`] starts a new client's actor on the arbiter it is called from. An
//! HTTP handler runs on an actix-web worker and the UDP receiver on one arbiter; delivering
//! from there would put every client of the HTTP ingest on the HTTP worker's thread (which
//! stops with the HTTP server, losing its watchdogs) and every UDP client on one thread.
//! So each delivery runs on a session arbiter chosen by its `proj`, the same one every time
//! for a client: its actor lives there (unless a TCP connection has moved it), its heartbeats
//! reach it without leaving the thread, and that arbiter's share of the route cache is only
//! ever touched from that thread.

use actix::ArbiterHandle;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::answers;
use super::route_cache::RouteCache;
use super::IngestDeps;
use crate::protocol::{Proj, Reply};
use crate::supervision::{BeatError, Heartbeats, Unavailable};

/// Deliveries one ingest may have in flight (handed to an arbiter and not finished). Past
/// this a request is refused with `unavailable` instead of queueing without bound: actix
/// mailboxes and arbiter queues have no backpressure of their own.
pub(crate) const MAX_PENDING: usize = 4096;

/// Too many deliveries are in flight ([`MAX_PENDING`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// Runs one ingest's deliveries. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Dispatcher(Arc<Inner>);

struct Inner {
    heartbeats: Heartbeats,
    shards: Box<[Shard]>,
    pending: AtomicUsize,
}

/// One session arbiter, and the routes of the clients delivered on it.
struct Shard {
    arbiter: ArbiterHandle,
    routes: Mutex<RouteCache>,
}

/// One delivery's place under [`MAX_PENDING`], given back on drop (also when its arbiter
/// stops with the delivery unfinished).
struct Pending(Arc<Inner>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Dispatcher {
    /// Deliveries through `deps.heartbeats` on `deps.arbiters`, remembering the routes of up
    /// to `route_cache` clients (shared out over the arbiters).
    pub(crate) fn new(deps: &IngestDeps, route_cache: usize) -> Self {
        let arbiters = deps.arbiters.len().max(1);
        let per_shard =
            NonZeroUsize::new(route_cache.div_ceil(arbiters)).unwrap_or(NonZeroUsize::MIN);
        let shards = deps
            .arbiters
            .iter()
            .map(|arbiter| Shard {
                arbiter: arbiter.clone(),
                routes: Mutex::new(RouteCache::new(per_shard)),
            })
            .collect();
        Self(Arc::new(Inner {
            heartbeats: deps.heartbeats.clone(),
            shards,
            pending: AtomicUsize::new(0),
        }))
    }

    /// Delivers a heartbeat of `proj` from `addr`, then calls `then` with its ack (or why it
    /// was not delivered) on the arbiter that delivered it. If that arbiter stops first,
    /// `then` is dropped uncalled.
    pub(crate) fn beat<F>(
        &self,
        proj: Proj,
        addr: SocketAddr,
        timeout_ms: Option<u64>,
        seq: Option<u64>,
        then: F,
    ) -> Result<(), Busy>
    where
        F: FnOnce(Result<Reply, BeatError>) + Send + 'static,
    {
        let pending = self.reserve()?;
        let shard = self.0.shard_of(&proj);
        let inner = self.0.clone();
        self.0.shards[shard].arbiter.spawn(async move {
            let route = inner.routes(shard).take(&proj);
            let (result, route) = inner
                .heartbeats
                .deliver(proj.clone(), addr, timeout_ms, route, None)
                .await;
            inner.routes(shard).keep(proj.clone(), route);
            drop(pending);
            then(
                result
                    .map(|delivered| answers::ack(&inner.heartbeats, proj, seq, delivered.timeout)),
            );
        });
        Ok(())
    }

    /// Takes `proj` offline, then calls `then` with whether it was online, as
    /// [`Dispatcher::beat`] does.
    pub(crate) fn offline<F>(&self, proj: Proj, then: F) -> Result<(), Busy>
    where
        F: FnOnce(Result<bool, Unavailable>) + Send + 'static,
    {
        let pending = self.reserve()?;
        let shard = self.0.shard_of(&proj);
        let inner = self.0.clone();
        self.0.shards[shard].arbiter.spawn(async move {
            inner.routes(shard).forget(&proj);
            let result = inner.heartbeats.offline(proj).await;
            drop(pending);
            then(result);
        });
        Ok(())
    }

    fn reserve(&self) -> Result<Pending, Busy> {
        if self.0.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            self.0.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        Ok(Pending(self.0.clone()))
    }

    /// Whether the arbiter of `proj` remembers a route to its actor.
    #[cfg(test)]
    fn knows(&self, proj: &Proj) -> bool {
        self.0.routes(self.0.shard_of(proj)).knows(proj)
    }
}

impl Inner {
    /// The arbiter `proj`'s deliveries run on: the same one for every delivery of a client.
    fn shard_of(&self, proj: &Proj) -> usize {
        // SipHash with fixed keys: the same shard in every run, for reproducible tests.
        let mut hasher = DefaultHasher::new();
        proj.as_str().hash(&mut hasher);
        (hasher.finish() % self.shards.len() as u64) as usize
    }

    fn routes(&self, shard: usize) -> MutexGuard<'_, RouteCache> {
        // Never held across an await; a poisoned lock still holds a usable cache.
        self.shards[shard]
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionConfig;
    use crate::events::Pipeline;
    use crate::metrics::Metrics;
    use crate::supervision::{Detection, Limits, PauseBook, TimeoutPolicy};
    use actix::Arbiter;
    use std::time::Duration;
    use tokio::sync::oneshot;

    fn deps(arbiters: &[Arbiter]) -> IngestDeps {
        let metrics = Arc::new(Metrics::new());
        let policy = TimeoutPolicy {
            default: Duration::from_secs(20),
            min: Duration::from_millis(100),
            max: Duration::from_secs(3600),
        };
        let limits = Limits {
            policy,
            max_clients: 1000,
            max_pending: 1000,
            interval_ratio: 1.0 / 3.0,
        };
        let heartbeats = crate::supervision::start(
            Arbiter::current(),
            limits,
            Pipeline::new(0, Vec::new()),
            Arc::new(Detection::fixed(metrics.clone())),
            PauseBook::default(),
            metrics.clone(),
            None,
        );
        IngestDeps {
            heartbeats,
            auth: None,
            metrics,
            session: SessionConfig::default(),
            max_frame_bytes: 1024,
            arbiters: arbiters.iter().map(Arbiter::handle).collect(),
        }
    }

    async fn beat(dispatcher: &Dispatcher, proj: &Proj) -> Result<Duration, BeatError> {
        let (tx, rx) = oneshot::channel();
        let addr = "127.0.0.1:9".parse().unwrap();
        dispatcher
            .beat(proj.clone(), addr, None, Some(1), move |r| {
                let _ = tx.send(r);
            })
            .unwrap();
        let ack = rx.await.expect("delivered")?;
        let Reply::Ack {
            timeout_ms: Some(ms),
            interval_ms: Some(_),
            seq: Some(1),
            ..
        } = ack
        else {
            panic!("not a heartbeat's ack: {ack:?}")
        };
        Ok(Duration::from_millis(ms))
    }

    #[actix_rt::test]
    async fn a_known_client_is_remembered_until_it_goes_offline() {
        let arbiters = [Arbiter::new(), Arbiter::new()];
        let deps = deps(&arbiters);
        let dispatcher = Dispatcher::new(&deps, 16);
        let proj = Proj::new("D-1").unwrap();
        assert_eq!(beat(&dispatcher, &proj).await, Ok(Duration::from_secs(20)));
        assert!(dispatcher.knows(&proj), "the registry's answer is kept");
        // The next heartbeat takes the route and puts it back.
        assert_eq!(beat(&dispatcher, &proj).await, Ok(Duration::from_secs(20)));
        assert!(dispatcher.knows(&proj));
        let info = deps.heartbeats.registry().get(proj.clone()).await.unwrap();
        assert_eq!(info.map(|i| i.heartbeats), Some(2));
        assert_eq!(deps.metrics.heartbeat_intervals().0, 1);

        let (tx, rx) = oneshot::channel();
        dispatcher
            .offline(proj.clone(), move |r| {
                let _ = tx.send(r);
            })
            .unwrap();
        assert_eq!(rx.await.unwrap(), Ok(true));
        assert!(!dispatcher.knows(&proj));
        // A client back after its offline is a new client, reached through the registry.
        assert_eq!(beat(&dispatcher, &proj).await, Ok(Duration::from_secs(20)));
        assert!(dispatcher.knows(&proj));
        for arbiter in arbiters {
            arbiter.stop();
            arbiter.join().unwrap();
        }
    }

    #[actix_rt::test]
    async fn the_cache_is_bounded_and_forgets_the_least_recently_used() {
        let arbiters = [Arbiter::new()];
        let deps = deps(&arbiters);
        let dispatcher = Dispatcher::new(&deps, 2);
        let [a, b, c] = ["L-a", "L-b", "L-c"].map(|p| Proj::new(p).unwrap());
        for proj in [&a, &b, &a, &c] {
            beat(&dispatcher, proj).await.unwrap();
        }
        assert!(dispatcher.knows(&a) && dispatcher.knows(&c));
        assert!(!dispatcher.knows(&b), "least recently used");
        // A forgotten client still beats, through the registry.
        beat(&dispatcher, &b).await.unwrap();
        let info = deps.heartbeats.registry().get(b.clone()).await.unwrap();
        assert_eq!(info.map(|i| i.heartbeats), Some(2));
        for arbiter in arbiters {
            arbiter.stop();
            arbiter.join().unwrap();
        }
    }

    #[actix_rt::test]
    async fn deliveries_past_the_limit_are_refused_and_their_places_come_back() {
        let arbiters = [Arbiter::new()];
        let deps = deps(&arbiters);
        let dispatcher = Dispatcher::new(&deps, 16);
        let places: Vec<Pending> = (0..MAX_PENDING)
            .map(|_| dispatcher.reserve().unwrap())
            .collect();
        let proj = Proj::new("D-2").unwrap();
        let addr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            dispatcher.beat(proj.clone(), addr, None, None, |_| {}),
            Err(Busy)
        );
        assert_eq!(dispatcher.offline(proj.clone(), |_| {}), Err(Busy));
        drop(places);
        assert_eq!(beat(&dispatcher, &proj).await, Ok(Duration::from_secs(20)));
        assert_eq!(dispatcher.0.pending.load(Ordering::Acquire), 0);
        for arbiter in arbiters {
            arbiter.stop();
            arbiter.join().unwrap();
        }
    }

    #[actix_rt::test]
    async fn a_stopped_arbiter_drops_the_delivery_and_its_place() {
        let arbiters = [Arbiter::new()];
        let deps = deps(&arbiters);
        let dispatcher = Dispatcher::new(&deps, 16);
        for arbiter in arbiters {
            arbiter.stop();
            arbiter.join().unwrap();
        }
        let (tx, rx) = oneshot::channel::<Result<Reply, BeatError>>();
        let addr = "127.0.0.1:9".parse().unwrap();
        dispatcher
            .beat(Proj::new("D-3").unwrap(), addr, None, None, move |r| {
                let _ = tx.send(r);
            })
            .unwrap();
        assert!(rx.await.is_err(), "`then` is dropped uncalled");
        assert_eq!(dispatcher.0.pending.load(Ordering::Acquire), 0);
    }
}
