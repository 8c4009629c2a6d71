//! Half-open connections, with the real binaries on 127.0.0.1: a frozen client (SIGSTOP) whose
//! socket stays open, a frozen server, a server that crashes and is restarted on the same port,
//! a connection that never sends a frame, and one that goes silent after a heartbeat.
//!
//! A frozen process keeps its sockets: the kernel still acknowledges data and completes
//! handshakes for it. Only the application-level heartbeat (the server's watchdog and idle
//! probe, the client's ack timeout) notices. Durations are short and every wait is bounded. A
//! "not yet" check counts only if it was answered before the earliest moment it could change;
//! one answered later runs the scenario again with longer timeouts (`retry_when_late`).

mod common;

use std::time::{Duration, SystemTime};

use common::{
    eventually, retry_when_late, BeatProcess, BinServer, Client, EventStream, TooLate, IO_TIMEOUT,
};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The idle probe of these tests: a ping after 300 ms of silence, 200 ms for each answer, two
/// unanswered pings close the connection, 700 ms after its last frame.
const IDLE_PROBE: [(&str, &str); 3] = [
    ("HEARTWATCH__SESSION__IDLE_PING", "300ms"),
    ("HEARTWATCH__SESSION__PONG_TIMEOUT", "200ms"),
    ("HEARTWATCH__SESSION__PING_RETRIES", "2"),
];

/// How long after its last frame the idle probe closes a silent connection.
const PROBE_CLOSES_AFTER: Duration = Duration::from_millis(300 + 2 * 200);

/// Longest wait for a detection that is due in about a second.
const DETECTION_DEADLINE: Duration = Duration::from_secs(3);

/// The monotonic instant at which the wall clock reads `wall` (for deadlines the server
/// computes from the wall-clock times it reports).
fn instant_at(wall: SystemTime) -> Instant {
    let (now, now_wall) = (Instant::now(), SystemTime::now());
    match wall.duration_since(now_wall) {
        Ok(ahead) => now + ahead,
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    }
}

/// An RFC 3339 field of `value`, parsed.
fn time_field(value: &Value, field: &str) -> SystemTime {
    let text = value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
}

/// Waits until `series` of `server`'s metrics equals `expected`, for at most `within`.
async fn metric_reaches(server: &BinServer, series: &str, expected: f64, within: Duration) {
    eventually(within, &format!("{series} = {expected}"), || async {
        server.metric(series).await == expected
    })
    .await;
}

#[actix_rt::test]
async fn a_frozen_client_is_declared_offline_on_time_and_its_session_closed_by_the_idle_probe() {
    retry_when_late(frozen_client).await;
}

