// The cluster layer against a real redis-server (started per test on a free port): claims
// and handover fencing, exactly one offline, node death and adoption caps, a frozen Redis,
// replay after an outage, a clean leave.
//
// Without redis-server on PATH these tests are skipped (failed under `CI`), see
// `common::redis::INSTALL`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::redis_server::{CutProxy, RedisServer};
use crate::cluster::{
    ClaimToken, Cluster, ClusterConfig, ClusterFeeds, ClusterOptions, Command, StreamEvent,
    Transition,
};
use crate::protocol::Proj;
use crate::{Event, OfflineReason};
use serde_json::Value;

const RENEW: Duration = Duration::from_millis(100);
const DEAD_AFTER: Duration = Duration::from_millis(600);

fn config(url: &str, name: &str) -> ClusterConfig {
    ClusterConfig {
        redis: url.to_string(),
        node: name.to_string(),
        key_prefix: "t".into(),
        renew_interval: RENEW,
        dead_after: DEAD_AFTER,
        stream_max_len: 10_000,
    }
}

fn addr() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

async fn node(url: &str, name: &str) -> (Cluster, ClusterFeeds) {
    Cluster::start(
        &config(url, name),
        ClusterOptions {
            listen: addr(),
            http: None,
            journal: None,
            webhooks: None,
            outage_webhooks: Default::default(),
        },
    )
    .await
    .expect("cluster starts")
}

fn proj(p: &str) -> Proj {
    Proj::new(p).unwrap()
}

fn claim(p: &str, timeout: Duration) -> (Transition, ClaimToken) {
    let token = ClaimToken::new();
    let t = Transition::Online {
        event: Event::Online {
            proj: proj(p),
            addr: addr(),
            at: SystemTime::now(),
            recovered: false,
            outage: None,
        },
        token: token.clone(),
        timeout,
        quiet: false,
    };
    (t, token)
}

fn offline(p: &str, token: &ClaimToken, lost_node: Option<&str>) -> Transition {
    Transition::Offline {
        event: Event::Offline {
            proj: proj(p),
            reason: OfflineReason::Timeout,
            addr: addr(),
            last_seen: SystemTime::now(),
            at: SystemTime::now(),
            evidence: None,
            outage: None,
        },
        token: token.clone(),
        lost_node: lost_node.map(str::to_string),
        quiet: false,
    }
}

async fn events(cluster: &Cluster) -> Vec<StreamEvent> {
    cluster.events_after("0-0", 10_000).await.expect("events")
}

fn json(e: &StreamEvent) -> Value {
    serde_json::from_str(&e.json).unwrap()
}

async fn next_command(feeds: &mut ClusterFeeds, within: Duration) -> Command {
    tokio::time::timeout(within, feeds.commands.recv())
        .await
        .expect("a command in time")
        .expect("feed open")
}

/// Waits (bounded) until both nodes are in the nodes list as alive.
async fn joined(cluster: &Cluster, names: &[&str]) {
    super::eventually(Duration::from_secs(5), "nodes joined", || async {
        let nodes = cluster.nodes().await.unwrap_or_default();
        names
            .iter()
            .all(|n| nodes.iter().any(|i| i.node == *n && i.state == "alive"))
    })
    .await;
}

