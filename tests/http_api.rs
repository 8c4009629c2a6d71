//! The HTTP API: health, clients (one, list, paging, filter), errors, metrics, event stream.

mod common;

use std::time::{Duration, SystemTime};

use common::{http_get, EventStream, TestServer};
use serde_json::Value;

fn projs(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|c| c["proj"].as_str().expect("proj"))
        .collect()
}

#[actix_rt::test]
async fn healthz_answers_200() {
    let server = TestServer::start_default().await;
    let response = server.get("/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.trim(), "ok");
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_record_has_every_documented_field() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    let before = SystemTime::now();
    client.heartbeat_timeout("P-17", 15_000).await;
    client.heartbeat("P-17").await;

    let one = server.get("/api/v1/clients/P-17").await;
    assert_eq!(one.status, 200);
    assert!(
        one.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{one:?}"
    );
    let record = one.json();
    let fields: Vec<&str> = record
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = fields.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "addr",
            "heartbeats",
            "last_seen",
            "proj",
            "state",
            "timeout_ms"
        ],
        "{record}"
    );
    assert_eq!(record["proj"], "P-17");
    assert_eq!(record["state"], "online");
    assert_eq!(record["heartbeats"], 2);
    assert_eq!(record["timeout_ms"], 15_000);
    assert_eq!(record["addr"], client.local.to_string());
    let last_seen = record["last_seen"].as_str().expect("last_seen is a string");
    let last_seen = humantime::parse_rfc3339(last_seen)
        .unwrap_or_else(|e| panic!("last_seen {last_seen:?} is not RFC 3339: {e}"));
    // Millisecond precision: allow for the truncation.
    assert!(last_seen + Duration::from_millis(1) >= before, "{record}");
    assert!(last_seen <= SystemTime::now(), "{record}");

    // The list holds the same record.
    let list = server.get("/api/v1/clients").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json(), serde_json::json!([record]));

    server.stop().await;
}

#[actix_rt::test]
async fn the_list_pages_in_proj_order() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    for proj in ["P-3", "P-1", "P-5", "P-2", "P-4"] {
        client.heartbeat(proj).await;
    }

    let all = server.get("/api/v1/clients").await.json();
    assert_eq!(projs(&all), ["P-1", "P-2", "P-3", "P-4", "P-5"]);

    let page = server.get("/api/v1/clients?limit=2&after=P-1").await;
    assert_eq!(page.status, 200);
    assert_eq!(projs(&page.json()), ["P-2", "P-3"]);
    let page = server.get("/api/v1/clients?limit=2&after=P-3").await.json();
    assert_eq!(projs(&page), ["P-4", "P-5"]);
    let page = server.get("/api/v1/clients?limit=2&after=P-5").await.json();
    assert!(projs(&page).is_empty());
    let first = server.get("/api/v1/clients?limit=2").await.json();
    assert_eq!(projs(&first), ["P-1", "P-2"]);
    // `after` need not be a client that exists.
    let page = server.get("/api/v1/clients?after=P-25").await.json();
    assert_eq!(projs(&page), ["P-3", "P-4", "P-5"]);

    let online = server.get("/api/v1/clients?state=online").await;
    assert_eq!(online.status, 200);
    assert_eq!(projs(&online.json()), ["P-1", "P-2", "P-3", "P-4", "P-5"]);
    let page = server
        .get("/api/v1/clients?state=online&limit=1&after=P-4")
        .await
        .json();
    assert_eq!(projs(&page), ["P-5"]);

    server.stop().await;
}

#[actix_rt::test]
async fn bad_query_parameters_are_400_with_a_json_error() {
    let server = TestServer::start_default().await;
    for query in [
        "state=sleeping",
        "state=",
        "after=",
        "limit=-1",
        "limit=many",
    ] {
        let response = server.get(&format!("/api/v1/clients?{query}")).await;
        assert_eq!(response.status, 400, "{query}: {response:?}");
        let body = response.json();
        assert_eq!(body["error"], "bad_request", "{query}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    server.stop().await;
}

#[actix_rt::test]
async fn an_unknown_client_is_404_with_a_json_error() {
    let server = TestServer::start_default().await;
    let response = server.get("/api/v1/clients/nobody").await;
    assert_eq!(response.status, 404);
    let body = response.json();
    assert_eq!(body["error"], "not_found", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("nobody")),
        "{body}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_proj_is_looked_up_percent_decoded() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    for proj in ["a b", "é-ü-中", "P%17", "a/b", "x?y"] {
        client.heartbeat(proj).await;
    }
    for (path, proj) in [
        ("a%20b", "a b"),
        ("%C3%A9-%C3%BC-%E4%B8%AD", "é-ü-中"),
        ("P%2517", "P%17"),
        ("a%2Fb", "a/b"),
        ("x%3Fy", "x?y"),
    ] {
        let response = server.get(&format!("/api/v1/clients/{path}")).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.json()["proj"], proj);
    }
    let page = server.get("/api/v1/clients?after=a%20b&limit=1").await;
    assert_eq!(projs(&page.json()), ["a/b"]);
    server.stop().await;
}

