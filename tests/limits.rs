//! Limits against floods and greedy peers: each refusal is a clear error, counted in the
//! metrics, and never affects the well-behaved clients.

mod common;

use std::time::Duration;

use common::{eventually, parse_json, test_config, Closed, TestServer, IO_TIMEOUT};
use heartwatch::config::SessionConfig;
use heartwatch::Builder;
use serde_json::json;

#[actix_rt::test]
async fn a_connection_past_max_connections_is_told_and_closed() {
    let mut config = test_config();
    config.max_connections = 3;
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut client = server.client().await;
        client.heartbeat(&format!("L-{i}")).await;
        held.push(client);
    }

    let mut extra = server.client().await;
    let (lines, closed) = extra.read_until_closed().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(parse_json(&lines[0])["code"], "too_many_connections");
    assert!(matches!(closed, Closed::Eof | Closed::Reset), "{closed:?}");
    assert_eq!(
        server
            .metric(r#"heartwatch_frame_errors_total{code="too_many_connections"}"#)
            .await,
        1.0
    );

    // The connections in place are untouched, and a place freed is a place taken.
    for (i, client) in held.iter_mut().enumerate() {
        client.heartbeat(&format!("L-{i}")).await;
    }
    drop(held.pop());
    eventually(
        IO_TIMEOUT,
        "the closed connection to be counted out",
        || async { server.metric("heartwatch_connections").await == 2.0 },
    )
    .await;
    let mut again = server.client().await;
    again.heartbeat("L-9").await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_past_max_clients_is_refused_and_online_ones_carry_on() {
    let mut config = test_config();
    config.max_clients = 2;
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    client.heartbeat("A").await;
    client.heartbeat("B").await;

    let refused = client
        .request(json!({"type": "heartbeat", "proj": "C", "seq": 5}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "too_many_clients");
    assert_eq!(server.client_status("C").await, 404);
    assert_eq!(
        server
            .metric(r#"heartwatch_frame_errors_total{code="too_many_clients"}"#)
            .await,
        1.0
    );

    // The same connection still works for the clients already online.
    client.heartbeat("A").await;
    client.offline("B").await;
    client.heartbeat("C").await;
    assert_eq!(server.known_clients().await, 2.0);
    server.stop().await;
}

#[actix_rt::test]
async fn frames_over_the_rate_are_refused_on_that_connection_only() {
    let session = SessionConfig {
        max_frame_rate: 10,
        frame_burst: 5,
        ..SessionConfig::default()
    };
    let server = TestServer::start_with(Builder::new(test_config()).session(session)).await;
    let mut greedy = server.client().await;
    let mut bystander = server.client().await;

    // Twenty heartbeats at once: the burst of five passes, most of the rest do not.
    let mut batch = String::new();
    for seq in 0..20 {
        batch.push_str(&format!(
            "{{\"type\":\"heartbeat\",\"proj\":\"G\",\"seq\":{seq}}}\n"
        ));
    }
    greedy.send_raw(batch.as_bytes()).await;
    let mut acked = 0;
    let mut limited = 0;
    for _ in 0..20 {
        let reply = greedy.recv().await;
        match reply["type"].as_str() {
            Some("ack") => acked += 1,
            Some("error") if reply["code"] == "rate_limited" => limited += 1,
            _ => panic!("unexpected reply {reply}"),
        }
    }
    assert!(acked >= 5, "the burst passes: {acked} acks");
    assert!(limited >= 10, "the excess is refused: {limited} refusals");
    assert_eq!(acked + limited, 20, "every frame is answered");

    // Another connection is not limited by it.
    for _ in 0..5 {
        bystander.heartbeat("bystander").await;
    }
    // How the budget refills with time is tested on explicit instants in
    // src/transport/frame_budget.rs; here it is enough that the connection stays usable.
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    loop {
        let reply = greedy
            .request(json!({"type": "heartbeat", "proj": "G"}))
            .await;
        if reply["type"] == "ack" {
            break;
        }
        assert_eq!(reply["code"], "rate_limited", "{reply}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no frame passed again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        server
            .metric(r#"heartwatch_frame_errors_total{code="rate_limited"}"#)
            .await
            >= 10.0
    );
    server.stop().await;
}

#[test]
fn a_zero_limit_is_a_configuration_error() {
    let e = heartwatch::ConfigLoader::new()
        .without_env()
        .set("server.max_connections", "0")
        .load()
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.max_connections"), "{e}");
}
