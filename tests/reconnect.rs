//! A client's connections come and go: a second connection, a reconnect while the old socket
//! is still open, a reconnect after it closed (its actor then moves to the new connection's
//! thread), a gateway carrying several clients. Nothing is lost: no spurious offline, no
//! second online, every ack on the connection that asked.

mod common;

use common::{test_config, Client, EventLog, TestServer};
use heartwatch::{Event, OfflineReason};
use serde_json::json;

/// Two session threads, so that consecutive connections land on different threads.
async fn server() -> TestServer {
    let mut config = test_config();
    config.workers = 2;
    TestServer::start(config).await
}

async fn beat(client: &mut Client, proj: &str, seq: u64) {
    let ack = client
        .request(json!({"type":"heartbeat","proj":proj,"seq":seq}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["proj"], proj, "{ack}");
    assert_eq!(ack["seq"], seq, "the ack went to another connection: {ack}");
}

/// Takes `proj` offline on `client`, then asserts that the events since the start were
/// exactly one online and this offline: anything spurious would have come before it.
async fn assert_one_online_then_offline(events: &mut EventLog, client: &mut Client, proj: &str) {
    let ack = client.offline(proj).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    match events.next().await {
        Event::Online { proj: p, .. } => assert_eq!(p.as_str(), proj),
        other => panic!("expected online of {proj}, got {other:?}"),
    }
    match events.next().await {
        Event::Offline {
            proj: p, reason, ..
        } => {
            assert_eq!(p.as_str(), proj);
            assert_eq!(reason, OfflineReason::Offline, "a spurious offline");
        }
        other => panic!("expected the explicit offline of {proj}, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_client_beating_on_two_connections_gets_each_ack_where_it_asked() {
    let server = server().await;
    let mut events = server.event_log();
    let mut first = server.client().await;
    let mut second = server.client().await;
    for seq in 0..40 {
        let conn = if seq % 2 == 0 {
            &mut first
        } else {
            &mut second
        };
        beat(conn, "TWO", seq).await;
    }
    let record = server.client_record("TWO").await;
    assert_eq!(record["heartbeats"], 40, "{record}");
    assert_one_online_then_offline(&mut events, &mut second, "TWO").await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_reconnect_while_the_old_socket_is_open_loses_nothing() {
    let server = server().await;
    let mut events = server.event_log();
    let mut old = server.client().await;
    for seq in 0..5 {
        beat(&mut old, "RE", seq).await;
    }
    // The client "restarts": a new connection, the old one left open (half-open).
    let mut new = server.client().await;
    for seq in 5..30 {
        beat(&mut new, "RE", seq).await;
    }
    // The old socket still works, if the client uses it.
    beat(&mut old, "RE", 30).await;
    assert_eq!(server.client_record("RE").await["heartbeats"], 31);
    assert_one_online_then_offline(&mut events, &mut new, "RE").await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_reconnect_after_the_old_socket_closed_moves_the_client_to_the_new_one() {
    let server = server().await;
    let mut events = server.event_log();
    let mut old = server.client().await;
    for seq in 0..5 {
        beat(&mut old, "MOVE", seq).await;
    }
    old.shutdown_write().await;
    drop(old);
    // The next connection lands on the other session thread; the client's actor, now
    // without a connection, moves there and takes it over.
    let mut new = server.client().await;
    for seq in 5..50 {
        beat(&mut new, "MOVE", seq).await;
    }
    assert_eq!(server.client_record("MOVE").await["heartbeats"], 50);
    assert_one_online_then_offline(&mut events, &mut new, "MOVE").await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_gateway_connection_carries_several_clients() {
    let server = server().await;
    let mut events = server.event_log();
    let mut gateway = server.client().await;
    let projs = ["G-1", "G-2", "G-3"];
    for seq in 0..30u64 {
        beat(&mut gateway, projs[seq as usize % 3], seq).await;
    }
    for proj in projs {
        assert_eq!(server.client_record(proj).await["heartbeats"], 10);
        assert_eq!(gateway.offline(proj).await["type"], "ack");
    }
    let mut seen = Vec::new();
    for _ in 0..6 {
        let event = events.next().await;
        seen.push(format!("{} {}", common::event_kind(&event), event.proj()));
    }
    assert_eq!(
        seen,
        [
            "online G-1",
            "online G-2",
            "online G-3",
            "offline(offline) G-1",
            "offline(offline) G-2",
            "offline(offline) G-3"
        ]
    );
    server.stop().await;
}