#[actix_rt::test]
async fn metrics_expose_every_series() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    client.heartbeat("m").await;
    client.heartbeat("m").await;
    client.send("{oops").await;
    client.recv().await;

    let response = server.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let text = &response.body;
    for (series, value) in [
        ("heartwatch_clients{state=\"online\"}", 1.0),
        ("heartwatch_clients{state=\"late\"}", 0.0),
        ("heartwatch_clients{state=\"paused\"}", 0.0),
        ("heartwatch_clients{state=\"flapping\"}", 0.0),
        ("heartwatch_heartbeats_total", 2.0),
        ("heartwatch_offline_total{reason=\"timeout\"}", 0.0),
        ("heartwatch_offline_total{reason=\"offline\"}", 0.0),
        ("heartwatch_connections", 1.0),
        ("heartwatch_registry_running", 1.0),
        ("heartwatch_frame_errors_total{code=\"bad_json\"}", 1.0),
    ] {
        assert_eq!(
            common::metric_value(text, series),
            Some(value),
            "{series} in\n{text}"
        );
    }
    server.stop().await;
}

#[actix_rt::test]
async fn unknown_paths_are_404() {
    let server = TestServer::start_default().await;
    assert_eq!(http_get(server.http, "/api/v2/clients").await.status, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn the_event_stream_delivers_online_then_offline_in_order() {
    let server = TestServer::start_default().await;
    let mut stream = EventStream::open(server.http).await;
    let mut client = server.client().await;

    client.heartbeat_timeout("sse", 200).await;
    let online = stream.next_data().await;
    assert_eq!(online["event"], "online", "{online}");
    assert_eq!(online["proj"], "sse");
    assert_eq!(online["addr"], client.local.to_string());
    assert!(humantime::parse_rfc3339(online["at"].as_str().unwrap()).is_ok());

    let offline = stream.next_data().await;
    assert_eq!(offline["event"], "offline", "{offline}");
    assert_eq!(offline["proj"], "sse");
    assert_eq!(offline["reason"], "timeout");
    assert_eq!(offline["addr"], client.local.to_string());
    let last_seen = humantime::parse_rfc3339(offline["last_seen"].as_str().unwrap())
        .expect("last_seen is RFC 3339");
    let at = humantime::parse_rfc3339(offline["at"].as_str().unwrap()).expect("at");
    assert!(
        at.duration_since(last_seen).unwrap_or_default() >= Duration::from_millis(190),
        "declared offline one timeout after the last heartbeat: {offline}"
    );

    // Then a second round, explicit this time, on a second stream too.
    let mut second = EventStream::open(server.http).await;
    client.heartbeat("sse").await;
    client.offline("sse").await;
    for s in [&mut stream, &mut second] {
        let online = s.next_data().await;
        assert_eq!(online["event"], "online");
        let offline = s.next_data().await;
        assert_eq!(offline["event"], "offline");
        assert_eq!(offline["reason"], "offline");
    }

    server.stop().await;
}

/// An application that mounts the API in its own actix-web server keeps serving it after
/// heartwatch stopped: queries then answer 503 with a JSON error, not an empty list that
/// would say nobody is online (before the fix: `200 []` and `404`).
#[actix_rt::test]
async fn queries_answer_503_once_the_server_is_stopping() {
    let running = heartwatch::Builder::new(common::test_config())
        .http(false)
        .log_events(false)
        .start()
        .await
        .expect("server starts");
    let api = running.api_state();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let app = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(heartwatch::http::configure(api.clone()))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let app_handle = app.handle();
    actix_rt::spawn(app);
    let mut client = common::Client::connect(running.tcp_addr()).await;
    common::assert_ack(&client.heartbeat("P-1").await, "P-1");
    assert_eq!(http_get(addr, "/api/v1/clients/P-1").await.status, 200);

    running.stop().await;
    for path in ["/api/v1/clients", "/api/v1/clients/P-1"] {
        let response = http_get(addr, path).await;
        assert_eq!(response.status, 503, "{path}: {response:?}");
        assert_eq!(response.json()["error"], "unavailable", "{path}");
    }
    app_handle.stop(false).await;
}
