//! A short run of `heartwatch bench` against the real server binary: the load generator that
//! ships with the product works end to end (connections, acks, server cost, and hung-client
//! detection through the event stream). Benchmarks proper are not run in CI.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{heartwatch_cmd, BinServer};
use serde_json::Value;

/// The whole run: ramp, warm-up, a 3 s window, detection grace and the clients' exit.
const RUN_LIMIT: Duration = Duration::from_secs(60);

#[actix_rt::test]
async fn bench_measures_a_real_server_and_detects_hung_clients() {
    let server = BinServer::spawn(&[]);
    let mut cmd = heartwatch_cmd();
    cmd.args([
        "bench",
        "--server",
        &server.tcp.to_string(),
        "--http",
        &server.http.to_string(),
        "--clients",
        "40",
        "--interval",
        "200ms",
        "--warmup",
        "500ms",
        "--duration",
        "3s",
        "--timeout",
        "500ms",
        "--silence",
        "0.25",
        "--json",
    ])
    .stdout(Stdio::piped());
    let child = cmd.spawn().expect("spawn heartwatch bench");
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("bench output");
    assert!(
        started.elapsed() < RUN_LIMIT,
        "bench took {:?}",
        started.elapsed()
    );
    assert!(output.status.success(), "bench failed: {:?}", output.status);
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");

    assert_eq!(report["established"], 40, "{report:#}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["errors"], serde_json::json!({}), "{report:#}");
    // 40 clients at 5 heartbeats/s, a quarter of them silenced during the window.
    let acked = report["acked_per_s"].as_f64().unwrap();
    assert!(acked > 100.0 && acked <= 230.0, "acked/s {acked}");
    assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    let cost = &report["server_cost"];
    assert!(cost["rss_bytes"].as_u64().unwrap() > 0, "{report:#}");
    assert!(cost["cpu_seconds"].as_f64().unwrap() >= 0.0);

    let detection = &report["detection"];
    assert_eq!(detection["silenced"], 10, "{report:#}");
    assert_eq!(detection["detected"], 10, "{report:#}");
    assert_eq!(detection["missing"], 0);
    assert_eq!(detection["premature"], 0, "{report:#}");
    let max = detection["overshoot_ms"]["max"].as_f64().unwrap();
    assert!((0.0..250.0).contains(&max), "overshoot max {max} ms");
}

#[test]
fn bench_refuses_a_remote_target() {
    let mut cmd = heartwatch_cmd();
    cmd.args(["bench", "--server", "192.0.2.1:7700", "--clients", "1"]);
    let (code, stderr) = common::run_to_exit(cmd);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
