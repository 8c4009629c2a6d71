//! The HTTP ingest (`ingest.http`): `/ping/{proj}` is a heartbeat and `/ping/{proj}/offline`
//! an offline, answered with the reply the same frame gets over TCP, with a fitting status;
//! the protocol tokens per proj, the frame budget per source address, the frame size limit;
//! TLS when `[tls]` is on; the real binary configured from the environment.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::pki::Pki;
use common::{
    event_kind, http_send, parse_json, test_config, BinServer, HttpResponse, TestServer, IO_TIMEOUT,
};
use heartwatch::auth::Secret;
use heartwatch::config::{AuthConfig, IngestConfig, SessionConfig};
use heartwatch::Builder;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::{timeout, Instant};

const GLOBAL: &str = "global-5d0c3e7a9b1f2468";
const A_TOKEN: &str = "proj-a-7e4b19c2d8f06a35";

fn ingest() -> IngestConfig {
    IngestConfig {
        http: Some("127.0.0.1:0".parse().expect("address")),
        ..IngestConfig::default()
    }
}

/// A server with the HTTP ingest on, and the ingest's address.
async fn start(builder: Builder) -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(builder.ingest(ingest())).await;
    let ping = server
        .running()
        .http_ingest_addr()
        .expect("the HTTP ingest is on");
    (server, ping)
}

/// `method path` on the ingest at `addr` with `headers`.
async fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = awc::Client::new().request(method, format!("http://{addr}{path}"));
    for &header in headers {
        request = request.insert_header(header);
    }
    http_send(request).await
}

