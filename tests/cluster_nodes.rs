//! The cluster contract with real processes: `heartwatch serve` nodes on one redis-server
//! (started by each test on a free port), real TCP clients, the HTTP API and the event stream
//! of every node. A client moving between nodes, a node killed with SIGKILL (silent and
//! reconnecting clients), a clean leave (SIGTERM), Redis frozen (SIGSTOP) and resumed, the
//! merged list and the stream on every node.
//!
//! Renewal 200 ms, dead after 1 s, client timeouts 3 s: each test takes a few seconds.

mod common;

use std::time::{Duration, SystemTime};

use common::hook_recorder::HookRecorder;
use common::redis::RedisServer;
use common::{eventually, BinServer, Client, EventStream};
use serde_json::Value;

const DEAD_AFTER: Duration = Duration::from_secs(1);
const TIMEOUT_MS: u64 = 3000;

/// A node named `name` on `redis`, with its event log in `dir`.
fn node(redis: &RedisServer, name: &str, dir: &std::path::Path) -> BinServer {
    node_with(redis, name, dir, &[])
}

fn node_with(redis: &RedisServer, name: &str, dir: &std::path::Path, extra: &[&str]) -> BinServer {
    let url = redis.url();
    let dir = dir.to_string_lossy().to_string();
    BinServer::spawn_with(
        "127.0.0.1:0",
        &[
            ("HEARTWATCH__CLUSTER__REDIS", &url),
            ("HEARTWATCH__CLUSTER__NODE", name),
            ("HEARTWATCH__CLUSTER__RENEW_INTERVAL", "200ms"),
            ("HEARTWATCH__CLUSTER__DEAD_AFTER", "1s"),
            ("HEARTWATCH__STORAGE__PATH", &dir),
        ],
        extra,
    )
}

async fn nodes(server: &BinServer) -> Vec<Value> {
    let response = server.get("/api/v1/nodes").await;
    assert_eq!(response.status, 200, "{response:?}");
    response.json().as_array().cloned().unwrap_or_default()
}

