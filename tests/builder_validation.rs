//! `Builder::start` refuses what the configuration loader refuses: an application that embeds
//! heartwatch gets the same one-line error naming the key, instead of a server that panics on
//! its first heartbeat (`min_timeout > max_timeout` used to panic in the timeout clamp).

mod common;

use std::time::Duration;

use common::{test_config, TestServer};
use heartwatch::config::{NotifyConfig, ServerConfig, SessionConfig, StorageConfig};
use heartwatch::{Builder, Config, StartError};

/// The error of starting `builder`, which must fail with a configuration error.
async fn refused(builder: Builder) -> String {
    match builder.log_events(false).start().await {
        Ok(running) => {
            running.stop().await;
            panic!("the server started");
        }
        Err(e @ StartError::Config(_)) => e.to_string(),
        Err(other) => panic!("not a configuration error: {other}"),
    }
}

#[actix_rt::test]
async fn a_min_timeout_above_the_max_timeout_is_an_error_not_a_panic() {
    let mut config = test_config();
    config.min_timeout = Duration::from_secs(5);
    config.max_timeout = Duration::from_secs(1);
    config.timeout = Duration::from_secs(3);
    let error = refused(Builder::new(config)).await;
    assert!(
        error.contains("server.max_timeout") && !error.contains('\n'),
        "{error}"
    );
}

#[actix_rt::test]
async fn every_rule_of_the_loader_applies_to_the_builder() {
    let server = |change: fn(&mut ServerConfig)| {
        let mut config = test_config();
        change(&mut config);
        Builder::new(config)
    };
    let storage = |dir: &std::path::Path| StorageConfig {
        path: dir.to_path_buf(),
        ..Config::default().storage
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let webhooks = || NotifyConfig {
        webhook: vec![
            serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:9/x"}))
                .expect("a webhook"),
        ],
        ..Config::default().notify
    };
    let cases: Vec<(&str, Builder, &str)> = vec![
        (
            "a default timeout outside the bounds",
            server(|c| c.timeout = Duration::from_secs(3 * 24 * 3600)),
            "server.timeout",
        ),
        (
            "a zero min_timeout",
            server(|c| c.min_timeout = Duration::ZERO),
            "server.min_timeout",
        ),
        (
            "frames too small for a heartbeat",
            server(|c| c.max_frame_bytes = 10),
            "server.max_frame_bytes",
        ),
        (
            "no listen backlog",
            server(|c| c.backlog = 0),
            "server.backlog",
        ),
        (
            "no HTTP worker",
            server(|c| c.http_workers = 0),
            "server.http_workers",
        ),
        (
            "idle pings that are never retried",
            Builder::new(test_config()).session(SessionConfig {
                idle_ping: Duration::from_secs(1),
                ping_retries: 0,
                ..SessionConfig::default()
            }),
            "session.ping_retries",
        ),
        (
            "an event log of empty segments",
            Builder::new(test_config()).storage(StorageConfig {
                segment_bytes: 0,
                ..storage(dir.path())
            }),
            "storage.segment_bytes",
        ),
        (
            "webhooks without the event log they are delivered from",
            Builder::new(test_config()).notify(webhooks()),
            "notify.webhook",
        ),
    ];
    for (what, builder, key) in cases {
        let error = refused(builder).await;
        assert!(error.contains(key), "{what}: {error}");
    }

    // Nothing was left bound or running: a good configuration starts and serves.
    let server =
        TestServer::start_with(Builder::new(test_config()).storage(storage(dir.path()))).await;
    server.client().await.heartbeat("after-refusals").await;
    server.stop().await;
}
