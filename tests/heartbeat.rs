//! Heartbeats: the ack, the client's timeout, and when a heartbeat has taken effect.

mod common;

use common::{assert_ack, heartbeat_frame, test_config, Client, TestServer};
use serde_json::json;

#[actix_rt::test]
async fn ack_echoes_seq_and_reports_the_effective_timeout() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    client
        .send(r#"{"type":"heartbeat","proj":"P-17","seq":7}"#)
        .await;
    assert_eq!(
        client.recv_line().await,
        r#"{"type":"ack","proj":"P-17","seq":7,"timeout_ms":20000,"interval_ms":6667}"#
    );

    // Without seq, the ack has no seq key at all.
    client.send(r#"{"type":"heartbeat","proj":"P-17"}"#).await;
    assert_eq!(
        client.recv_line().await,
        r#"{"type":"ack","proj":"P-17","timeout_ms":20000,"interval_ms":6667}"#
    );

    // seq is echoed as given, up to the largest u64.
    let reply = client
        .request(json!({"type":"heartbeat","proj":"P-17","seq":u64::MAX}))
        .await;
    assert_eq!(reply["seq"], u64::MAX);

    server.stop().await;
}

#[actix_rt::test]
async fn timeout_ms_is_clamped_into_min_and_max() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    // min_timeout is 100 ms by default, max_timeout 24 h.
    let reply = client.heartbeat_timeout("tiny", 1).await;
    assert_eq!(reply["timeout_ms"], 100);
    let reply = client.heartbeat_timeout("huge", u64::MAX).await;
    assert_eq!(reply["timeout_ms"], 24 * 3600 * 1000);
    let reply = client.heartbeat_timeout("fair", 1500).await;
    assert_eq!(reply["timeout_ms"], 1500);
    assert_eq!(server.client_record("fair").await["timeout_ms"], 1500);

    server.stop().await;
}

#[actix_rt::test]
async fn a_clamped_timeout_is_kept_by_later_heartbeats_without_timeout_ms() {
    let mut config = test_config();
    // A min_timeout long enough that the client cannot expire between two heartbeats.
    config.min_timeout = std::time::Duration::from_secs(30);
    config.timeout = std::time::Duration::from_secs(60);
    let server = TestServer::start(config).await;
    let mut client = server.client().await;

    assert_eq!(
        client.heartbeat_timeout("low", 1).await["timeout_ms"],
        30_000
    );
    assert_eq!(client.heartbeat("low").await["timeout_ms"], 30_000);
    assert_eq!(server.client_record("low").await["timeout_ms"], 30_000);

    let max_ms = 24 * 3600 * 1000;
    assert_eq!(
        client.heartbeat_timeout("high", u64::MAX).await["timeout_ms"],
        max_ms
    );
    assert_eq!(client.heartbeat("high").await["timeout_ms"], max_ms);
    // From another connection too: the timeout belongs to the client, not the connection.
    let mut other = server.client().await;
    assert_eq!(other.heartbeat("high").await["timeout_ms"], max_ms);
    assert_eq!(server.client_record("high").await["timeout_ms"], max_ms);

    // A new timeout_ms replaces the kept one.
    assert_eq!(
        client.heartbeat_timeout("high", 45_000).await["timeout_ms"],
        45_000
    );
    assert_eq!(client.heartbeat("high").await["timeout_ms"], 45_000);

    server.stop().await;
}

#[actix_rt::test]
async fn an_ack_means_the_heartbeat_has_taken_effect() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    for n in 1..=10u64 {
        client.heartbeat("P-17").await;
        // No polling: right after the ack, the API must already count this heartbeat.
        let record = server.client_record("P-17").await;
        assert_eq!(record["heartbeats"], n, "after ack #{n}: {record}");
        assert_eq!(record["addr"], client.local.to_string());
    }
    assert_eq!(server.metric("heartwatch_heartbeats_total").await, 10.0);

    server.stop().await;
}

#[actix_rt::test]
async fn connect_send_close_clients_get_their_ack() {
    let server = TestServer::start_default().await;

    for n in 1..=3u64 {
        let mut client = server.client().await;
        client.send(&heartbeat_frame("one-shot")).await;
        client.shutdown_write().await;
        let (lines, _) = client.read_until_closed().await;
        assert_eq!(lines.len(), 1, "exactly one reply: {lines:?}");
        assert_ack(&common::parse_json(&lines[0]), "one-shot");
        assert_eq!(server.client_record("one-shot").await["heartbeats"], n);
    }

    // A frame without its final newline before the end of input is still answered.
    let mut client = server.client().await;
    client
        .send_raw(heartbeat_frame("no-newline").as_bytes())
        .await;
    client.shutdown_write().await;
    let (lines, _) = client.read_until_closed().await;
    assert_eq!(lines.len(), 1, "exactly one reply: {lines:?}");
    assert_ack(&common::parse_json(&lines[0]), "no-newline");

    server.stop().await;
}

#[actix_rt::test]
async fn one_connection_carries_several_projs() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    let projs = ["A", "B", "C"];
    for round in 1..=3u64 {
        for (i, proj) in projs.iter().enumerate() {
            let seq = round * 10 + i as u64;
            let reply = client
                .request(json!({"type":"heartbeat","proj":proj,"seq":seq}))
                .await;
            assert_ack(&reply, proj);
            assert_eq!(reply["seq"], seq);
        }
    }
    for proj in projs {
        let record = server.client_record(proj).await;
        assert_eq!(record["heartbeats"], 3, "{record}");
        assert_eq!(record["addr"], client.local.to_string());
    }

    // Pipelined: several frames in one write are answered in order.
    let batch: String = projs
        .iter()
        .map(|p| format!("{}\n", heartbeat_frame(p)))
        .collect();
    client.send_raw(batch.as_bytes()).await;
    for proj in projs {
        assert_ack(&client.recv().await, proj);
    }
    for proj in projs {
        assert_eq!(server.client_record(proj).await["heartbeats"], 4);
    }

    // An offline for one of them leaves the others online.
    client.offline("B").await;
    assert_eq!(server.client_status("B").await, 404);
    assert_eq!(server.client_status("A").await, 200);
    assert_eq!(server.client_status("C").await, 200);

    server.stop().await;
}

#[actix_rt::test]
async fn the_same_proj_from_two_connections_is_one_client() {
    let server = TestServer::start_default().await;
    let mut first = server.client().await;
    let mut second = Client::connect(server.tcp).await;

    first.heartbeat("shared").await;
    second.heartbeat("shared").await;
    let record = server.client_record("shared").await;
    assert_eq!(record["heartbeats"], 2);
    // addr is where the last heartbeat came from.
    assert_eq!(record["addr"], second.local.to_string());
    assert_eq!(server.known_clients().await, 1.0);

    server.stop().await;
}
