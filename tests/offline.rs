//! The `offline` message: a client leaves now, without waiting for its watchdog.

mod common;

use common::{event_kind, TestServer};
use heartwatch::{Event, OfflineReason};
use serde_json::json;

#[actix_rt::test]
async fn offline_removes_the_client_at_once() {
    let server = TestServer::start_default().await;
    let mut events = server.event_log();
    let mut client = server.client().await;

    client.heartbeat("leaver").await;
    assert_eq!(event_kind(&events.next().await), "online");

    client
        .send(r#"{"type":"offline","proj":"leaver","seq":3}"#)
        .await;
    // The ack of an offline has no timeout_ms.
    assert_eq!(
        client.recv_line().await,
        r#"{"type":"ack","proj":"leaver","seq":3}"#
    );
    // No polling: once acked, the client is gone.
    let response = server.get("/api/v1/clients/leaver").await;
    assert_eq!(response.status, 404, "{response:?}");
    assert_eq!(server.known_clients().await, 0.0);

    match events.next().await {
        Event::Offline {
            proj, reason, addr, ..
        } => {
            assert_eq!(proj.as_str(), "leaver");
            assert_eq!(reason, OfflineReason::Offline);
            assert_eq!(addr, client.local);
        }
        other => panic!("expected offline, got {other:?}"),
    }

    server.stop().await;
}

#[actix_rt::test]
async fn offline_for_an_unknown_proj_is_acked_and_changes_nothing() {
    let server = TestServer::start_default().await;
    let mut events = server.event_log();
    let mut client = server.client().await;

    // Never seen, and twice: idempotent.
    for seq in [1, 2] {
        let reply = client
            .request(json!({"type":"offline","proj":"stranger","seq":seq}))
            .await;
        assert_eq!(reply, json!({"type":"ack","proj":"stranger","seq":seq}));
    }
    // A client that has already left, again.
    client.heartbeat("gone").await;
    client.offline("gone").await;
    client.offline("gone").await;

    // One online and one offline for "gone"; nothing for "stranger", nor for the second
    // offline of "gone": the next event is the online of a client that beats afterwards.
    assert_eq!(event_kind(&events.next().await), "online");
    assert_eq!(event_kind(&events.next().await), "offline(offline)");
    client.heartbeat("marker").await;
    let next = events.next().await;
    assert_eq!(
        (common::event_proj(&next), event_kind(&next).as_str()),
        ("marker", "online"),
        "no event for an offline of a client that is not online"
    );
    assert_eq!(
        server
            .metric("heartwatch_offline_total{reason=\"offline\"}")
            .await,
        1.0
    );

    server.stop().await;
}

#[actix_rt::test]
async fn offline_of_an_unknown_proj_does_not_start_the_registry() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    client.offline("nobody").await;
    assert!(!server.running().registry().is_running());
    assert_eq!(server.metric("heartwatch_registry_running").await, 0.0);

    server.stop().await;
}

#[actix_rt::test]
async fn offline_counts_in_the_metrics_by_reason() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    let series = "heartwatch_offline_total{reason=\"offline\"}";

    assert_eq!(server.metric(series).await, 0.0);
    for n in 1..=3 {
        let proj = format!("m-{n}");
        client.heartbeat(&proj).await;
        client.offline(&proj).await;
        assert_eq!(server.metric(series).await, f64::from(n));
    }
    assert_eq!(
        server
            .metric("heartwatch_offline_total{reason=\"timeout\"}")
            .await,
        0.0
    );
    assert_eq!(server.known_clients().await, 0.0);

    server.stop().await;
}

#[actix_rt::test]
async fn offline_from_another_connection_removes_the_client() {
    let server = TestServer::start_default().await;
    let mut beater = server.client().await;
    let mut admin = server.client().await;

    beater.heartbeat("remote").await;
    admin.offline("remote").await;
    assert_eq!(server.client_status("remote").await, 404);

    // The beater's next heartbeat brings it back (its cached monitor has stopped).
    beater.heartbeat("remote").await;
    assert_eq!(server.client_record("remote").await["heartbeats"], 1);

    server.stop().await;
}