#[actix_rt::test]
async fn a_claim_is_one_online_and_a_move_is_silent_and_fences_the_old_owner() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (n1, mut f1) = node(&redis.url(), "n1").await;
    let (n2, _f2) = node(&redis.url(), "n2").await;
    joined(&n1, &["n1", "n2"]).await;

    let (c1, t1) = claim("P-1", Duration::from_secs(5));
    n1.transition(c1);
    n1.flushed().await;
    let list = n2.clients(None, 100).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].proj.as_str(), list[0].node.as_str()),
        ("P-1", "n1")
    );
    let evs = events(&n1).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(json(&evs[0])["event"], "online");
    assert_eq!(json(&evs[0])["node"], "n1");

    // The client's connection moves to n2: no event, n1 is told to evict the old claim.
    let (c2, t2) = claim("P-1", Duration::from_secs(5));
    n2.transition(c2);
    n2.flushed().await;
    assert_eq!(events(&n1).await.len(), 1, "a move is not an event");
    assert_eq!(
        next_command(&mut f1, Duration::from_secs(3)).await,
        Command::Evict {
            proj: proj("P-1"),
            token: t1.clone()
        }
    );
    let got = n1.client(&proj("P-1")).await.unwrap().expect("listed");
    assert_eq!(got.node, "n2");

    // n1's stale watchdog fires anyway: fenced, nothing published.
    n1.transition(offline("P-1", &t1, None));
    n1.flushed().await;
    assert_eq!(events(&n1).await.len(), 1);
    assert_eq!(
        n1.stats().fenced.load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // n2's offline is the one offline, and a replay of it (a reply lost to a timeout) is not
    // a second one.
    n2.transition(offline("P-1", &t2, None));
    n2.transition(offline("P-1", &t2, None));
    n2.flushed().await;
    let evs = events(&n2).await;
    assert_eq!(evs.len(), 2);
    assert_eq!(json(&evs[1])["event"], "offline");
    assert_eq!(json(&evs[1])["node"], "n2");
    assert!(n1.clients(None, 10).await.unwrap().is_empty());
    n1.stop().await;
    n2.stop().await;
}

#[actix_rt::test]
async fn a_replayed_claim_older_than_the_one_in_force_is_stale_and_evicted() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = CutProxy::start(redis.port).await;
    let (n1, mut f1) = node(&proxy.url(), "n1").await;
    let (n2, _f2) = node(&redis.url(), "n2").await;
    joined(&n2, &["n1", "n2"]).await;

    // n1 is cut off from Redis; it claims P-2 (queued). Then the client moves to n2, whose
    // claim lands at once.
    proxy.cut();
    let (c1, t1) = claim("P-2", Duration::from_secs(30));
    n1.transition(c1);
    // (Claims decided within 50 ms of each other are ordered by arrival, not decision.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (c2, _t2) = claim("P-2", Duration::from_secs(30));
    n2.transition(c2);
    n2.flushed().await;
    // n1's watchdog fires during the outage too.
    n1.transition(offline("P-2", &t1, None));
    proxy.restore();
    n1.flushed().await;
    // n1's old claim lost to the later one (evicted here), its offline was fenced: one online
    // (n2's), nothing else.
    assert_eq!(
        next_command(&mut f1, Duration::from_secs(3)).await,
        Command::Evict {
            proj: proj("P-2"),
            token: t1
        }
    );
    let evs = events(&n2).await;
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(json(&evs[0])["node"], "n2");
    assert_eq!(n2.client(&proj("P-2")).await.unwrap().unwrap().node, "n2");
    n1.stop().await;
    n2.stop().await;
}

