//! Monitor and registry behaviour on paused tokio time: every deadline is exact and a 20 s
//! watchdog takes microseconds of real time.
//!
//! With time paused, the runtime advances the clock only when every task is idle, so after
//! `sleep(d)` returns, every timer due before `d` has fired and its consequences (events,
//! registry updates) have been processed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, Context, Handler, Message};
use tokio::time::sleep;

use super::client::Client;
use super::registry::IDLE_STOP_AFTER;
use super::*;
use crate::events::{Event, EventBus, OfflineReason, Pipeline, Stage};
use crate::metrics::Metrics;
use crate::protocol::Proj;

#[derive(Default)]
struct Collector(Vec<Event>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Event> for Collector {
    type Result = ();
    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        self.0.push(event);
    }
}

#[derive(Message)]
#[rtype(result = "Vec<Event>")]
struct Take;

impl Handler<Take> for Collector {
    type Result = actix::MessageResult<Take>;
    fn handle(&mut self, _: Take, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(std::mem::take(&mut self.0))
    }
}

struct Fixture {
    heartbeats: Heartbeats,
    registry: RegistryHandle,
    metrics: Arc<Metrics>,
    events: Addr<Collector>,
    detection: Arc<Detection>,
}

const TIMEOUT: Duration = Duration::from_secs(20);
const MS: Duration = Duration::from_millis(1);
const MAX_CLIENTS: usize = 100;
const MAX_PENDING: usize = 10_000;

fn fixture() -> Fixture {
    fixture_with(Detection::fixed, Stage::default())
}

/// A fixture whose clients are judged by the detection `detection` builds (given the metrics),
/// with `stage` between the registry and the sinks (its timers running).
fn fixture_with(
    detection: impl FnOnce(Arc<Metrics>) -> Detection,
    stage: crate::events::Stage,
) -> Fixture {
    fixture_limited(detection, stage, MAX_PENDING)
}

/// [`fixture_with`], with at most `max_pending` heartbeats on their way through the registry.
fn fixture_limited(
    detection: impl FnOnce(Arc<Metrics>) -> Detection,
    stage: crate::events::Stage,
    max_pending: usize,
) -> Fixture {
    thread_local! {
        /// Whether this test's clock is paused already (a test may build several fixtures).
        static PAUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !PAUSED.replace(true) {
        tokio::time::pause();
    }
    let bus = EventBus::new();
    let events = Collector::default().start();
    bus.subscribe(events.clone().recipient());
    let metrics = Arc::new(Metrics::new());
    let policy = TimeoutPolicy {
        default: TIMEOUT,
        ..TimeoutPolicy::default()
    };
    let pipeline = Pipeline::with_stage(0, vec![Box::new(bus)], stage);
    actix::spawn(pipeline.clone().housekeeping());
    let detection = Arc::new(detection(metrics.clone()));
    let limits = Limits {
        policy,
        max_clients: MAX_CLIENTS,
        max_pending,
        interval_ratio: 1.0 / 3.0,
    };
    let heartbeats = start(
        Arbiter::current(),
        limits,
        pipeline,
        detection.clone(),
        PauseBook::default(),
        metrics.clone(),
        None,
    );
    Fixture {
        registry: heartbeats.registry().clone(),
        heartbeats,
        metrics,
        events,
        detection,
    }
}

fn proj(s: &str) -> Proj {
    Proj::new(s).unwrap()
}

fn addr() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

/// A delivered heartbeat: the timeout in force, and the route a connection would keep.
struct Beaten {
    timeout: Duration,
    route: Option<Box<Route>>,
}

impl Beaten {
    fn client(&self) -> Addr<Client> {
        self.route.as_ref().expect("a route").client.clone()
    }
}

impl Fixture {
    async fn beat(&self, p: &str, timeout_ms: Option<u64>) -> Beaten {
        self.beat_via(p, timeout_ms, None).await
    }

    /// Like a connection that keeps the route of its last heartbeat.
    async fn beat_via(
        &self,
        p: &str,
        timeout_ms: Option<u64>,
        route: Option<Box<Route>>,
    ) -> Beaten {
        let (delivered, route) = self
            .heartbeats
            .deliver(proj(p), addr(), timeout_ms, route, None)
            .await;
        Beaten {
            timeout: delivered.expect("heartbeat delivered").timeout,
            route,
        }
    }

    async fn online(&self, p: &str) -> bool {
        self.registry.get(proj(p)).await.unwrap().is_some()
    }

    /// (event, proj, reason) for each event since the last call.
    async fn events(&self) -> Vec<(&'static str, String, Option<OfflineReason>)> {
        self.events
            .send(Take)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                let reason = match &e {
                    Event::Offline { reason, .. } => Some(*reason),
                    _ => None,
                };
                let proj = e.proj().map(Proj::to_string).unwrap_or_default();
                (e.kind(), proj, reason)
            })
            .collect()
    }
}

