//! The `heartwatch` binary: configuration errors, signals, and surviving dead clients.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, heartwatch_cmd, http_get, run_to_exit, BinServer, Client, IO_TIMEOUT};
use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

/// Runs `heartwatch serve` with `args` and environment `env`; it must exit with code 2 and
/// exactly one stderr line, which contains every needle.
fn assert_config_error(args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let mut cmd = heartwatch_cmd();
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{args:?} {env:?}: stderr {stderr:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?} {env:?}: one line, got {stderr:?}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{args:?} {env:?}: {needle:?} not in {:?}",
            lines[0]
        );
    }
}

#[test]
fn an_unparsable_timeout_flag_exits_2_naming_the_key() {
    assert_config_error(&["--timeout", "soon"], &[], &["server.timeout"]);
}

#[test]
fn an_out_of_range_timeout_flag_exits_2_naming_the_key() {
    assert_config_error(&["--timeout", "2d"], &[], &["server.timeout"]);
}

#[test]
fn a_bad_environment_value_exits_2_naming_the_key() {
    assert_config_error(
        &[],
        &[("HEARTWATCH__SERVER__MAX_FRAME_BYTES", "abc")],
        &["server.max_frame_bytes"],
    );
}

#[test]
fn an_unknown_key_in_the_config_file_exits_2_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("heartwatch-binary-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("typo.toml");
    std::fs::write(&file, "[server]\ntimeout = \"5s\"\ntimout_ms = 3\n").expect("write config");
    let path = file.to_str().expect("UTF-8 path").to_owned();
    assert_config_error(&["--config", &path], &[], &["timout_ms"]);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_missing_config_file_exits_2_naming_it() {
    let path = "/nonexistent/heartwatch-test.toml";
    assert_config_error(&["--config", path], &[], &[path]);
}

/// Connects `n` clients to `server`, each sending one heartbeat (for its own proj) and reading
/// its ack, at most 50 at a time; returns the open connections.
async fn connect_beating(server: &BinServer, n: usize) -> Vec<Client> {
    let tcp = server.tcp;
    let clients: Vec<Client> = stream::iter(0..n)
        .map(|i| async move {
            let mut client = Client::connect(tcp).await;
            client.heartbeat(&format!("bin-{i}")).await;
            client
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(clients.len(), n);
    clients
}

/// Sends `signal` and asserts that the server exits with code 0 within 2 s of it.
async fn assert_clean_exit_on(server: &mut BinServer, signal: &str) {
    let sent = Instant::now();
    server.signal(signal);
    let status = server.wait_exit(Duration::from_secs(2)).await;
    let took = sent.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 2 s after SIG{signal}; stderr: {:#?}",
            server.stderr_so_far()
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIG{signal}: {status}; stderr: {:#?}",
        server.stderr_so_far()
    );
    eprintln!("exited {took:?} after SIG{signal}");
}

#[actix_rt::test]
async fn sigterm_with_a_thousand_clients_connected_exits_0_within_2_s() {
    let mut server = BinServer::spawn(&[]);
    let clients = connect_beating(&server, 1_000).await;
    let metrics = http_get(server.http, "/metrics").await.body;
    assert_eq!(
        common::metric_sum(&metrics, "heartwatch_clients"),
        Some(1000.0)
    );
    assert_eq!(
        common::metric_value(&metrics, "heartwatch_connections"),
        Some(1000.0)
    );

    assert_clean_exit_on(&mut server, "TERM").await;
    drop(clients);
}

#[actix_rt::test]
async fn sigint_with_a_few_clients_connected_exits_0_within_2_s() {
    let mut server = BinServer::spawn(&["--timeout", "30s"]);
    let clients = connect_beating(&server, 5).await;
    assert_clean_exit_on(&mut server, "INT").await;
    // The sessions were closed: every client reads the end of its connection.
    for mut client in clients {
        let (lines, _) = client.read_until_closed().await;
        assert!(lines.is_empty(), "{lines:?}");
    }
}

/// A child process killed with SIGKILL (and reaped) when dropped, so that none outlives its test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn the_server_keeps_answering_after_a_client_is_killed_mid_frame() {
    let server = BinServer::spawn(&[]);
    let mut survivor = Client::connect(server.tcp).await;
    survivor.heartbeat("survivor").await;

    // A separate process that sends one heartbeat and half of the next frame, never reads its
    // ack, and is killed: its kernel closes the socket (with a reset, as the ack is unread).
    let script = format!(
        "exec 3<>/dev/tcp/{}/{}; printf '%s\\n%s' '{{\"type\":\"heartbeat\",\"proj\":\"victim\"}}' \
         '{{\"type\":\"heartbeat\",\"pr' >&3; exec sleep 30",
        server.tcp.ip(),
        server.tcp.port()
    );
    let victim = KillOnDrop(
        Command::new("bash")
            .args(["-c", &script])
            .spawn()
            .expect("spawn bash"),
    );
    // The first frame has arrived (so the half frame has been sent as well).
    let http = server.http;
    eventually(
        IO_TIMEOUT,
        "the victim's heartbeat arrives",
        || async move { http_get(http, "/api/v1/clients/victim").await.status == 200 },
    )
    .await;
    // SIGKILL, mid-frame.
    drop(victim);

    eventually(
        IO_TIMEOUT,
        "the victim's session is closed",
        || async move {
            let metrics = http_get(http, "/metrics").await.body;
            common::metric_value(&metrics, "heartwatch_connections") == Some(1.0)
        },
    )
    .await;
    survivor.heartbeat("survivor").await;
    Client::connect(server.tcp)
        .await
        .heartbeat("newcomer")
        .await;
    // A dead connection is not an offline: the victim stays online until its watchdog fires.
    assert_eq!(http_get(http, "/api/v1/clients/victim").await.status, 200);
    assert_eq!(http_get(http, "/healthz").await.status, 200);
}