#[actix_rt::test]
async fn a_dead_node_is_declared_after_dead_after_and_its_clients_get_capped_deadlines() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (n1, _f1) = node(&redis.url(), "n1").await;
    let (n2, mut f2) = node(&redis.url(), "n2").await;
    joined(&n2, &["n1", "n2"]).await;
    let timeout = Duration::from_secs(2);
    let (c, _) = claim("P-3", timeout);
    let claimed = SystemTime::now();
    n1.transition(c);
    n1.flushed().await;

    // n1 dies (its task stops: no renewal, no leave).
    let died = SystemTime::now();
    let died_mono = tokio::time::Instant::now();
    n1.stop().await;
    let Command::Adopt {
        proj: p,
        deadline,
        last_seen,
        timeout: t,
        lost_node,
        token,
        addr: adopted_addr,
    } = next_command(&mut f2, Duration::from_secs(5)).await
    else {
        panic!("expected an adoption");
    };
    let detected = died_mono.elapsed();
    assert_eq!(p.as_str(), "P-3");
    assert_eq!(lost_node, "n1");
    assert_eq!(t, timeout);
    assert_eq!(adopted_addr, Some(addr()));
    // Declared dead after dead_after / renew_interval rounds without a renewal (its last one
    // was at most a renewal interval before it stopped; rounds are spaced by the interval
    // give or take Redis's answer time), and not much later.
    assert!(
        detected + RENEW + Duration::from_millis(50) >= DEAD_AFTER,
        "declared after {detected:?} only"
    );
    assert!(detected < DEAD_AFTER * 3, "declared after {detected:?}");
    // Never early: its last heartbeat was before the death, the deadline is at least a
    // timeout after that; and at most dead_after + timeout (+ slack) after it.
    assert!(
        deadline >= died + timeout,
        "{deadline:?} < {died:?} + {timeout:?}"
    );
    assert!(deadline <= died + DEAD_AFTER * 3 + timeout);
    assert!(last_seen >= claimed - Duration::from_millis(50) && last_seen <= died);
    let nodes = n2.nodes().await.unwrap();
    let state = |n: &str| nodes.iter().find(|i| i.node == n).unwrap().state.clone();
    assert_eq!(state("n1"), "dead");
    assert_eq!(state("n2"), "alive");
    assert_eq!(nodes.iter().find(|i| i.node == "n2").unwrap().clients, 1);
    let listed = n2
        .client(&proj("P-3"))
        .await
        .unwrap()
        .expect("still online");
    assert_eq!(listed.node, "n2");
    assert!(listed.detached);

    // The detached watchdog fires: exactly one offline, naming the lost node.
    n2.transition(offline("P-3", &token, Some(&lost_node)));
    n2.transition(offline("P-3", &token, Some(&lost_node)));
    n2.flushed().await;
    let evs = events(&n2).await;
    assert_eq!(evs.iter().filter(|e| e.kind == "offline").count(), 1);
    let off = json(evs.last().unwrap());
    assert_eq!(
        (off["node"].as_str(), off["lost_node"].as_str()),
        (Some("n2"), Some("n1"))
    );
    n2.stop().await;
}

#[actix_rt::test]
async fn a_client_that_reconnects_elsewhere_before_its_cap_gets_no_event() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (n1, _f1) = node(&redis.url(), "n1").await;
    let (n2, mut f2) = node(&redis.url(), "n2").await;
    let (n3, _f3) = node(&redis.url(), "n3").await;
    joined(&n3, &["n1", "n2", "n3"]).await;
    let (c, _) = claim("P-4", Duration::from_secs(3));
    n1.transition(c);
    n1.flushed().await;
    // n1 dies; the client reconnects to n3 before anyone notices, n2 or n3 reaps n1.
    n1.stop().await;
    let (c3, _) = claim("P-4", Duration::from_secs(3));
    n3.transition(c3);
    n3.flushed().await;
    super::eventually(Duration::from_secs(5), "n1 declared dead", || async {
        n3.nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.node == "n1" && n.state == "dead")
    })
    .await;
    // Whoever reaped n1 found nothing left to adopt.
    n2.flushed().await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), f2.commands.recv())
            .await
            .is_err(),
        "n2 adopted a client that had moved"
    );
    let evs = events(&n3).await;
    assert_eq!(evs.len(), 1, "only the first online: {evs:?}");
    assert_eq!(n3.client(&proj("P-4")).await.unwrap().unwrap().node, "n3");
    n2.stop().await;
    n3.stop().await;
}