fn heartbeat(p: &str, timeout_ms: Option<u64>) -> Heartbeat {
    Heartbeat {
        proj: proj(p),
        addr: addr(),
        timeout_ms,
    }
}

#[actix_rt::test]
async fn watchdog_fires_at_the_deadline_and_not_before() {
    let f = fixture();
    f.beat("P-17", None).await;
    assert_eq!(f.events().await, [("online", "P-17".into(), None)]);

    sleep(TIMEOUT - MS).await;
    assert!(f.online("P-17").await, "offline before its deadline");
    assert!(f.events().await.is_empty());

    sleep(2 * MS).await;
    assert!(!f.online("P-17").await, "still online after its deadline");
    assert_eq!(
        f.events().await,
        [("offline", "P-17".into(), Some(OfflineReason::Timeout))]
    );
    assert_eq!(f.metrics.offline_total(OfflineReason::Timeout), 1);
}

#[actix_rt::test]
async fn a_heartbeat_pushes_the_deadline_back() {
    let f = fixture();
    f.beat("P", None).await;
    for _ in 0..10 {
        sleep(TIMEOUT - MS).await;
        f.beat("P", None).await;
    }
    // Ten timeouts have passed since the first heartbeat, none since the last.
    sleep(TIMEOUT - MS).await;
    assert!(f.online("P").await);
    sleep(2 * MS).await;
    assert!(!f.online("P").await);
    let info_events = f.events().await;
    assert_eq!(info_events.len(), 2, "{info_events:?}");
    assert_eq!(f.metrics.heartbeats(), 11);
}

#[actix_rt::test]
async fn a_client_timeout_is_clamped_and_sticky() {
    let f = fixture();
    let first = f.beat("P", Some(1_500)).await;
    assert_eq!(first.timeout, Duration::from_millis(1_500));
    // Without timeout_ms the client keeps the one it asked for.
    sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        f.beat("P", None).await.timeout,
        Duration::from_millis(1_500)
    );
    sleep(Duration::from_millis(1_499)).await;
    assert!(f.online("P").await);
    sleep(2 * MS).await;
    assert!(!f.online("P").await);

    // Below the minimum: clamped to 100 ms.
    assert_eq!(
        f.beat("Q", Some(1)).await.timeout,
        Duration::from_millis(100)
    );
    sleep(Duration::from_millis(99)).await;
    assert!(f.online("Q").await);
    sleep(2 * MS).await;
    assert!(!f.online("Q").await);

    // A later heartbeat may shorten it: the pending deadline moves earlier.
    f.beat("R", Some(10_000)).await;
    f.beat("R", Some(200)).await;
    sleep(Duration::from_millis(201)).await;
    assert!(!f.online("R").await);
}

#[actix_rt::test]
async fn offline_removes_at_once() {
    let f = fixture();
    f.beat("P", None).await;
    assert!(f.heartbeats.offline(proj("P")).await.unwrap());
    assert!(
        !f.online("P").await,
        "a query after the ack sees the removal"
    );
    assert_eq!(
        f.events().await,
        [
            ("online", "P".into(), None),
            ("offline", "P".into(), Some(OfflineReason::Offline))
        ]
    );
    // Idempotent, and no later timeout for a client that left.
    assert!(!f.heartbeats.offline(proj("P")).await.unwrap());
    sleep(TIMEOUT * 2).await;
    assert!(f.events().await.is_empty());
    assert_eq!(f.metrics.clients(), 0);
}