/// The frozen-client scenario with the client's timeout `scale` seconds.
async fn frozen_client(scale: u32) -> Result<(), TooLate> {
    let server = BinServer::spawn_with("127.0.0.1:0", &IDLE_PROBE, &[]);
    let mut events = EventStream::open(server.http).await;
    let timeout = Duration::from_secs(1) * scale;
    let detection_deadline = DETECTION_DEADLINE + timeout;
    // It beats every 100 ms, more often than idle_ping: a live client is never pinged.
    let mut client = BeatProcess::spawn(
        server.tcp,
        "F-1",
        &["--interval", "100ms", "--timeout", &format!("{scale}s")],
    );
    let acked = client.expect_state("acked", IO_TIMEOUT).await;
    assert_eq!(
        acked.value["timeout_ms"],
        timeout.as_millis() as u64,
        "{}",
        acked.value
    );
    let online = events.next_data().await;
    assert_eq!(
        (&online["event"], &online["proj"]),
        (&json!("online"), &json!("F-1"))
    );
    eventually(IO_TIMEOUT, "F-1 is listed", || async {
        server.client_status("F-1").await == 200
    })
    .await;

    client.signal("STOP");
    let stopped = Instant::now();
    // Its last heartbeat is no earlier than this one: its watchdog cannot fire before
    // `last_seen + timeout`.
    let record = server.get("/api/v1/clients/F-1").await;
    let still_online = match record.status {
        200 => {
            let online_until = instant_at(time_field(&record.json(), "last_seen") + timeout);
            // The idle probe has pinged it by now; pings do not take a client offline.
            tokio::time::sleep_until(stopped + Duration::from_millis(400)).await;
            server
                .assert_online_until("F-1", online_until - Duration::from_millis(50))
                .await
                .map(drop)
        }
        404 => Err(TooLate("F-1 was already gone when frozen".into())),
        _ => panic!("GET F-1: {record:?}"),
    };

    // The watchdog declares it offline, on time: not before its timeout, and soon after it.
    eventually(detection_deadline, "F-1 is removed", || async {
        server.client_status("F-1").await == 404
    })
    .await;
    let offline = events.next_data().await;
    assert_eq!(
        (&offline["event"], &offline["proj"], &offline["reason"]),
        (&json!("offline"), &json!("F-1"), &json!("timeout")),
        "{offline}"
    );
    let silent_for = time_field(&offline, "at")
        .duration_since(time_field(&offline, "last_seen"))
        .expect("offline after the last heartbeat");
    assert!(
        silent_for >= timeout - Duration::from_millis(1),
        "declared offline {silent_for:?} after its last heartbeat, its timeout is {timeout:?}"
    );
    eprintln!("offline {silent_for:?} after its last heartbeat");
    assert_eq!(
        server
            .metric("heartwatch_offline_total{reason=\"timeout\"}")
            .await,
        1.0
    );
    assert_eq!(server.known_clients().await, 0.0);

    // Its session, silent since the freeze, was pinged twice and closed by the idle probe,
    // due 700 ms after its last frame.
    metric_reaches(
        &server,
        "heartwatch_sessions_closed_total{reason=\"idle\"}",
        1.0,
        detection_deadline.saturating_sub(stopped.elapsed()),
    )
    .await;
    assert!(server.metric("heartwatch_pings_total").await >= 2.0);
    assert_eq!(server.metric("heartwatch_connections").await, 0.0);
    assert_eq!(
        server
            .metric("heartwatch_sessions_closed_total{reason=\"eof\"}")
            .await,
        0.0
    );

    // Thawed, the client finds its connection closed, reconnects and comes back online.
    client.signal("CONT");
    let down = client.expect_state("down", IO_TIMEOUT).await;
    client.expect_state("up", IO_TIMEOUT).await;
    client.expect_state("acked", IO_TIMEOUT).await;
    let back = events.next_data().await;
    assert_eq!(
        (&back["event"], &back["proj"]),
        (&json!("online"), &json!("F-1")),
        "after {}",
        down.value
    );
    assert_eq!(server.client_status("F-1").await, 200);
    still_online
}