#[actix_rt::test]
async fn a_frozen_redis_declares_nobody_dead() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (n1, _f1) = node(&redis.url(), "n1").await;
    let (n2, _f2) = node(&redis.url(), "n2").await;
    joined(&n1, &["n1", "n2"]).await;
    let (c, t) = claim("P-5", Duration::from_secs(1));
    n1.transition(c);
    n1.flushed().await;

    redis.freeze();
    // Three times dead_after without a single answer; n1 decides an offline meanwhile.
    tokio::time::sleep(DEAD_AFTER).await;
    n1.transition(offline("P-5", &t, None));
    tokio::time::sleep(DEAD_AFTER * 2).await;
    assert!(matches!(
        n1.health(),
        crate::cluster::ClusterHealth::Degraded { .. }
    ));
    redis.thaw();

    n1.flushed().await;
    // Several rounds after the thaw: still nobody declared dead, nobody rejoined.
    tokio::time::sleep(RENEW * 5).await;
    for n in [&n1, &n2] {
        let s = n.stats();
        assert_eq!(
            s.declared_dead.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        assert_eq!(s.rejoined.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
    assert!(n1.nodes().await.unwrap().iter().all(|n| n.state == "alive"));
    assert_eq!(n1.health(), crate::cluster::ClusterHealth::Ok);
    // The offline decided during the freeze arrived, once.
    let evs = events(&n1).await;
    // (It may have been applied by the call that timed out, at the thaw, and then found
    // applied by the retry: either way one event.)
    assert_eq!(evs.iter().filter(|e| e.kind == "offline").count(), 1);
    assert_eq!(evs.len(), 2);
    n1.stop().await;
    n2.stop().await;
}

#[actix_rt::test]
async fn a_clean_leave_hands_over_exact_deadlines() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (n1, _f1) = node(&redis.url(), "n1").await;
    let (n2, mut f2) = node(&redis.url(), "n2").await;
    joined(&n2, &["n1", "n2"]).await;
    let timeout = Duration::from_secs(10);
    let (c, token) = claim("P-6", timeout);
    n1.transition(c);
    // Its exact last heartbeat, known to n1 only.
    let last = SystemTime::UNIX_EPOCH
        + Duration::from_millis(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
                + 300,
        );
    let left_at = tokio::time::Instant::now();
    n1.leave(vec![(proj("P-6"), token, last)]).await.unwrap();
    let Command::Adopt {
        deadline,
        last_seen,
        lost_node,
        ..
    } = next_command(&mut f2, Duration::from_secs(3)).await
    else {
        panic!("expected an adoption");
    };
    // Taken over at the next renewal, not after dead_after.
    assert!(left_at.elapsed() < DEAD_AFTER, "{:?}", left_at.elapsed());
    assert_eq!(last_seen, last);
    assert_eq!(deadline, last + timeout);
    assert_eq!(lost_node, "n1");
    let nodes = n2.nodes().await.unwrap();
    assert_eq!(nodes.iter().find(|n| n.node == "n1").unwrap().state, "left");
    // No event for the handover itself.
    assert_eq!(events(&n2).await.len(), 1);
    n1.stop().await;
    n2.stop().await;
}

#[actix_rt::test]
async fn a_long_timeout_is_bounded_by_its_last_checkpoint() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (n1, _f1) = node(&redis.url(), "n1").await;
    let (n2, mut f2) = node(&redis.url(), "n2").await;
    joined(&n2, &["n1", "n2"]).await;
    let timeout = Duration::from_secs(3600);
    assert_eq!(crate::cluster::checkpoint_every(timeout), Some(timeout / 4));
    assert_eq!(
        crate::cluster::checkpoint_every(Duration::from_secs(20)),
        None
    );
    let (c, token) = claim("P-7", timeout);
    n1.transition(c);
    n1.flushed().await;
    // A cron-like client: its last beat was 50 minutes ago, checkpointed then.
    let beat = SystemTime::now() - Duration::from_secs(3000);
    n1.checkpoint(proj("P-7"), token, beat);
    tokio::time::sleep(RENEW * 3).await;
    n1.stop().await;
    let Command::Adopt {
        deadline,
        last_seen,
        ..
    } = next_command(&mut f2, Duration::from_secs(5)).await
    else {
        panic!("expected an adoption");
    };
    let beat_ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(beat_ms(last_seen), beat_ms(beat));
    // Not an hour after the node's death: an hour and a quarter after the checkpoint.
    assert_eq!(beat_ms(deadline), beat_ms(beat + timeout + timeout / 4));
    n2.stop().await;
}

