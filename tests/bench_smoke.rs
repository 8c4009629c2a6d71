//! A short run of `heartwatch bench` against the real server binary: the load generator that
//! ships with the product works end to end (connections, acks, server cost, and hung-client
//! detection through the event stream), and over TLS with a `hello` token against an
//! in-process server, where a refused token or certificate is reported as errors. Benchmarks
//! proper are not run in CI.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::pki::{path_str, Pki};
use common::{heartwatch_cmd, test_config, BinServer, TestServer};
use heartwatch::config::AuthConfig;
use heartwatch::Builder;
use serde_json::{json, Value};

/// The whole run: ramp, warm-up, a 3 s window, detection grace and the clients' exit.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A short run: a handful of clients, a 500 ms window (about 0.7 s in all, plus the exit).
const SHORT_RUN: [&str; 9] = [
    "--clients",
    "5",
    "--interval",
    "100ms",
    "--warmup",
    "200ms",
    "--duration",
    "500ms",
    "--json",
];

/// Longest a short run may take, debug build and busy machine included.
const SHORT_RUN_LIMIT: Duration = Duration::from_secs(30);

/// The protocol token of the in-process server.
const TOKEN: &str = "bench-smoke-token-5f1e";

/// `heartwatch bench` with `args` after [`SHORT_RUN`], and `env`; its JSON report. Waits
/// without blocking the test's System (the in-process server runs on it), at most
/// [`SHORT_RUN_LIMIT`], then kills the bench and fails.
async fn short_bench(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut cmd = heartwatch_cmd();
    cmd.arg("bench")
        .args(SHORT_RUN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn heartwatch bench");
    let deadline = Instant::now() + SHORT_RUN_LIMIT;
    while child.try_wait().expect("wait for bench").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bench did not end within {SHORT_RUN_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let output = child.wait_with_output().expect("bench output");
    assert!(
        output.status.success(),
        "bench failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// A server on ephemeral ports that speaks TLS and wants [`TOKEN`].
async fn tls_auth_server(pki: &Pki) -> TestServer {
    let auth = AuthConfig {
        token: TOKEN.into(),
        ..AuthConfig::default()
    };
    let builder = Builder::new(test_config()).tls(pki.server_tls()).auth(auth);
    TestServer::start_with(builder).await
}

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

#[actix_rt::test]
async fn bench_speaks_tls_and_says_hello_with_its_token() {
    let pki = Pki::new("bench-ok");
    let server = tls_auth_server(&pki).await;
    let ca = path_str(&pki.ca);
    let report = short_bench(
        &["--server", &server.tcp.to_string(), "--tls", "--ca", &ca],
        &[("HEARTWATCH_TOKEN", TOKEN)],
    )
    .await;

    assert_eq!(report["tls"], true, "{report:#}");
    assert_eq!(report["token"], true, "{report:#}");
    assert_eq!(report["established"], 5, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["errors"], json!({}), "{report:#}");
    assert!(report["acked_per_s"].as_f64().unwrap() > 0.0, "{report:#}");
    server.stop().await;
}

#[actix_rt::test]
async fn bench_reports_a_refused_token_or_certificate_as_errors() {
    let pki = Pki::new("bench-refused");
    let stranger = Pki::new("bench-stranger");
    let server = tls_auth_server(&pki).await;
    let tcp = server.tcp.to_string();
    let (ca, other_ca) = (path_str(&pki.ca), path_str(&stranger.ca));
    let wrong_token_args = [
        "--server",
        &tcp,
        "--tls",
        "--ca",
        &ca,
        "--token",
        "not-the-token",
    ];
    let untrusted_args = ["--server", &tcp, "--tls", "--ca", &other_ca];
    let (wrong_token, untrusted) = tokio::join!(
        short_bench(&wrong_token_args, &[]),
        short_bench(&untrusted_args, &[("HEARTWATCH_TOKEN", TOKEN)]),
    );

    assert_eq!(wrong_token["established"], 0, "{wrong_token:#}");
    assert_eq!(wrong_token["failed"], 5, "{wrong_token:#}");
    assert_eq!(
        wrong_token["errors"],
        json!({"hello: error: unauthorized": 5}),
        "{wrong_token:#}"
    );
    assert_eq!(untrusted["established"], 0, "{untrusted:#}");
    assert_eq!(
        untrusted["errors"],
        json!({"tls handshake: invalid peer certificate: UnknownIssuer": 5}),
        "{untrusted:#}"
    );
    server.stop().await;
}
