//! The cluster layer against a real redis-server (started per test on a free port): claims
//! and handover fencing, exactly one offline, node death and adoption caps, a frozen Redis,
//! replay after an outage, a clean leave.
//!
//! Without redis-server on PATH these tests are skipped (failed under `CI`), see
//! `common::redis::INSTALL`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use common::redis::{CutProxy, RedisServer};
use heartwatch::cluster::{
    ClaimToken, Cluster, ClusterConfig, ClusterFeeds, ClusterOptions, Command, StreamEvent,
    Transition,
};
use heartwatch::protocol::Proj;
use heartwatch::{Event, OfflineReason};
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
        },
        token: token.clone(),
        timeout,
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
        },
        token: token.clone(),
        lost_node: lost_node.map(str::to_string),
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
    common::eventually(Duration::from_secs(5), "nodes joined", || async {
        let nodes = cluster.nodes().await.unwrap_or_default();
        names.iter().all(|n| {
            nodes
                .iter()
                .any(|i| i.node == *n && i.state == "alive")
        })
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
    assert_eq!((list[0].proj.as_str(), list[0].node.as_str()), ("P-1", "n1"));
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
    assert_eq!(n1.stats().fenced.load(std::sync::atomic::Ordering::Relaxed), 1);

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
