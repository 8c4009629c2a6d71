//! The negotiated keepalive: every ack says how often to beat (`interval_ms`), and
//! `heartwatch beat` follows it unless `--interval` is given; a server that asks a client to
//! come back later (`unavailable` with `retry_after_ms`) is obeyed.

mod common;

use std::time::Duration;

use common::{test_config, BeatProcess, TestServer, IO_TIMEOUT};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

#[actix_rt::test]
async fn every_ack_carries_a_third_of_the_timeout_as_the_interval() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    let ack = client.heartbeat_timeout("K", 3_000).await;
    assert_eq!(ack["timeout_ms"], 3_000);
    assert_eq!(ack["interval_ms"], 1_000, "{ack}");
    let ack = client.heartbeat("K").await;
    assert_eq!(
        ack["interval_ms"], 1_000,
        "the timeout asked for stays: {ack}"
    );
    let offline = client.offline("K").await;
    assert!(offline.get("interval_ms").is_none(), "{offline}");
    server.stop().await;
}

#[actix_rt::test]
async fn heartwatch_beat_without_interval_beats_at_the_servers_interval() {
    let mut config = test_config();
    config.timeout = Duration::from_millis(900);
    let server = TestServer::start(config).await;
    // Without the server's advice it would beat every 5 s.
    let mut beat = BeatProcess::spawn(server.tcp, "follows", &[]);
    beat.expect_state("up", IO_TIMEOUT).await;
    let first = beat.expect_state("acked", IO_TIMEOUT).await;
    assert_eq!(first.value["interval_ms"], 300, "{}", beat.so_far());
    // Six more acks within 3 s: it beats about every 300 ms.
    for _ in 0..6 {
        beat.expect_state("acked", Duration::from_secs(3)).await;
    }
    assert!(
        first.received.elapsed() < Duration::from_secs(3),
        "{}",
        beat.so_far()
    );
    assert_eq!(server.client_record("follows").await["state"], "online");
    server.stop().await;
}

#[actix_rt::test]
async fn heartwatch_beat_waits_as_long_as_an_overloaded_server_asks() {
    // A server that is overloaded once: it answers the first heartbeat with `unavailable`
    // and `retry_after_ms`, acks the others, and notes when each heartbeat came.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let server = actix_rt::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut first = true;
        while let Ok(Some(line)) = lines.next_line().await {
            let frame: serde_json::Value = serde_json::from_str(&line).unwrap();
            if frame["type"] != "heartbeat" {
                continue;
            }
            let _ = arrivals.send(Instant::now());
            let reply = if first {
                first = false;
                json!({"type":"error","code":"unavailable","message":"starting",
                       "retry_after_ms":1500})
            } else {
                json!({"type":"ack","proj":frame["proj"],"seq":frame["seq"],
                       "timeout_ms":20000,"interval_ms":6666})
            };
            let mut out = reply.to_string();
            out.push('\n');
            if write.write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut beat = BeatProcess::spawn(addr, "patient", &["--interval", "100ms"]);
    let rejected = beat.expect_state("rejected", IO_TIMEOUT).await;
    assert_eq!(rejected.value["code"], "unavailable");
    assert_eq!(rejected.value["retry_after_ms"], 1500);
    let refused_at = arrived.recv().await.expect("the first heartbeat");
    beat.expect_state("acked", IO_TIMEOUT).await;
    let next_at = arrived.recv().await.expect("the next heartbeat");
    let waited = next_at - refused_at;
    assert!(
        waited >= Duration::from_millis(1450),
        "the next heartbeat came {waited:?} after the refusal; {}",
        beat.so_far()
    );
    // Then the client's own interval again (100 ms), not the server's suggestion.
    beat.expect_state("acked", IO_TIMEOUT).await;
    let after = arrived.recv().await.expect("one more heartbeat") - next_at;
    assert!(after < Duration::from_millis(1000), "{after:?}");
    drop(beat);
    server.abort();
}
