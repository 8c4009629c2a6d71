//! Detection as the HTTP API shows it: states and `?state=`, late and recovered events with
//! their evidence on the event stream, pauses and maintenance windows, and the history.

mod common;

use std::time::Duration;

use common::{eventually, http_post, test_config, EventStream, TestServer, IO_TIMEOUT};
use heartwatch::config::AuthConfig;
use heartwatch::Builder;
use serde_json::{json, Value};

/// A server with late verdicts at half the timeout (the default), the rest as tests have it.
async fn server() -> TestServer {
    let mut config = test_config();
    config.late_ratio = 0.5;
    TestServer::start(config).await
}

/// The next event on `stream` about `proj` of kind `kind`, skipping others.
async fn next_of(stream: &mut EventStream, proj: &str, kind: &str) -> Value {
    loop {
        let event = stream.next_data().await;
        if event["proj"] == proj && event["event"] == kind {
            return event;
        }
    }
}

#[actix_rt::test]
async fn a_late_client_is_listed_as_late_with_evidence_and_recovers_with_its_next_heartbeat() {
    let server = server().await;
    let mut stream = EventStream::open(server.http).await;
    let mut client = server.client().await;
    // Long enough that the checks between its late and its offline (a second) are not
    // raced by a busy machine.
    client.heartbeat_timeout("L", 2_000).await;
    client.heartbeat_timeout("L", 2_000).await;
    client.heartbeat_timeout("ON", 60_000).await;

    let late = next_of(&mut stream, "L", "late").await;
    let silent = late["silent_ms"].as_u64().unwrap();
    assert!((1_000..2_000).contains(&silent), "{late}");
    let evidence = &late["evidence"];
    assert_eq!(evidence["detector"], "fixed", "{late}");
    assert_eq!(evidence["timeout_ms"], 2_000, "{late}");
    assert!(evidence["mean_interval_ms"].is_u64(), "{late}");
    assert!(evidence["missed_beats"].is_u64(), "{late}");
    assert!(evidence.get("phi").is_none(), "{late}");

    let listed = server.get("/api/v1/clients?state=late").await;
    assert_eq!(listed.status, 200);
    let projs: Vec<Value> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["proj"].clone())
        .collect();
    assert_eq!(projs, [json!("L")], "{}", listed.body);
    assert_eq!(server.client_record("L").await["state"], "late");
    assert_eq!(server.client_record("ON").await["state"], "online");

    client.heartbeat_timeout("L", 2_000).await;
    let back = next_of(&mut stream, "L", "online").await;
    assert_eq!(back["recovered"], true, "{back}");
    assert_eq!(server.client_record("L").await["state"], "online");
    let online: Vec<Value> = server
        .get("/api/v1/clients?state=online")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["proj"].clone())
        .collect();
    assert_eq!(online, [json!("L"), json!("ON")]);

    // Silent for good: late, then offline, with its evidence.
    next_of(&mut stream, "L", "late").await;
    let offline = next_of(&mut stream, "L", "offline").await;
    assert_eq!(offline["reason"], "timeout");
    assert!(
        offline["evidence"]["silent_ms"].as_u64().unwrap() >= 2_000,
        "{offline}"
    );
    let gone = server.get("/api/v1/clients?state=offline").await.json();
    assert_eq!(gone[0]["proj"], "L", "{gone}");
    assert_eq!(gone[0]["state"], "offline", "{gone}");
    assert_eq!(server.get("/api/v1/clients?state=gone").await.status, 400);
    server.stop().await;
}

