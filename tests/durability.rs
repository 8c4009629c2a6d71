//! The durable event log with the real binary: a crash (SIGKILL) with clients online, a
//! restart on the same log, a torn last line, a clean stop.
//!
//! After a restart, every client that was online gets a fresh watchdog of its own timeout:
//! the silent ones go offline with reason `timeout_after_restart`, the ones that beat again
//! are not announced a second time.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{assert_ack, eventually, BinServer, Client, EventStream, IO_TIMEOUT};
use serde_json::Value;
use tokio::time::{timeout, Instant};

/// The clients' watchdog timeout in these tests.
const TIMEOUT_MS: u64 = 1500;

fn storage_env(dir: &Path) -> [(&'static str, String); 2] {
    [
        ("HEARTWATCH__STORAGE__PATH", dir.display().to_string()),
        ("HEARTWATCH__STORAGE__FSYNC", "always".to_owned()),
    ]
}

fn spawn(dir: &Path) -> BinServer {
    let env = storage_env(dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    BinServer::spawn_with("127.0.0.1:0", &env, &[])
}

/// Every event line of the log, oldest first.
fn log_events(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("storage dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("segment")
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["event"] == "online" || v["event"] == "offline")
                .collect::<Vec<_>>()
        })
        .collect()
}

fn count(events: &[Value], kind: &str, proj: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["proj"] == proj)
        .count()
}

async fn kill(server: &mut BinServer) {
    server.signal("KILL");
    assert!(
        server.wait_exit(IO_TIMEOUT).await.is_some(),
        "SIGKILL did not end the server"
    );
}

#[actix_rt::test]
async fn after_a_crash_the_silent_are_reported_and_the_live_are_not_announced_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(dir.path());
    for proj in ["LIVE", "SILENT"] {
        let mut client = Client::connect(first.tcp).await;
        assert_ack(&client.heartbeat_timeout(proj, TIMEOUT_MS).await, proj);
    }
    // Written (and synced: fsync = always) before the crash.
    eventually(IO_TIMEOUT, "both online events in the log", || async {
        log_events(dir.path()).len() == 2
    })
    .await;
    kill(&mut first).await;

    let second = spawn(dir.path());
    let started = Instant::now();
    let mut stream = EventStream::open(second.http).await;
    // Both are online again, from the log, before any heartbeat.
    for proj in ["LIVE", "SILENT"] {
        assert_eq!(
            second.client_status(proj).await,
            200,
            "{proj} not recovered"
        );
    }
    let mut live = Client::connect(second.tcp).await;
    assert_ack(&live.heartbeat_timeout("LIVE", TIMEOUT_MS).await, "LIVE");

    // LIVE keeps beating through SILENT's deadline; the first event after the restart is
    // SILENT's offline, with the restart reason.
    let deadline = started + Duration::from_millis(3 * TIMEOUT_MS);
    let mut beat_at = Instant::now();
    let first_event = loop {
        if Instant::now() >= beat_at {
            assert_ack(&live.heartbeat_timeout("LIVE", TIMEOUT_MS).await, "LIVE");
            beat_at += Duration::from_millis(300);
        }
        if let Ok(event) = timeout(Duration::from_millis(50), stream.next_data()).await {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "no event within three timeouts of the restart"
        );
    };
    assert_eq!(first_event["event"], "offline", "{first_event}");
    assert_eq!(first_event["proj"], "SILENT", "{first_event}");
    assert_eq!(first_event["reason"], "timeout_after_restart");
    // Nothing about LIVE, which still beats: the next event is a newcomer's online.
    assert_ack(&live.heartbeat_timeout("LIVE", TIMEOUT_MS).await, "LIVE");
    let mut newcomer = Client::connect(second.tcp).await;
    assert_ack(&newcomer.heartbeat_timeout("NEW", TIMEOUT_MS).await, "NEW");
    let next = stream.next_data().await;
    assert_eq!(
        (&next["event"], &next["proj"]),
        (&"online".into(), &"NEW".into()),
        "{next}"
    );
    assert_eq!(second.client_status("LIVE").await, 200);
    assert_eq!(second.client_status("SILENT").await, 404);
    assert_eq!(
        second
            .metric("heartwatch_offline_total{reason=\"timeout_after_restart\"}")
            .await,
        1.0
    );

    // The log agrees. The restart began a new segment with a snapshot of both clients and
    // deleted the old one (no webhook needed it); after that snapshot come SILENT's offline,
    // numbered on from before the crash, and the newcomer's online: no second online for LIVE.
    eventually(IO_TIMEOUT, "the newcomer's online in the log", || async {
        count(&log_events(dir.path()), "online", "NEW") == 1
    })
    .await;
    let events = log_events(dir.path());
    assert_eq!(count(&events, "online", "LIVE"), 0, "{events:?}");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["proj"], "SILENT", "{events:?}");
    assert_eq!(events[0]["reason"], "timeout_after_restart", "{events:?}");
    assert_eq!(events[0]["seq"], 3, "{events:?}");
    assert_eq!(events[1]["proj"], "NEW", "{events:?}");
    assert_eq!(events[1]["seq"], 4, "{events:?}");
}