#[actix_rt::test]
async fn registry_stops_when_empty_and_starts_again() {
    let f = fixture();
    assert!(!f.registry.is_running());
    assert!(!f.metrics.is_registry_running());
    // Queries do not start it.
    assert!(f.registry.list(List::default()).await.unwrap().is_empty());
    assert!(!f.registry.is_running());

    f.beat("A", None).await;
    f.beat("B", Some(30_000)).await;
    assert!(f.registry.is_running());
    assert!(f.metrics.is_registry_running());
    assert_eq!(f.metrics.clients(), 2);

    sleep(TIMEOUT + MS).await;
    assert!(f.registry.is_running(), "B is still online");
    // B expires at 30 s; the empty registry lingers for IDLE_STOP_AFTER, then stops.
    sleep(Duration::from_secs(10) + IDLE_STOP_AFTER - 2 * MS).await;
    assert!(
        f.metrics.is_registry_running(),
        "lingers while briefly empty"
    );
    sleep(2 * MS).await;
    assert!(!f.metrics.is_registry_running(), "stopped when empty");
    assert_eq!(f.metrics.clients(), 0);

    f.beat("A", None).await;
    assert!(f.registry.is_running());
    assert!(f.metrics.is_registry_running());
    assert!(f.online("A").await);
}

/// The lazy stop/start must not lose a heartbeat that arrives while the registry is stopping:
/// here the empty registry's idle stop (the last client's deadline plus `IDLE_STOP_AFTER`)
/// falls in the same instant as another client's first heartbeat, at every offset around it.
#[actix_rt::test]
async fn no_heartbeat_is_lost_while_the_registry_stops() {
    let f = fixture();
    for round in 0..200u64 {
        f.beat("last", Some(100)).await;
        // A heartbeat for a new client, sent 1 ms before, at, or 1 ms after the stop.
        let offset = Duration::from_millis(99 + round % 3) + IDLE_STOP_AFTER;
        let heartbeats = f.heartbeats.clone();
        let newcomer = actix_rt::spawn(async move {
            sleep(offset).await;
            heartbeats.beat(heartbeat("new", Some(100))).await
        });
        newcomer
            .await
            .unwrap()
            .expect("heartbeat lost around a registry stop");
        assert!(f.online("new").await, "round {round}");
        // Let it expire: the registry stops, and the next round restarts it.
        sleep(Duration::from_millis(150) + IDLE_STOP_AFTER).await;
        assert!(!f.registry.is_running(), "round {round}");
    }
}