fn state_of(nodes: &[Value], name: &str) -> String {
    nodes
        .iter()
        .find(|n| n["node"] == name)
        .and_then(|n| n["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

async fn all_alive(server: &BinServer, names: &[&str]) {
    eventually(Duration::from_secs(5), "every node alive", || async {
        let list = nodes(server).await;
        names.iter().all(|n| state_of(&list, n) == "alive")
    })
    .await;
}

async fn beat(client: &mut Client, proj: &str) {
    client.heartbeat_timeout(proj, TIMEOUT_MS).await;
}

fn at(v: &Value, field: &str) -> SystemTime {
    humantime::parse_rfc3339(v[field].as_str().expect("a time")).expect("RFC 3339")
}

#[actix_rt::test]
async fn every_node_lists_and_streams_every_client_and_a_move_is_silent() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n1 = node(&redis, "n1", dir.path());
    let n2 = node(&redis, "n2", dir.path());
    let n3 = node(&redis, "n3", dir.path());
    all_alive(&n3, &["n1", "n2", "n3"]).await;
    let mut streams = Vec::new();
    for n in [&n1, &n2, &n3] {
        streams.push(EventStream::open(n.http).await);
    }

    let mut on1 = Client::connect(n1.tcp).await;
    beat(&mut on1, "M-1").await;
    let mut on2 = Client::connect(n2.tcp).await;
    beat(&mut on2, "M-2").await;
    // Every node streams both onlines, in one order, with the same ids.
    let mut seen = Vec::new();
    for stream in &mut streams {
        let a = stream.next_event().await;
        let b = stream.next_event().await;
        seen.push([a, b]);
    }
    for other in &seen[1..] {
        assert_eq!(other[0].0, seen[0][0].0);
        assert_eq!(other[1].0, seen[0][1].0);
    }
    let first = &seen[0][0];
    assert!(
        first.0.as_deref().is_some_and(|id| id.contains('-')),
        "{first:?}"
    );
    assert_eq!(first.1["event"], "online");
    let by_proj = |p: &str| seen[0].iter().find(|e| e.1["proj"] == p).unwrap().1.clone();
    assert_eq!(by_proj("M-1")["node"], "n1");
    assert_eq!(by_proj("M-2")["node"], "n2");

    // Any node lists both, with their node; and finds one by name.
    for n in [&n1, &n2, &n3] {
        let list = n.get("/api/v1/clients").await.json();
        let list: Vec<(String, String)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["proj"].as_str().unwrap().to_string(),
                    c["node"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            list,
            [
                ("M-1".to_string(), "n1".to_string()),
                ("M-2".into(), "n2".into())
            ]
        );
    }
    assert_eq!(n3.client_record("M-2").await["node"], "n2");
    assert_eq!(n3.client_status("nobody").await, 404);
    let list = nodes(&n2).await;
    let count = |name: &str| {
        list.iter()
            .find(|n| n["node"] == name)
            .and_then(|n| n["clients"].as_u64())
    };
    assert_eq!(
        (count("n1"), count("n2"), count("n3")),
        (Some(1), Some(1), Some(0))
    );

    // M-1 moves from n1 to n3 (n1's connection drops), and keeps beating there past its
    // timeout on n1: no offline, no second online. Its goodbye on n3 is then the next event on
    // every stream.
    let mut on3 = Client::connect(n3.tcp).await;
    beat(&mut on3, "M-1").await;
    drop(on1);
    eventually(Duration::from_secs(3), "M-1 listed on n3", || async {
        n1.client_record("M-1").await["node"] == "n3"
    })
    .await;
    let until = tokio::time::Instant::now() + Duration::from_millis(TIMEOUT_MS + 1000);
    while tokio::time::Instant::now() < until {
        beat(&mut on3, "M-1").await;
        beat(&mut on2, "M-2").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    on3.offline("M-1").await;
    for stream in &mut streams {
        let (_, event) = stream.next_event().await;
        assert_eq!(
            (
                event["event"].as_str(),
                event["proj"].as_str(),
                event["node"].as_str()
            ),
            (Some("offline"), Some("M-1"), Some("n3")),
            "{event}"
        );
        assert_eq!(event["reason"], "offline");
    }

    // A reader resuming with Last-Event-ID on any node gets what it missed, same ids.
    let after_first = seen[0][0].0.clone().unwrap();
    let mut resumed = EventStream::open_after(n2.http, Some(&after_first)).await;
    let (id, event) = resumed.next_event().await;
    assert_eq!(id, seen[0][1].0);
    assert_eq!(event["event"], "online");
    let (_, event) = resumed.next_event().await;
    assert_eq!(
        (event["event"].as_str(), event["proj"].as_str()),
        (Some("offline"), Some("M-1"))
    );
}

#[actix_rt::test]
async fn a_killed_node_s_silent_clients_go_offline_once_and_reconnecting_ones_not_at_all() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n1 = node(&redis, "n1", dir.path());
    let n2 = node(&redis, "n2", dir.path());
    all_alive(&n2, &["n1", "n2"]).await;
    let mut stream = EventStream::open(n2.http).await;
    let mut silent = Client::connect(n1.tcp).await;
    let mut moving = Client::connect(n1.tcp).await;
    beat(&mut silent, "K-silent").await;
    beat(&mut moving, "K-moving").await;
    for _ in 0..2 {
        assert_eq!(stream.next_event().await.1["event"], "online");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    beat(&mut silent, "K-silent").await;
    beat(&mut moving, "K-moving").await;
    let last_beat = SystemTime::now();

    n1.signal("KILL");
    // The moving client reconnects to n2 at once and keeps beating; the silent one is gone.
    let mut moved = Client::connect(n2.tcp).await;
    beat(&mut moved, "K-moving").await;
    let beating = actix_rt::spawn(async move {
        for _ in 0..40 {
            beat(&mut moved, "K-moving").await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        moved
    });

    let (_, event) = stream
        .next_event_within(DEAD_AFTER + Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(4))
        .await;
    let decided = SystemTime::now();
    assert_eq!(
        (event["event"].as_str(), event["proj"].as_str()),
        (Some("offline"), Some("K-silent")),
        "{event}"
    );
    assert_eq!(event["node"], "n2");
    assert_eq!(event["lost_node"], "n1");
    let timeout = Duration::from_millis(TIMEOUT_MS);
    let offline_at = at(&event, "at");
    assert!(offline_at >= last_beat + timeout, "early: {event}");
    assert!(
        offline_at <= last_beat + DEAD_AFTER + timeout + Duration::from_secs(2),
        "late: {event} (last beat {:?})",
        last_beat
    );
    assert!(decided >= offline_at);
    assert_eq!(state_of(&nodes(&n2).await, "n1"), "dead");
    // The moving client had no event: its goodbye is the next one.
    let mut moved = beating.await.unwrap();
    moved.offline("K-moving").await;
    let (_, event) = stream.next_event().await;
    assert_eq!(
        (
            event["event"].as_str(),
            event["proj"].as_str(),
            event["reason"].as_str()
        ),
        (Some("offline"), Some("K-moving"), Some("offline")),
        "{event}"
    );
}

#[actix_rt::test]
async fn a_node_that_leaves_hands_over_exact_deadlines() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut n1 = node(&redis, "n1", dir.path());
    let n2 = node(&redis, "n2", dir.path());
    all_alive(&n2, &["n1", "n2"]).await;
    let mut stream = EventStream::open(n2.http).await;
    let mut client = Client::connect(n1.tcp).await;
    beat(&mut client, "L-1").await;
    assert_eq!(stream.next_event().await.1["event"], "online");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = SystemTime::now();
    beat(&mut client, "L-1").await;
    let after = SystemTime::now();
    // The owner knows the exact last heartbeat.
    let last_seen = at(&n1.client_record("L-1").await, "last_seen");
    assert!(last_seen >= before - Duration::from_millis(5) && last_seen <= after);

    n1.signal("TERM");
    assert!(
        n1.wait_exit(Duration::from_secs(5)).await.is_some(),
        "n1 stops"
    );
    eventually(Duration::from_secs(3), "n1 left", || async {
        state_of(&nodes(&n2).await, "n1") == "left"
    })
    .await;
    // Taken over with its exact deadline: offline exactly a timeout after its last beat.
    let (_, event) = stream.next_event_within(Duration::from_secs(6)).await;
    assert_eq!(
        (
            event["event"].as_str(),
            event["proj"].as_str(),
            event["node"].as_str()
        ),
        (Some("offline"), Some("L-1"), Some("n2")),
        "{event}"
    );
    assert_eq!(event["lost_node"], "n1");
    // (Redis keeps milliseconds.)
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(ms(at(&event, "last_seen")), ms(last_seen), "{event}");
    let expected = last_seen + Duration::from_millis(TIMEOUT_MS) - Duration::from_millis(1);
    let offline_at = at(&event, "at");
    assert!(
        offline_at >= expected && offline_at < expected + Duration::from_millis(300),
        "{event}: expected at {expected:?}"
    );
}

#[actix_rt::test]
async fn a_frozen_redis_delays_events_declares_nobody_dead_and_fails_health() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n1 = node(&redis, "n1", dir.path());
    let n2 = node(&redis, "n2", dir.path());
    all_alive(&n2, &["n1", "n2"]).await;
    let mut stream = EventStream::open(n2.http).await;
    let mut client = Client::connect(n1.tcp).await;
    beat(&mut client, "F-1").await;
    assert_eq!(stream.next_event().await.1["event"], "online");

    redis.freeze();
    // Heartbeats are acked at once while Redis is frozen.
    for _ in 0..3 {
        let sent = tokio::time::Instant::now();
        beat(&mut client, "F-1").await;
        assert!(sent.elapsed() < Duration::from_millis(500), "ack waited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The client stops beating: n1 decides its offline during the freeze.
    drop(client);
    eventually(Duration::from_secs(6), "n1 unhealthy", || async {
        n1.get("/healthz").await.status == 503
    })
    .await;
    let health = n1.get("/healthz").await.json();
    assert_eq!(health["cause"], "redis_unreachable", "{health}");
    eventually(
        Duration::from_millis(TIMEOUT_MS + 2000),
        "F-1 offline on n1",
        || async { n1.known_clients().await == 0.0 },
    )
    .await;
    // Frozen three times dead_after in all.
    tokio::time::sleep(DEAD_AFTER).await;
    redis.thaw();

    let (_, event) = stream.next_event_within(Duration::from_secs(10)).await;
    assert_eq!(
        (
            event["event"].as_str(),
            event["proj"].as_str(),
            event["node"].as_str()
        ),
        (Some("offline"), Some("F-1"), Some("n1")),
        "{event}"
    );
    eventually(Duration::from_secs(5), "n1 healthy again", || async {
        n1.get("/healthz").await.status == 200
    })
    .await;
    let list = nodes(&n1).await;
    assert_eq!(
        (state_of(&list, "n1"), state_of(&list, "n2")),
        ("alive".into(), "alive".into())
    );
    let declared = n1
        .stderr_so_far()
        .into_iter()
        .chain(n2.stderr_so_far())
        .filter(|l| l.contains("declared dead"))
        .count();
    assert_eq!(declared, 0);
}

#[actix_rt::test]
async fn webhooks_deliver_each_event_once_across_the_death_of_a_node() {
    use std::sync::atomic::Ordering;

    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (receiver, hook, handle) = HookRecorder::start_failing();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hooks.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\ntimeout = \"1s\"\n\
             [[notify.webhook]]\nurl = \"http://{hook}/events\"\nname = \"alerts\"\n"
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().to_string();
    let n1 = node_with(&redis, "n1", dir.path(), &["--config", &config]);
    let n2 = node_with(&redis, "n2", dir.path(), &["--config", &config]);
    all_alive(&n2, &["n1", "n2"]).await;
    eventually(
        Duration::from_secs(5),
        "both consumers in the group",
        || async {
            let mut c = redis.conn();
            let consumers: redis::Value = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg("{heartwatch}:events")
                .arg("wh:alerts")
                .query(&mut c)
                .unwrap_or(redis::Value::Nil);
            matches!(consumers, redis::Value::Array(ref a) if a.len() == 2)
        },
    )
    .await;

    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = Client::connect(if i % 2 == 0 { n1.tcp } else { n2.tcp }).await;
        beat(&mut c, &format!("W-{i}")).await;
        clients.push(c);
    }
    // Every online is in the stream, both nodes hold deliveries they cannot make; then n1
    // dies.
    eventually(Duration::from_secs(5), "n1 delivering", || async {
        let mut c = redis.conn();
        let len: u64 = redis::cmd("XLEN")
            .arg("{heartwatch}:events")
            .query(&mut c)
            .unwrap();
        if len < 6 {
            return false;
        }
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg("{heartwatch}:events")
            .arg("wh:alerts")
            .query(&mut c)
            .unwrap();
        format!("{pending:?}").contains("n1")
    })
    .await;
    n1.signal("KILL");
    receiver.failing.store(false, Ordering::SeqCst);

    let mut stream_ids = Vec::new();
    {
        let mut c = redis.conn();
        let ids: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg("{heartwatch}:events")
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        stream_ids.extend(ids.into_iter().map(|(id, _)| id));
    }
    assert_eq!(stream_ids.len(), 6);
    eventually(Duration::from_secs(15), "every event delivered", || async {
        receiver.delivered().len() >= stream_ids.len()
    })
    .await;
    let hits = receiver.hits.lock().unwrap().clone();
    // n1 died while the receiver failed, so no delivery of its can have succeeded: once.
    let mut delivered = receiver.delivered();
    delivered.sort();
    assert_eq!(
        delivered, stream_ids,
        "each event once, its stream id as delivery id"
    );
    for (id, status, body) in &hits {
        if *status == 200 {
            assert_eq!(body["id"], Value::String(id.clone()));
            assert_eq!(body["event"], "online");
        }
    }
    handle.stop(false).await;
}

#[actix_rt::test]
async fn a_client_connected_to_two_nodes_at_once_is_one_client() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n1 = node(&redis, "n1", dir.path());
    let n2 = node(&redis, "n2", dir.path());
    all_alive(&n2, &["n1", "n2"]).await;
    let mut stream = EventStream::open(n2.http).await;
    let mut a = Client::connect(n1.tcp).await;
    let mut b = Client::connect(n2.tcp).await;
    for _ in 0..8 {
        beat(&mut a, "T-1").await;
        beat(&mut b, "T-1").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let list = n1.get("/api/v1/clients").await.json();
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    }
    let (_, event) = stream.next_event().await;
    assert_eq!(
        (event["event"].as_str(), event["proj"].as_str()),
        (Some("online"), Some("T-1"))
    );
    // One client: its goodbye (on either node) is the next event, with no offline or second
    // online in between.
    b.offline("T-1").await;
    let (_, event) = stream.next_event().await;
    assert_eq!(
        (
            event["event"].as_str(),
            event["proj"].as_str(),
            event["reason"].as_str()
        ),
        (Some("offline"), Some("T-1"), Some("offline")),
        "{event}"
    );
}