#[actix_rt::test]
async fn a_torn_last_line_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(dir.path());
    let mut client = Client::connect(first.tcp).await;
    assert_ack(&client.heartbeat_timeout("KEPT", 60_000).await, "KEPT");
    eventually(IO_TIMEOUT, "the online event in the log", || async {
        log_events(dir.path()).len() == 1
    })
    .await;
    kill(&mut first).await;

    // A crash in the middle of a write: the newest segment ends with half a record.
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    let newest = segments.last().expect("a segment");
    std::fs::OpenOptions::new()
        .append(true)
        .open(newest)
        .unwrap()
        .write_all(br#"{"event":"offline","seq":2,"proj":"KE"#)
        .unwrap();

    let second = spawn(dir.path());
    assert_eq!(
        second.client_status("KEPT").await,
        200,
        "KEPT not recovered"
    );
    let warnings: Vec<&String> = second
        .startup
        .iter()
        .filter(|l| l.contains("torn"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "no warning about the torn line: {:?}",
        second.startup
    );
    // The log goes on: a new event is numbered after the last complete one.
    let mut client = Client::connect(second.tcp).await;
    assert_ack(&client.heartbeat_timeout("NEW", 60_000).await, "NEW");
    eventually(IO_TIMEOUT, "the new online event in the log", || async {
        log_events(dir.path())
            .iter()
            .any(|e| e["proj"] == "NEW" && e["seq"] == 2)
    })
    .await;
}

#[actix_rt::test]
async fn a_clean_stop_keeps_last_seen_and_a_second_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(dir.path());
    let mut client = Client::connect(first.tcp).await;
    for _ in 0..3 {
        assert_ack(&client.heartbeat_timeout("P", 60_000).await, "P");
    }
    let before = first.client_record("P").await;

    // The directory is locked while the first server runs.
    let env = storage_env(dir.path());
    let mut cmd = common::heartwatch_cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let (code, stderr) = common::run_to_exit(cmd);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("in use by another heartwatch"), "{stderr}");

    first.signal("TERM");
    let status = first.wait_exit(IO_TIMEOUT).await.expect("SIGTERM ends it");
    assert!(status.success());

    let second = spawn(dir.path());
    let after = second.client_record("P").await;
    assert_eq!(after["last_seen"], before["last_seen"], "{after}");
    assert_eq!(after["timeout_ms"], 60_000);
    assert_eq!(after["heartbeats"], 0, "no heartbeat since the restart");
}

/// A client that never asked for a timeout follows the server's default, across a restart
/// too: the server stops with the client online under a 3 s default and restarts with 2 s.
/// (Before the fix the client kept 3 s for as long as it stayed online.)
#[actix_rt::test]
async fn a_defaulted_timeout_follows_the_default_of_the_restarted_server() {
    let dir = tempfile::tempdir().unwrap();
    let env = storage_env(dir.path());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = BinServer::spawn_with("127.0.0.1:0", &env, &["--timeout", "3s"]);
    let mut client = Client::connect(first.tcp).await;
    let ack = client.heartbeat("DEFAULTED").await;
    assert_eq!(ack["timeout_ms"], 3_000, "{ack}");
    let ack = client.heartbeat_timeout("ASKED", 3_000).await;
    assert_eq!(ack["timeout_ms"], 3_000, "{ack}");
    first.signal("TERM");
    assert!(first
        .wait_exit(IO_TIMEOUT)
        .await
        .expect("SIGTERM ends it")
        .success());

    let second = BinServer::spawn_with("127.0.0.1:0", &env, &["--timeout", "2s"]);
    assert_eq!(second.client_record("DEFAULTED").await["timeout_ms"], 2_000);
    assert_eq!(second.client_record("ASKED").await["timeout_ms"], 3_000);
    let mut client = Client::connect(second.tcp).await;
    let ack = client.heartbeat("DEFAULTED").await;
    assert_eq!(ack["timeout_ms"], 2_000, "{ack}");
    let ack = client.heartbeat("ASKED").await;
    assert_eq!(ack["timeout_ms"], 3_000, "a requested timeout stays: {ack}");
}