/// Heartbeats and offlines of one client from several tasks, as fast as they go: every call
/// succeeds and the per-client events alternate online/offline.
#[actix_rt::test]
async fn tight_loop_of_heartbeats_and_offlines() {
    let f = fixture();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let heartbeats = f.heartbeats.clone();
        tasks.push(actix_rt::spawn(async move {
            // Like a connection: keep the route of the last heartbeat.
            let mut route = None;
            for i in 0..500 {
                if (i + worker) % 2 == 0 {
                    let (delivered, next) = heartbeats
                        .deliver(proj("P"), addr(), None, route.take(), None)
                        .await;
                    delivered.expect("heartbeat delivered");
                    route = next;
                } else {
                    heartbeats
                        .offline(proj("P"))
                        .await
                        .expect("offline delivered");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let events = f.events().await;
    assert!(!events.is_empty());
    for (i, (kind, _, _)) in events.iter().enumerate() {
        let expected = if i % 2 == 0 { "online" } else { "offline" };
        assert_eq!(*kind, expected, "event {i} of {events:?}");
    }
    let online = f.online("P").await;
    assert_eq!(
        online,
        events.len() % 2 == 1,
        "state matches the last event"
    );
    assert_eq!(f.metrics.clients(), i64::from(online));
}

/// A route to an actor whose client has expired is replaced at once: offline (timeout) is
/// published before the new online.
#[actix_rt::test]
async fn a_stale_route_is_replaced_in_order() {
    let f = fixture();
    let first = f.beat("P", Some(100)).await;
    let first_client = first.client();
    sleep(Duration::from_millis(101)).await;
    let second = f.beat_via("P", None, first.route).await;
    assert_ne!(first_client, second.client());
    assert_eq!(
        f.events().await,
        [
            ("online", "P".into(), None),
            ("offline", "P".into(), Some(OfflineReason::Timeout)),
            ("online", "P".into(), None),
        ]
    );
    // The new monitor starts from the default timeout: the old one's is gone with it.
    assert_eq!(second.timeout, TIMEOUT);
    let info = f.registry.get(proj("P")).await.unwrap().unwrap();
    assert_eq!(info.heartbeats, 1);
}

#[actix_rt::test]
async fn list_pages_in_proj_order() {
    let f = fixture();
    for p in ["c", "a", "d", "b"] {
        f.beat(p, None).await;
    }
    let page = |after: Option<&str>, limit| List {
        state: None,
        after: after.map(proj),
        limit,
    };
    let names = |v: Vec<ClientInfo>| {
        v.into_iter()
            .map(|c| c.proj.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(f.registry.list(page(None, None)).await.unwrap()),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        names(f.registry.list(page(None, Some(2))).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(f.registry.list(page(Some("b"), Some(2))).await.unwrap()),
        ["c", "d"]
    );
    assert!(f
        .registry
        .list(page(Some("d"), None))
        .await
        .unwrap()
        .is_empty());
}

/// A heartbeat that meets its own watchdog: at every offset around the deadline it either
/// lands first (no offline) or finds the client removed and brings it back (offline, then
/// online). It is never acknowledged for a client left offline.
#[actix_rt::test]
async fn a_heartbeat_at_the_deadline_is_never_lost() {
    let f = fixture();
    for round in 0..60u64 {
        let first = f.beat("P", Some(100)).await;
        let offset = Duration::from_millis(99 + round % 3);
        sleep(offset).await;
        let again = f.beat_via("P", Some(100), first.route).await;
        assert_eq!(again.timeout, Duration::from_millis(100));
        assert!(f.online("P").await, "round {round}: acked but offline");
        let events = f.events().await;
        let kinds: Vec<_> = events.iter().map(|(k, _, _)| *k).collect();
        let fine = kinds.is_empty()
            || kinds == ["online"]
            || kinds == ["offline", "online"]
            || kinds == ["online", "offline", "online"];
        assert!(fine, "round {round}: {events:?}");
        assert!(f.heartbeats.offline(proj("P")).await.unwrap());
        f.events().await;
    }
}

#[actix_rt::test]
async fn close_stops_everything_without_events() {
    let f = fixture();
    f.beat("A", None).await;
    f.beat("B", None).await;
    f.events().await;
    f.registry.close().await;
    assert!(!f.registry.is_running());
    assert_eq!(f.metrics.clients(), 0);
    assert!(
        f.heartbeats.beat(heartbeat("C", None)).await.is_err(),
        "closed for good"
    );
    assert_eq!(
        f.registry.get(proj("A")).await,
        Err(Unavailable),
        "queries say the server is going away, not that nobody is online"
    );
    sleep(TIMEOUT * 2).await;
    assert!(
        f.events().await.is_empty(),
        "no offline for a server that stops"
    );
}

#[actix_rt::test]
async fn a_new_client_past_max_clients_is_refused_without_harm() {
    let f = fixture();
    for i in 0..MAX_CLIENTS {
        f.beat(&format!("C-{i}"), None).await;
    }
    let request = heartbeat("one-too-many", None);
    assert_eq!(
        f.heartbeats.beat(request.clone()).await.unwrap_err(),
        BeatError::TooManyClients(Full { max: MAX_CLIENTS })
    );
    assert!(!f.online("one-too-many").await);
    // Online clients still beat, and a place freed is a place taken.
    f.beat("C-0", None).await;
    assert!(f.heartbeats.offline(proj("C-1")).await.unwrap());
    assert!(f.heartbeats.beat(request).await.is_ok());
    assert_eq!(f.metrics.clients(), MAX_CLIENTS as i64);
}

fn recovered(p: &str, timeout: Duration) -> crate::storage::RecoveredClient {
    crate::storage::RecoveredClient {
        proj: proj(p),
        addr: addr(),
        last_seen: std::time::SystemTime::UNIX_EPOCH,
        timeout,
        timeout_requested: true,
    }
}

#[actix_rt::test]
async fn recovered_clients_get_a_fresh_watchdog_and_no_second_online() {
    let f = fixture();
    let start = tokio::time::Instant::now();
    let at = |d: Duration| tokio::time::sleep_until(start + d);
    f.registry.recover(vec![
        recovered("SILENT", Duration::from_secs(10)),
        recovered("BACK", Duration::from_secs(10)),
    ]);
    at(MS).await;
    assert!(f.online("SILENT").await && f.online("BACK").await);
    assert_eq!(f.metrics.clients(), 2);
    assert_eq!(
        f.registry
            .get(proj("BACK"))
            .await
            .unwrap()
            .unwrap()
            .heartbeats,
        0
    );

    at(Duration::from_secs(5)).await;
    f.beat("BACK", None).await;
    assert!(
        f.events().await.is_empty(),
        "a returning client is announced again"
    );

    // The silent one goes at its own timeout after the restart, with the restart reason.
    at(Duration::from_secs(10) - MS).await;
    assert!(f.online("SILENT").await, "offline before its deadline");
    at(Duration::from_secs(10) + 2 * MS).await;
    assert_eq!(
        f.events().await,
        [(
            "offline",
            "SILENT".into(),
            Some(OfflineReason::TimeoutAfterRestart)
        )]
    );
    // The one that came back is an ordinary client again: its watchdog restarted at its beat
    // (10 s, its recovered timeout) and it times out with the ordinary reason.
    at(Duration::from_secs(15) - MS).await;
    assert!(f.online("BACK").await);
    at(Duration::from_secs(15) + 2 * MS).await;
    assert_eq!(
        f.events().await,
        [("offline", "BACK".into(), Some(OfflineReason::Timeout))]
    );
    assert_eq!(
        f.metrics.offline_total(OfflineReason::TimeoutAfterRestart),
        1
    );
    assert_eq!(f.metrics.clients(), 0);
}

#[actix_rt::test]
async fn an_explicit_offline_of_a_recovered_client_is_an_offline() {
    let f = fixture();
    f.registry
        .recover(vec![recovered("P", Duration::from_secs(10))]);
    assert!(f.heartbeats.offline(proj("P")).await.unwrap());
    assert_eq!(
        f.events().await,
        [("offline", "P".into(), Some(OfflineReason::Offline))]
    );
}

/// A client that never asked for a timeout follows the server's default after a restart:
/// here the log says 3 s, the restarted server's default is 20 s.
#[actix_rt::test]
async fn a_recovered_defaulted_timeout_follows_the_current_default() {
    let f = fixture();
    let mut defaulted = recovered("DEFAULTED", Duration::from_secs(3));
    defaulted.timeout_requested = false;
    f.registry
        .recover(vec![defaulted, recovered("ASKED", Duration::from_secs(3))]);
    let defaulted = f.registry.get(proj("DEFAULTED")).await.unwrap().unwrap();
    let asked = f.registry.get(proj("ASKED")).await.unwrap().unwrap();
    assert_eq!(defaulted.timeout_ms, 20_000);
    assert_eq!(asked.timeout_ms, 3_000);
    // A heartbeat without timeout_ms keeps each as it is.
    assert_eq!(f.beat("DEFAULTED", None).await.timeout, TIMEOUT);
    assert_eq!(f.beat("ASKED", None).await.timeout, Duration::from_secs(3));
}

/// An embedding application's arbiter that hosted a client's actor is stopped: the client is
/// not left online forever. The registry watches it again, and it goes offline at its own
/// deadline.
#[actix_rt::test]
async fn a_watchdog_lost_with_its_arbiter_is_rearmed() {
    let f = fixture();
    let arbiter = Arbiter::new();
    let heartbeats = f.heartbeats.clone();
    let (done, beaten) = tokio::sync::oneshot::channel();
    arbiter.spawn(async move {
        let ack = heartbeats.beat(heartbeat("ORPHAN", Some(5_000))).await;
        let _ = done.send(ack);
    });
    beaten.await.unwrap().expect("delivered");
    arbiter.stop();
    arbiter.join().unwrap();
    // The actor was dropped with its arbiter; the registry hears of it and re-arms.
    for _ in 0..100 {
        if f.metrics.watchdogs_lost() == 1 {
            break;
        }
        sleep(MS).await;
    }
    assert_eq!(f.metrics.watchdogs_lost(), 1);
    assert!(f.online("ORPHAN").await);
    sleep(Duration::from_secs(6)).await;
    assert!(!f.online("ORPHAN").await, "immortal after its arbiter died");
    assert_eq!(
        f.events().await,
        [
            ("online", "ORPHAN".into(), None),
            ("offline", "ORPHAN".into(), Some(OfflineReason::Timeout))
        ]
    );
}

/// Found by the property test (tests/registry_model.rs): a 2 s client beating again 1 ms
/// before its deadline must keep its 2 s timeout.
#[actix_rt::test]
async fn a_heartbeat_just_before_the_deadline_keeps_the_client() {
    let f = fixture();
    assert_eq!(
        f.beat("P", Some(2_000)).await.timeout,
        Duration::from_millis(2_000)
    );
    sleep(Duration::from_millis(1_430)).await;
    sleep(Duration::from_millis(569)).await;
    assert_eq!(
        f.beat("P", None).await.timeout,
        Duration::from_millis(2_000)
    );
    assert_eq!(f.events().await, [("online", "P".into(), None)]);
}

mod detection;
mod traces;
