//! The registry runs only while some client is online: it starts with the first heartbeat,
//! stops when the last client leaves, and starts again with the next heartbeat, without ever
//! losing a heartbeat in between.

mod common;

use std::time::Duration;

use common::{event_kind, eventually, test_config, Client, EventLog, TestServer, IO_TIMEOUT};
use futures_util::future::join_all;
use heartwatch::Builder;
use serde_json::json;
use tokio::time::timeout;

async fn registry_running(server: &TestServer) -> f64 {
    server.metric("heartwatch_registry_running").await
}

#[actix_rt::test]
async fn the_registry_runs_only_while_a_client_is_online() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    // Not before the first heartbeat, and queries do not start it.
    assert_eq!(registry_running(&server).await, 0.0);
    assert_eq!(server.client_status("early").await, 404);
    assert_eq!(server.get("/api/v1/clients").await.body, "[]");
    assert_eq!(registry_running(&server).await, 0.0);

    // Running once a heartbeat is acked.
    client.heartbeat_timeout("first", 200).await;
    assert_eq!(registry_running(&server).await, 1.0);
    assert!(server.running().registry().is_running());

    // Stopped after the last client goes offline by timeout...
    eventually(
        IO_TIMEOUT,
        "the registry stops after the timeout",
        || async { registry_running(&server).await == 0.0 },
    )
    .await;
    assert_eq!(server.client_status("first").await, 404);

    // ... running again with the next heartbeat (on the same connection)...
    client.heartbeat("second").await;
    assert_eq!(registry_running(&server).await, 1.0);
    assert_eq!(server.client_record("second").await["heartbeats"], 1);

    // ... and stopped again after an explicit offline.
    client.offline("second").await;
    eventually(
        IO_TIMEOUT,
        "the registry stops after the offline",
        || async { registry_running(&server).await == 0.0 },
    )
    .await;

    // One of two clients leaving does not stop it.
    client.heartbeat("a").await;
    client.heartbeat("b").await;
    client.offline("a").await;
    assert_eq!(registry_running(&server).await, 1.0);
    assert_eq!(server.client_record("b").await["heartbeats"], 1);

    server.stop().await;
}

/// A server for a churn of one client: flap damping off, so that every transition is an event.
async fn churn_server() -> TestServer {
    TestServer::start_with(Builder::new(test_config()).flap(common::no_flap_damping())).await
}

/// Checks the state after a churn of heartbeats and offlines for `proj` that ended with an
/// offline: gone from the API and the gauges, the registry stopped, and the events alternating
/// online, offline, online... with one offline per online and nothing after the last offline
/// (the next event is the online of `client`'s next heartbeat, sent here). Returns the number
/// of onlines.
async fn assert_settled_after_churn(
    server: &TestServer,
    events: &mut EventLog,
    proj: &str,
    client: &mut Client,
) -> u64 {
    assert_eq!(server.client_status(proj).await, 404);
    assert_eq!(server.known_clients().await, 0.0);
    eventually(IO_TIMEOUT, "the registry stops when empty", || async {
        registry_running(server).await == 0.0
    })
    .await;
    assert_eq!(server.get("/api/v1/clients").await.body, "[]");

    let offlines = server
        .metric("heartwatch_offline_total{reason=\"offline\"}")
        .await;
    assert!(offlines >= 1.0);
    let mut seen = Vec::new();
    while (seen.len() as f64) < 2.0 * offlines {
        seen.push(events.next().await);
    }
    for (i, event) in seen.iter().enumerate() {
        let expected = if i % 2 == 0 {
            "online"
        } else {
            "offline(offline)"
        };
        assert_eq!(event_kind(event), expected, "event #{i} of {}", seen.len());
        assert_eq!(common::event_proj(event), proj);
    }
    // No frame was refused on the way.
    assert_eq!(
        server
            .metric("heartwatch_frame_errors_total{code=\"unavailable\"}")
            .await,
        0.0
    );
    // Nothing came after the final offline: the next event is that of a later heartbeat.
    client.heartbeat(proj).await;
    let next = events.next().await;
    assert_eq!(
        (common::event_proj(&next), event_kind(&next).as_str()),
        (proj, "online"),
        "the event after the final offline"
    );
    offlines as u64
}