#[actix_rt::test]
async fn pauses_and_windows_through_the_api() {
    let server = server().await;
    let mut stream = EventStream::open(server.http).await;
    let mut client = server.client().await;
    client.heartbeat_timeout("P-1", 1_000).await;

    // Unknown: 404. Bad bodies: 400.
    assert_eq!(
        server
            .post("/api/v1/clients/nobody/pause", None)
            .await
            .status,
        404
    );
    assert_eq!(
        server
            .post("/api/v1/clients/nobody/resume", None)
            .await
            .status,
        404
    );
    let bad = server
        .post("/api/v1/clients/P-1/pause", Some(json!({"for": "soon"})))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = server
        .post("/api/v1/pause", Some(json!({"proj": "A-["})))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    let paused = server
        .post("/api/v1/clients/P-1/pause", Some(json!({"for": "10m"})))
        .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.json()["state"], "paused");
    assert!(paused.json()["until"].is_string());
    let event = next_of(&mut stream, "P-1", "paused").await;
    assert!(event["until"].is_string(), "{event}");
    // That it stays past its timeouts is shown in paused time
    // (src/supervision/tests/detection.rs); here, the API's view of it.
    assert_eq!(server.client_record("P-1").await["state"], "paused");
    let resumed = server.post("/api/v1/clients/P-1/resume", None).await;
    assert_eq!(
        (resumed.status, resumed.json()["state"].clone()),
        (200, json!("online"))
    );
    next_of(&mut stream, "P-1", "resumed").await;
    let offline = next_of(&mut stream, "P-1", "offline").await;
    assert_eq!(offline["reason"], "timeout");

    // A window over A-*, then a client coming online inside it.
    client.heartbeat_timeout("A-1", 1_000).await;
    let window = server
        .post("/api/v1/pause", Some(json!({"proj": "A-*", "for": "1h"})))
        .await;
    assert_eq!(window.status, 200, "{}", window.body);
    assert_eq!(window.json()["paused"], json!(["A-1"]));
    client.heartbeat_timeout("A-2", 1_000).await;
    let event = next_of(&mut stream, "A-2", "paused").await;
    assert_eq!(event["window"], "A-*", "{event}");
    assert_eq!(server.client_record("A-2").await["state"], "paused");
    let metrics = server.get("/metrics").await.body;
    for (state, count) in [("paused", 2.0), ("online", 0.0), ("late", 0.0)] {
        let series = format!("heartwatch_clients{{state=\"{state}\"}}");
        assert_eq!(
            common::metric_value(&metrics, &series),
            Some(count),
            "{series} in\n{metrics}"
        );
    }
    let conflict = server.post("/api/v1/clients/A-2/resume", None).await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    let ended = server
        .post("/api/v1/resume", Some(json!({"proj": "A-*"})))
        .await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_eq!(ended.json()["resumed"], json!(["A-1", "A-2"]));
    next_of(&mut stream, "A-1", "offline").await;
    server.stop().await;
}

#[actix_rt::test]
async fn pausing_takes_the_http_token_when_one_is_set() {
    let auth = AuthConfig {
        http_token: "reader-and-writer".into(),
        ..AuthConfig::default()
    };
    let server = TestServer::start_with(Builder::new(test_config()).auth(auth)).await;
    let mut client = server.client().await;
    client.heartbeat("T").await;
    for path in ["/api/v1/clients/T/pause", "/api/v1/clients/T/resume"] {
        let refused = server.post(path, None).await;
        assert_eq!(refused.status, 401, "{path}: {}", refused.body);
    }
    let refused = server
        .post("/api/v1/pause", Some(json!({"proj": "*"})))
        .await;
    assert_eq!(refused.status, 401);
    let bearer = [("authorization", "Bearer reader-and-writer")];
    let ok = http_post(server.http, "/api/v1/clients/T/pause", None, &bearer).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let history = server.get_with("/api/v1/clients/T/history", &bearer).await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(server.get("/api/v1/clients/T/history").await.status, 401);
    server.stop().await;
}

#[actix_rt::test]
async fn the_history_of_a_client_online_and_offline() {
    let server = server().await;
    let mut client = server.client().await;
    for _ in 0..4 {
        client.heartbeat_timeout("H", 60_000).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let history = server.get("/api/v1/clients/H/history").await;
    assert_eq!(history.status, 200, "{}", history.body);
    let history = history.json();
    assert_eq!(history["proj"], "H");
    assert_eq!(history["state"], "online");
    assert_eq!(history["events"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["events"][0]["event"], "online");
    assert!(history["events"][0]["id"].is_u64(), "{history}");
    let intervals = &history["intervals"];
    assert_eq!(intervals["samples"], 3, "{history}");
    for key in ["mean_ms", "p50_ms", "p99_ms", "max_ms"] {
        assert!(intervals[key].as_u64().unwrap() >= 15, "{key}: {history}");
    }
    assert_eq!(history["uptime"]["last_hour"], 1.0, "{history}");

    client.offline("H").await;
    let history = server.get("/api/v1/clients/H/history").await.json();
    assert_eq!(history["state"], "offline");
    let kinds: Vec<Value> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(kinds, [json!("online"), json!("offline")]);
    assert_eq!(history["events"][1]["reason"], "offline");
    assert!(history["events"][1]["evidence"].is_object(), "{history}");
    assert_eq!(
        history["intervals"]["samples"], 3,
        "as they were: {history}"
    );
    let uptime = history["uptime"]["last_hour"].as_f64().unwrap();
    assert!(uptime > 0.0 && uptime <= 1.0, "{history}");

    assert_eq!(
        server
            .get("/api/v1/clients/never-seen/history")
            .await
            .status,
        404
    );
    eventually(IO_TIMEOUT, "H listed as offline", || async {
        server.get("/api/v1/clients?state=offline").await.json()[0]["proj"] == "H"
    })
    .await;
    server.stop().await;
}
