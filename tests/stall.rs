//! The server's own stall, with the real binary: SIGSTOP for 3 s while clients keep beating
//! into their sockets, then SIGCONT. The watchdogs all fire late at once; the server notices,
//! defers its verdicts until it has read what was buffered, and declares offline only the
//! client that really went silent. A test binary of its own: it freezes a process for seconds
//! and times clients around it.

mod common;

use std::time::Duration;

use common::{assert_ack, eventually, BinServer, Client, EventStream, IO_TIMEOUT};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Beating clients.
const BEATING: usize = 20;
/// Their timeout, and their interval.
const TIMEOUT_MS: u64 = 1_000;
const INTERVAL: Duration = Duration::from_millis(200);

/// A client that beats every `INTERVAL` until `stop` says so, writing without waiting for its
/// acks (which cannot come while the server is stopped), reading them on the side.
async fn beat_until(server: std::net::SocketAddr, proj: String, mut stop: watch::Receiver<bool>) {
    let stream = TcpStream::connect(server).await.expect("connect");
    let (read, mut write) = stream.into_split();
    actix_rt::spawn(async move {
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    let frame = format!(
        "{}\n",
        json!({"type":"heartbeat","proj":proj,"timeout_ms":TIMEOUT_MS})
    );
    loop {
        if write.write_all(frame.as_bytes()).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

#[actix_rt::test]
async fn after_a_sigstop_only_the_silent_client_goes_offline_once() {
    let server = BinServer::spawn(&[]);
    let mut events = EventStream::open(server.http).await;
    let (stop, stopped) = watch::channel(false);
    let beaters: Vec<_> = (0..BEATING)
        .map(|i| actix_rt::spawn(beat_until(server.tcp, format!("B-{i}"), stopped.clone())))
        .collect();
    eventually(IO_TIMEOUT, "every beating client online", || async {
        server.known_clients().await == BEATING as f64
    })
    .await;

    // The silent one beats once, then never again: due 1 s later, while the server is stopped.
    let mut silent = Client::connect(server.tcp).await;
    assert_ack(
        &silent.heartbeat_timeout("SILENT", TIMEOUT_MS).await,
        "SILENT",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("STOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.signal("CONT");

    // The silent client goes offline (at the end of the grace), and nobody else.
    let mut offlines = Vec::new();
    loop {
        let event = events.next_data().await;
        if event["event"] == "offline" {
            offlines.push(event["proj"].as_str().unwrap_or("").to_owned());
            if event["proj"] == "SILENT" {
                break;
            }
        }
    }
    assert_eq!(offlines, ["SILENT"], "false offlines after the stall");
    // A later event that must come next: any other offline of the stall would be before it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut end = Client::connect(server.tcp).await;
    assert_ack(&end.heartbeat("END").await, "END");
    assert_eq!(end.offline("END").await["type"], "ack");
    loop {
        let event = events.next_data().await;
        if event["event"] == "offline" {
            assert_eq!(event["proj"], "END", "an offline after the stall: {event}");
            break;
        }
    }
    assert_eq!(server.known_clients().await, BEATING as f64);
    assert!(server.metric("heartwatch_stalls_total").await >= 1.0);
    let logged = server.stderr_so_far();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("heartwatch itself stalled")),
        "no log line about the stall: {logged:#?}"
    );
    let _ = stop.send(true);
    for beater in beaters {
        let _ = beater.await;
    }
}