#[actix_rt::test]
async fn a_frozen_server_is_declared_down_after_the_retries_and_rejoined_once_it_resumes() {
    let interval = Duration::from_millis(200);
    let ack_timeout = Duration::from_millis(300);
    let server = BinServer::spawn(&[]);
    let mut client = BeatProcess::spawn(
        server.tcp,
        "S-1",
        &[
            "--interval",
            "200ms",
            "--ack-timeout",
            "300ms",
            "--retries",
            "2",
            "--backoff-max",
            "500ms",
        ],
    );
    client.expect_state("up", IO_TIMEOUT).await;
    let first = client.expect_state("acked", IO_TIMEOUT).await;

    let stopped_wall = SystemTime::now();
    server.signal("STOP");

    // Two heartbeats in a row go unanswered, 300 ms each. A heartbeat sent just before the
    // freeze may have started its wait a little earlier, hence the margin.
    let mut last_ack = first.clone();
    let down = loop {
        let line = client
            .next_line(DETECTION_DEADLINE)
            .await
            .unwrap_or_else(|| panic!("not declared down; {}", client.so_far()));
        match line.state() {
            "acked" => last_ack = line,
            "down" => break line,
            other => panic!("{other} before down; {}", client.so_far()),
        }
    };
    assert_eq!(down.value["reason"], "ack_timeout", "{}", client.so_far());
    assert!(
        down.value["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("2 heartbeats in a row")),
        "{}",
        down.value
    );
    let down_after = down.at().duration_since(stopped_wall).unwrap_or_default();
    eprintln!("down {down_after:?} after the freeze");
    let earliest = stopped_wall + 2 * ack_timeout - Duration::from_millis(150);
    assert!(
        down.at() >= earliest,
        "down {down_after:?} after the freeze, before two ack timeouts ({ack_timeout:?} each)"
    );
    // Measured from its last ack: the next heartbeat went out an interval (less 10% jitter)
    // later, and it and its retry waited the ack timeout each.
    let since_ack = down
        .at()
        .duration_since(last_ack.at())
        .expect("down after the last ack");
    assert!(
        since_ack >= interval.mul_f64(0.9) + 2 * ack_timeout - Duration::from_millis(50),
        "down {since_ack:?} after the last ack"
    );

    // While the server is frozen, the kernel still completes handshakes, so the client may
    // come up and go down again; only what follows the thaw matters.
    let resumed_wall = SystemTime::now();
    server.signal("CONT");
    let mut since_down = Vec::new();
    let acked = loop {
        let line = client
            .next_line(DETECTION_DEADLINE)
            .await
            .unwrap_or_else(|| panic!("no ack after the thaw; {}", client.so_far()));
        if line.state() == "acked" {
            break line;
        }
        since_down.push(line.state().to_owned());
    };
    // The ack came on a connection the client made again by itself after declaring the
    // server down, and only once the server could answer.
    let last_state = since_down.iter().rev().find(|s| *s != "reconnecting");
    assert_eq!(
        last_state.map(String::as_str),
        Some("up"),
        "states after the down: {since_down:?}"
    );
    // (`at` is truncated to the millisecond.)
    assert!(
        acked.at() + Duration::from_millis(1) >= resumed_wall,
        "acked while frozen: {}",
        acked.value
    );
    assert!(
        acked.value["seq"].as_u64() > first.value["seq"].as_u64(),
        "{} after {}",
        acked.value,
        first.value
    );
    assert_eq!(server.client_status("S-1").await, 200);
}

#[actix_rt::test]
async fn a_server_restarted_on_the_same_port_sees_the_client_come_back_by_itself() {
    let mut first = BinServer::spawn(&[]);
    let tcp = first.tcp;
    let mut client = BeatProcess::spawn(
        tcp,
        "R-1",
        &["--interval", "200ms", "--backoff-max", "300ms"],
    );
    eventually(IO_TIMEOUT, "the first server lists R-1", || async {
        first.client_status("R-1").await == 200
    })
    .await;

    // A crash: the kernel closes the server's sockets.
    first.signal("KILL");
    assert!(
        first.wait_exit(IO_TIMEOUT).await.is_some(),
        "SIGKILL did not end the server"
    );
    let down = client.expect_state("down", DETECTION_DEADLINE).await;
    let reason = down.value["reason"].as_str().unwrap_or_default();
    assert!(
        ["connection_closed", "read_error"].contains(&reason),
        "{}",
        down.value
    );
    // With nothing listening, its reconnects are refused; it keeps trying.
    let refused = client.expect_state("down", DETECTION_DEADLINE).await;
    assert_eq!(
        refused.value["reason"], "connect_failed",
        "{}",
        refused.value
    );
    let early: Vec<Value> = client.drain().into_iter().map(|l| l.value).collect();
    assert!(
        early.iter().all(|l| l["state"] != "up"),
        "up with no server: {early:?}"
    );

    let second = BinServer::spawn_with(&tcp.to_string(), &[], &[]);
    assert_eq!(second.tcp, tcp);
    let up = client.expect_state("up", DETECTION_DEADLINE).await;
    assert_eq!(up.value["server"], tcp.to_string());
    client.expect_state("acked", IO_TIMEOUT).await;
    eventually(IO_TIMEOUT, "the second server lists R-1", || async {
        second.client_status("R-1").await == 200
    })
    .await;
    assert_eq!(second.known_clients().await, 1.0);
    assert!(second.metric("heartwatch_heartbeats_total").await >= 1.0);
    assert_eq!(
        second
            .metric("heartwatch_offline_total{reason=\"timeout\"}")
            .await,
        0.0
    );
}

#[actix_rt::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_first_frame_timeout() {
    let limit = Duration::from_millis(300);
    let server = BinServer::spawn_with(
        "127.0.0.1:0",
        &[("HEARTWATCH__SESSION__FIRST_FRAME_TIMEOUT", "300ms")],
        &[],
    );
    let start = Instant::now();
    let mut silent = Client::connect(server.tcp).await;
    let mut talker = Client::connect(server.tcp).await;
    talker.heartbeat("talker").await;

    // The server closes it without a word, not before the limit.
    assert_eq!(silent.try_recv_line().await, None);
    let closed_after = start.elapsed();
    assert!(
        closed_after >= limit,
        "closed {closed_after:?} after connecting"
    );
    assert!(
        closed_after < limit + DETECTION_DEADLINE,
        "closed {closed_after:?} after connecting"
    );
    metric_reaches(
        &server,
        "heartwatch_sessions_closed_total{reason=\"first_frame\"}",
        1.0,
        IO_TIMEOUT,
    )
    .await;

    // A connection whose first frame came in time is not bound by the limit. A connection
    // opened after the talker's is closed by it: once that has happened, the talker's own
    // deadline (no later) has passed too, and the talker is still served.
    let mut later = Client::connect(server.tcp).await;
    assert_eq!(later.try_recv_line().await, None, "closed without a word");
    talker.heartbeat("talker").await;
    metric_reaches(
        &server,
        "heartwatch_sessions_closed_total{reason=\"first_frame\"}",
        2.0,
        IO_TIMEOUT,
    )
    .await;
    assert_eq!(server.metric("heartwatch_connections").await, 1.0);
}

