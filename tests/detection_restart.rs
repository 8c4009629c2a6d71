//! What detection keeps across a restart, with the real binary on one event log: pauses (by
//! name and windows) and the history.

mod common;

use std::path::Path;

use common::{assert_ack, http_post, BinServer, Client, IO_TIMEOUT};
use serde_json::{json, Value};

fn spawn(dir: &Path) -> BinServer {
    let path = dir.display().to_string();
    let env = [
        ("HEARTWATCH__STORAGE__PATH", path.as_str()),
        ("HEARTWATCH__STORAGE__FSYNC", "always"),
    ];
    BinServer::spawn_with("127.0.0.1:0", &env, &[])
}

async fn stop(server: &mut BinServer) {
    server.signal("TERM");
    assert!(
        server.wait_exit(IO_TIMEOUT).await.is_some(),
        "SIGTERM did not stop the server"
    );
}

#[actix_rt::test]
async fn pauses_and_the_history_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(dir.path());
    let mut client = Client::connect(first.tcp).await;
    assert_ack(&client.heartbeat_timeout("PAUSED", 1_000).await, "PAUSED");
    assert_ack(&client.heartbeat_timeout("GONE", 1_000).await, "GONE");
    let paused = http_post(first.http, "/api/v1/clients/PAUSED/pause", None, &[]).await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    let window = http_post(
        first.http,
        "/api/v1/pause",
        Some(json!({"proj": "W-*", "for": "1h"})),
        &[],
    )
    .await;
    assert_eq!(window.status, 200, "{}", window.body);
    assert_eq!(client.offline("GONE").await["type"], "ack");
    drop(client);
    stop(&mut first).await;

    let second = spawn(dir.path());
    // Recovered and paused again (that a paused client outlives its timeout is shown in
    // paused time, src/supervision/tests/detection.rs).
    let record = second.client_record("PAUSED").await;
    assert_eq!(record["state"], "paused", "{record}");
    // The window too: a client coming online inside it is paused.
    let mut client = Client::connect(second.tcp).await;
    assert_ack(&client.heartbeat_timeout("W-1", 1_000).await, "W-1");
    assert_eq!(second.client_record("W-1").await["state"], "paused");

    // The history of a client that left before the restart.
    let history = second.get("/api/v1/clients/GONE/history").await;
    assert_eq!(history.status, 200, "{}", history.body);
    let history = history.json();
    assert_eq!(history["state"], "offline");
    let kinds: Vec<Value> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(kinds, [json!("online"), json!("offline")], "{history}");
    let paused = second.get("/api/v1/clients/PAUSED/history").await.json();
    let kinds: Vec<Value> = paused["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(kinds, [json!("online"), json!("paused")], "{paused}");
    assert_eq!(paused["state"], "paused");
    assert_eq!(
        second
            .get("/api/v1/clients/never-seen/history")
            .await
            .status,
        404
    );
}