#[actix_rt::test]
async fn the_outbox_survives_an_outage_and_a_restart_and_its_replay_is_idempotent() {
    use crate::cluster::OutboxCursor;
    use crate::metrics::Metrics;
    use crate::storage::Journal;
    use std::sync::Arc;

    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = CutProxy::start(redis.port).await;
    let dir = tempfile::tempdir().unwrap();
    let mut storage = crate::Config::default().storage;
    storage.path = dir.path().to_path_buf();
    storage.fsync = crate::config::FsyncPolicy::Always;
    let start = |url: String| {
        let storage = storage.clone();
        async move {
            let cursor = OutboxCursor::prepare(&storage.path).unwrap();
            let (journal, _) =
                Journal::open(&storage, Arc::new(Metrics::new()), vec![cursor.hold()]).unwrap();
            let (cluster, feeds) = Cluster::start(
                &config(&url, "n1"),
                ClusterOptions {
                    listen: addr(),
                    http: None,
                    journal: Some((journal.clone(), cursor)),
                    webhooks: None,
                    outage_webhooks: Default::default(),
                },
            )
            .await
            .unwrap();
            (cluster, feeds, journal)
        }
    };

    // What the server's pipeline does in cluster mode: the event log takes the transition
    // (numbered, with its stamp), then the cluster.
    let logged = |journal: &Journal, cluster: &Cluster, seq: u64, t: Transition| {
        use crate::events::{ClientTimeout, Published, Sink};
        let (event, timeout) = match &t {
            Transition::Online { event, timeout, .. } => (
                event.clone(),
                Some(ClientTimeout {
                    timeout: *timeout,
                    requested: true,
                }),
            ),
            Transition::Offline { event, .. } | Transition::Note { event } => (event.clone(), None),
        };
        journal.clone().publish(&Published {
            id: seq,
            event,
            timeout,
            stamp: Some(cluster.stamp(&t)),
            muted: false,
            intervals: None,
        });
        cluster.transition_logged(seq, t);
    };

    let (n1, _f1, journal) = start(proxy.url()).await;
    joined(&n1, &["n1"]).await;
    let (a, ta) = claim("A", Duration::from_secs(30));
    logged(&journal, &n1, 1, a);
    n1.flushed().await;
    // Redis unreachable: two transitions are decided, then the node crashes before it can
    // publish them (its task stops; what it wrote to the log stays).
    proxy.cut();
    logged(&journal, &n1, 2, offline("A", &ta, None));
    let (b, _) = claim("B", Duration::from_secs(30));
    logged(&journal, &n1, 3, b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(n1.pending(), 2);
    n1.stop().await;
    journal.close().await;
    proxy.restore();
    // As if the last publish had succeeded without its cursor being written: replay from the
    // start of the log (the claim of A was already applied).
    std::fs::write(dir.path().join("cluster.cursor"), "0\n").unwrap();

    let (n1, mut f1, journal) = start(redis.url()).await;
    n1.flushed().await;
    let evs = events(&n1).await;
    let seen: Vec<(String, String)> = evs
        .iter()
        .map(|e| (e.kind.clone(), e.proj.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("online".to_string(), "A".to_string()),
            ("offline".into(), "A".into()),
            ("online".into(), "B".into()),
        ]
    );
    // The previous incarnation of n1 is taken over by the new one: B (still online, its
    // connection gone with the crash) is adopted here with a capped deadline.
    let Command::Adopt {
        proj: p, lost_node, ..
    } = next_command(&mut f1, Duration::from_secs(3)).await
    else {
        panic!("expected an adoption");
    };
    assert_eq!((p.as_str(), lost_node.as_str()), ("B", "n1"));
    // Published: the cursor is at the end of the log.
    let cursor: u64 = std::fs::read_to_string(dir.path().join("cluster.cursor"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(cursor, 3);
    n1.stop().await;
    journal.close().await;
}