#[actix_rt::test]
async fn the_registry_restarts_for_every_heartbeat_after_an_offline_across_connections() {
    const CONNECTIONS: usize = 4;
    const ROUNDS: usize = 500;
    let server = churn_server().await;
    let mut events = server.event_log();
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(server.client().await);
    }

    // Round r: one connection beats, the next one sends the offline, so that every heartbeat
    // meets a registry that has just stopped (or is stopping) and a cached monitor that has
    // left; none of them may be lost.
    for round in 0..ROUNDS {
        let seq = round as u64;
        let beater = &mut clients[round % CONNECTIONS];
        let reply = beater
            .request(json!({"type":"heartbeat","proj":"churn","seq":seq}))
            .await;
        assert_eq!(
            reply,
            json!({"type":"ack","proj":"churn","seq":seq,"timeout_ms":20000,"interval_ms":6667}),
            "round {round}"
        );
        let leaver = &mut clients[(round + 1) % CONNECTIONS];
        let reply = leaver
            .request(json!({"type":"offline","proj":"churn","seq":seq}))
            .await;
        assert_eq!(
            reply,
            json!({"type":"ack","proj":"churn","seq":seq}),
            "round {round}"
        );
    }

    assert_eq!(
        server.metric("heartwatch_heartbeats_total").await,
        ROUNDS as f64
    );
    // And it still works: the check ends with a heartbeat.
    let onlines = assert_settled_after_churn(&server, &mut events, "churn", &mut clients[1]).await;
    assert_eq!(
        onlines, ROUNDS as u64,
        "one online and one offline per round"
    );
    assert_eq!(registry_running(&server).await, 1.0);
    assert_eq!(server.client_record("churn").await["heartbeats"], 1);

    server.stop().await;
}

/// `connections` connections each send heartbeat, offline, heartbeat, offline... for one proj,
/// `rounds` times, all at once, so that the registry keeps stopping and starting under
/// concurrent traffic. Every frame must be acked, every heartbeat counted, and the settled
/// state consistent.
async fn concurrent_churn(connections: usize, rounds: u64) {
    let server = churn_server().await;
    let mut events = server.event_log();
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(server.client().await);
    }

    let churn = join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(c, client)| async move {
                for round in 0..rounds {
                    let seq = c as u64 * 1_000_000 + round;
                    let reply = client
                        .request(json!({"type":"heartbeat","proj":"churn","seq":seq}))
                        .await;
                    assert_eq!(
                        reply,
                        json!({"type":"ack","proj":"churn","seq":seq,"timeout_ms":20000,"interval_ms":6667}),
                        "connection {c}, round {round}"
                    );
                    let reply = client
                        .request(json!({"type":"offline","proj":"churn","seq":seq}))
                        .await;
                    assert_eq!(
                        reply,
                        json!({"type":"ack","proj":"churn","seq":seq}),
                        "connection {c}, round {round}"
                    );
                }
            }),
    );
    timeout(Duration::from_secs(120), churn)
        .await
        .expect("the churn finished");

    // Every heartbeat was delivered and counted.
    let total = (connections as u64 * rounds) as f64;
    assert_eq!(server.metric("heartwatch_heartbeats_total").await, total);

    // The last word was an offline from every connection, but a heartbeat of one may have
    // come after the offline of another: settle the state with one more offline, after which
    // the API, the gauges and the events must agree.
    clients[0].offline("churn").await;
    assert_settled_after_churn(&server, &mut events, "churn", &mut clients[1]).await;
    assert_eq!(server.client_record("churn").await["heartbeats"], 1);

    server.stop().await;
}

#[actix_rt::test]
async fn concurrent_heartbeat_offline_churn_from_several_connections_loses_nothing() {
    concurrent_churn(4, 500).await;
}

/// 32 connections churning one proj: the registry empties on almost every offline. Before
/// the idle linger (`IDLE_STOP_AFTER`), requests queued at each stop bounced until some
/// gave up with `unavailable`; this size failed every run on a 2-core machine.
#[actix_rt::test]
async fn concurrent_heartbeat_offline_churn_from_many_connections_loses_nothing() {
    concurrent_churn(32, 1_000).await;
}