/// Asserts that `response` is the error `code` with `status`, a JSON error frame.
fn assert_refused(response: &HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

async fn error_count(server: &TestServer, code: &str) -> f64 {
    server
        .metric(&format!(
            "heartwatch_ingest_errors_total{{ingest=\"http\",code=\"{code}\"}}"
        ))
        .await
}

/// One HTTP/1.1 exchange on a raw socket from `source` (port 0), with `Connection: close`:
/// the status, the response's head and its body as received. For what an HTTP client would
/// hide or decide for the test (the source address, a body longer than it says, chunks).
async fn raw(addr: SocketAddr, source: IpAddr, head: &str, body: &[u8]) -> (u16, String, String) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind");
    let mut stream = timeout(IO_TIMEOUT, socket.connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    let request = format!("{head}\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write the body");
    // Read up to the end of the answer (its content-length): after a refusal the server may
    // keep the connection open to drain a body the client has not finished.
    let mut received = Vec::new();
    let read = timeout(IO_TIMEOUT, async {
        let mut buffer = [0u8; 4096];
        while !complete(&received) {
            match stream.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    read.await.expect("no answer in time");
    let text = String::from_utf8(received).expect("UTF-8");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Whether `received` holds a whole response with a `content-length`.
fn complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length: ")?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .is_some_and(|length| body.len() >= length)
}

fn source(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[actix_rt::test]
async fn a_ping_is_a_heartbeat_answered_with_the_ack_of_the_same_frame() {
    let (server, ping) = start(Builder::new(test_config())).await;
    let mut events = server.event_log();

    let first = request("GET", ping, "/ping/H-1?timeout=3s&seq=1", &[]).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("cache-control"), Some("no-store"));
    assert_eq!(
        first.body,
        "{\"type\":\"ack\",\"proj\":\"H-1\",\"seq\":1,\"timeout_ms\":3000,\"interval_ms\":1000}\n"
    );
    // The same frame over TCP gets the same line.
    let mut client = server.client().await;
    let tcp = client
        .request(json!({"type":"heartbeat","proj":"H-1","seq":1,"timeout_ms":3000}))
        .await;
    assert_eq!(parse_json(&first.body), tcp);

    // POST beats too; the timeout asked for stays, as over TCP.
    let second = request("POST", ping, "/ping/H-1?seq=2", &[]).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        second.json(),
        json!({"type":"ack","proj":"H-1","seq":2,"timeout_ms":3000,"interval_ms":1000})
    );
    let record = server.client_record("H-1").await;
    assert_eq!(record["heartbeats"], 3, "{record}");
    assert_eq!(record["timeout_ms"], 3000, "{record}");
    assert_eq!(event_kind(&events.next().await), "online");

    // A bare number is seconds; timeout_ms is the frame's own field.
    let asked = request("GET", ping, "/ping/H-2?timeout=45", &[]).await;
    assert_eq!(asked.json()["timeout_ms"], 45_000, "{asked:?}");
    let asked = request("GET", ping, "/ping/H-2?timeout_ms=2500", &[]).await;
    assert_eq!(asked.json()["timeout_ms"], 2_500, "{asked:?}");
    // Any proj a frame may carry, percent-encoded.
    let slash = request("POST", ping, "/ping/site%2Fdb%20%C3%A9", &[]).await;
    assert_eq!(slash.json()["proj"], "site/db é", "{slash:?}");
    assert_eq!(server.client_status("site%2Fdb%20%C3%A9").await, 200);

    let heartbeats = server
        .metric("heartwatch_ingest_requests_total{ingest=\"http\"}")
        .await;
    assert_eq!(heartbeats, 5.0);
    drop(client);
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_of_the_http_ingest_has_a_watchdog_and_can_leave_at_once() {
    let (server, ping) = start(Builder::new(test_config())).await;
    let mut events = server.event_log();

    let ack = request("POST", ping, "/ping/W-1?timeout=200ms", &[]).await;
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(event_kind(&events.next().await), "online");
    // Nothing more comes: the watchdog declares it offline.
    assert_eq!(event_kind(&events.next().await), "offline(timeout)");

    let ack = request("GET", ping, "/ping/W-2", &[]).await;
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(event_kind(&events.next().await), "online");
    let left = request("POST", ping, "/ping/W-2/offline?seq=9", &[]).await;
    assert_eq!(left.status, 200, "{left:?}");
    assert_eq!(left.body, "{\"type\":\"ack\",\"proj\":\"W-2\",\"seq\":9}\n");
    assert_eq!(event_kind(&events.next().await), "offline(offline)");
    assert_eq!(server.client_status("W-2").await, 404);
    // GET takes it offline too, and an offline of a client that is not online is acked.
    let again = request("GET", ping, "/ping/W-2/offline", &[]).await;
    assert_eq!(again.json(), json!({"type":"ack","proj":"W-2"}));
    server.stop().await;
}

#[actix_rt::test]
async fn each_bad_request_gets_the_code_its_frame_would_get_and_a_fitting_status() {
    let (server, ping) = start(Builder::new(test_config())).await;
    let long = "x".repeat(257);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("GET", "/ping/a%0Ab".into(), 400, "bad_proj"),
        ("GET", format!("/ping/{long}"), 400, "bad_proj"),
        ("POST", "/ping/a%FFb".into(), 400, "bad_utf8"),
        ("GET", "/ping/B?timeout=0".into(), 400, "bad_timeout"),
        ("GET", "/ping/B?timeout=soon".into(), 400, "bad_timeout"),
        ("GET", "/ping/B?timeout_ms=1.5".into(), 400, "bad_timeout"),
        ("GET", "/ping/B?seq=-1".into(), 400, "bad_seq"),
        ("POST", "/ping/B/offline?seq=x".into(), 400, "bad_seq"),
        ("GET", "/ping".into(), 404, "unknown_type"),
        ("GET", "/api/v1/clients".into(), 404, "unknown_type"),
        ("PUT", "/ping/B".into(), 405, "unknown_type"),
        ("DELETE", "/ping/B/offline".into(), 405, "unknown_type"),
    ];
    for (method, path, status, code) in &cases {
        let response = request(method, ping, path, &[]).await;
        assert_refused(&response, *status, code);
        if *status == 405 {
            assert_eq!(response.header("allow"), Some("GET, POST"), "{path}");
        }
    }
    for (code, times) in [
        ("bad_proj", 2.0),
        ("bad_utf8", 1.0),
        ("bad_timeout", 3.0),
        ("bad_seq", 2.0),
        ("unknown_type", 4.0),
    ] {
        assert_eq!(error_count(&server, code).await, times, "{code}");
    }
    // None of them brought a client online.
    let clients = server.get("/api/v1/clients").await.json();
    assert_eq!(clients, json!([]), "{clients}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_body_longer_than_a_frame_is_413_and_a_short_one_is_ignored() {
    let mut config = test_config();
    config.max_frame_bytes = 256;
    let (server, ping) = start(Builder::new(config)).await;
    let local = source(1);

    // Refused on its declared length, before any of it is sent (or read).
    let head = "POST /ping/BIG HTTP/1.1\r\nContent-Length: 100000";
    let (status, _, body) = raw(ping, local, head, b"").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(parse_json(&body)["code"], "frame_too_large", "{body}");
    // A chunked body says no length: refused once more than a frame has been read (this
    // client sends one chunk and waits).
    let chunk = format!("{:x}\r\n{}\r\n", 300, "y".repeat(300));
    let head = "POST /ping/BIG HTTP/1.1\r\nTransfer-Encoding: chunked";
    let (status, _, body) = raw(ping, local, head, chunk.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_count(&server, "frame_too_large").await, 2.0);
    assert_eq!(server.client_status("BIG").await, 404);

    // A cron job that posts its output: read, dropped, the ping counts.
    let head = "POST /ping/SMALL HTTP/1.1\r\nContent-Length: 200";
    let (status, _, body) = raw(ping, local, head, &[b'z'; 200]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(parse_json(&body)["proj"], "SMALL");
    server.stop().await;
}

#[actix_rt::test]
async fn pings_over_their_source_budget_are_429_and_other_sources_are_served() {
    let session = SessionConfig {
        max_frame_rate: 1,
        frame_burst: 2,
        ..SessionConfig::default()
    };
    let (server, ping) = start(Builder::new(test_config()).session(session)).await;
    // One token a second: the third ping of a source is refused unless a second passed
    // between the first and the third. On a machine that slow, try again from another source.
    let mut refused = None;
    for attempt in 0..3u8 {
        let from = source(10 + attempt);
        let started = Instant::now();
        let mut statuses = Vec::new();
        let mut last = (String::new(), String::new());
        for seq in 0..3 {
            let head = format!("GET /ping/R-{attempt}?seq={seq} HTTP/1.1");
            let (status, head, body) = raw(ping, from, &head, b"").await;
            statuses.push(status);
            last = (head, body);
        }
        if started.elapsed() < Duration::from_millis(900) {
            assert_eq!(statuses, [200, 200, 429], "{last:?}");
            assert!(last.0.contains("\r\nretry-after: 1"), "{}", last.0);
            refused = Some(last.1);
            break;
        }
        eprintln!(
            "note: three pings took {:?}; trying again",
            started.elapsed()
        );
    }
    let body = refused.expect("three pings within a second, in one of three tries");
    let error = parse_json(&body);
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("127.0.0."),
        "{error}"
    );
    // Another source has its own budget.
    let (status, _, body) = raw(ping, source(20), "GET /ping/R-other HTTP/1.1", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(error_count(&server, "rate_limited").await >= 1.0);
    server.stop().await;
}

fn auth() -> AuthConfig {
    AuthConfig {
        token: Secret::from(GLOBAL),
        proj_tokens: [("A-*".to_string(), Secret::from(A_TOKEN))].into(),
        ..AuthConfig::default()
    }
}

#[actix_rt::test]
async fn with_protocol_auth_the_bearer_token_is_checked_per_proj() {
    let (server, ping) = start(Builder::new(test_config()).auth(auth())).await;
    let bearer = |token: &str| format!("Bearer {token}");
    let a_token = bearer(A_TOKEN);
    let global = bearer(GLOBAL);
    let wrong = bearer("proj-a-7e4b19c2d8f06a36");
    let cases: [(&str, Option<&str>, u16); 9] = [
        ("/ping/A-1", None, 401),
        ("/ping/A-1", Some(&wrong), 401),
        ("/ping/A-1", Some(A_TOKEN), 401), // no scheme
        ("/ping/A-1", Some(&a_token), 200),
        ("/ping/B-1", Some(&a_token), 401),
        ("/ping/B-1", Some(&global), 200),
        ("/ping/B-1/offline", Some(&a_token), 401),
        ("/ping/B-1/offline", Some(&global), 200),
        ("/ping/A-2/offline", Some(&a_token), 200),
    ];
    for (path, header, status) in cases {
        let headers: Vec<(&str, &str)> = header.map(|h| ("authorization", h)).into_iter().collect();
        let response = request("POST", ping, path, &headers).await;
        if status == 200 {
            assert_eq!(response.status, 200, "{path} {header:?}: {response:?}");
            continue;
        }
        let body = assert_refused(&response, 401, "unauthorized");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer realm=\"heartwatch\""),
            "{path}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            !message.contains(GLOBAL) && !message.contains(A_TOKEN),
            "{message}"
        );
    }
    // The scheme is case-insensitive.
    let lower = format!("bearer {A_TOKEN}");
    let response = request("GET", ping, "/ping/A-3", &[("authorization", &lower)]).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(error_count(&server, "unauthorized").await, 5.0);
    assert_eq!(server.client_status("A-1").await, 200);
    assert_eq!(server.client_status("B-1").await, 404, "taken offline");
    server.stop().await;
}

#[actix_rt::test]
async fn a_server_at_its_client_limit_answers_503_and_keeps_its_clients() {
    let mut config = test_config();
    config.max_clients = 1;
    let (server, ping) = start(Builder::new(config)).await;
    assert_eq!(request("GET", ping, "/ping/FULL-1", &[]).await.status, 200);
    let refused = request("GET", ping, "/ping/FULL-2", &[]).await;
    assert_refused(&refused, 503, "too_many_clients");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(request("GET", ping, "/ping/FULL-1", &[]).await.status, 200);
    assert_eq!(server.client_record("FULL-1").await["heartbeats"], 2);
    assert_eq!(error_count(&server, "too_many_clients").await, 1.0);
    server.stop().await;
}

#[actix_rt::test]
async fn with_tls_on_the_http_ingest_serves_https() {
    let pki = Pki::new("ping");
    let server = TestServer::start_with(
        Builder::new(test_config())
            .tls(pki.server_tls())
            .ingest(ingest()),
    )
    .await;
    let ping = server.running().http_ingest_addr().expect("on");
    let tls = pki.client_tls();
    let connector = awc::Connector::new().rustls_0_23(tls.config.clone());
    let client = awc::Client::builder().connector(connector).finish();
    let url = format!(
        "https://{}:{}/ping/TLS-P?seq=4",
        tls.server_name.to_str(),
        ping.port()
    );
    let response = http_send(client.post(url).address(ping)).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.json(),
        json!({"type":"ack","proj":"TLS-P","seq":4,"timeout_ms":20000,"interval_ms":6667})
    );
    let info = server
        .running()
        .registry()
        .get("TLS-P".parse().unwrap())
        .await;
    assert_eq!(info.unwrap().map(|c| c.heartbeats), Some(1));
    // Plaintext on the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(ping).await.expect("connect");
    plain
        .write_all(b"GET /ping/TLS-X HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = timeout(IO_TIMEOUT, plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    server.stop().await;
}

/// The address the binary logged for the HTTP ingest.
fn logged_ping_addr(startup: &[String]) -> SocketAddr {
    startup
        .iter()
        .find_map(|line| {
            let rest = line.split("HTTP ingest: pings on http://").nth(1)?;
            rest.split('/').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no HTTP ingest line in {startup:#?}"))
}

#[actix_rt::test]
async fn the_binary_turns_the_http_ingest_on_from_the_environment() {
    let off = BinServer::spawn(&[]);
    assert!(
        !off.startup.iter().any(|l| l.contains("ingest")),
        "off by default: {:#?}",
        off.startup
    );
    drop(off);
    let server = BinServer::spawn_with(
        "127.0.0.1:0",
        &[
            ("HEARTWATCH__INGEST__HTTP", "127.0.0.1:0"),
            ("HEARTWATCH__STORAGE__PATH", ""),
        ],
        &[],
    );
    let ping = logged_ping_addr(&server.startup);
    let ack = request("GET", ping, "/ping/BIN-1?timeout=30s&seq=1", &[]).await;
    assert_eq!(
        ack.json(),
        json!({"type":"ack","proj":"BIN-1","seq":1,"timeout_ms":30000,"interval_ms":10000})
    );
    let record = server.client_record("BIN-1").await;
    assert_eq!(record["timeout_ms"], 30000, "{record}");
    let left = request("POST", ping, "/ping/BIN-1/offline", &[]).await;
    assert_eq!(left.status, 200, "{left:?}");
    assert_eq!(server.client_status("BIN-1").await, 404);
}