#[actix_rt::test]
async fn a_connection_silent_after_a_heartbeat_is_pinged_then_closed_after_the_retries() {
    let server = BinServer::spawn_with("127.0.0.1:0", &IDLE_PROBE, &[]);
    let mut client = Client::connect(server.tcp).await;
    let start = Instant::now();
    client.heartbeat("quiet").await;

    // idle_ping after the heartbeat, the first ping; pong_timeout later, the second; one more
    // pong_timeout, and the connection is closed without a word.
    let ping = client.recv().await;
    assert_eq!(ping, json!({"type": "ping", "seq": 0}));
    assert!(start.elapsed() >= Duration::from_millis(300), "{ping}");
    let ping = client.recv().await;
    assert_eq!(ping, json!({"type": "ping", "seq": 1}));
    assert!(start.elapsed() >= Duration::from_millis(500), "{ping}");
    assert_eq!(client.try_recv_line().await, None, "closed after two pings");
    let closed_after = start.elapsed();
    assert!(
        closed_after >= PROBE_CLOSES_AFTER,
        "closed {closed_after:?} after the heartbeat"
    );
    assert!(
        closed_after < PROBE_CLOSES_AFTER + DETECTION_DEADLINE,
        "closed {closed_after:?} after the heartbeat"
    );

    metric_reaches(
        &server,
        "heartwatch_sessions_closed_total{reason=\"idle\"}",
        1.0,
        IO_TIMEOUT,
    )
    .await;
    assert_eq!(server.metric("heartwatch_pings_total").await, 2.0);
    // A closed connection is not an offline: `quiet` stays online until its own timeout.
    assert_eq!(server.client_status("quiet").await, 200);
}
