//! The heartbeat client (`HeartbeatClient`) against the real server in process, and against
//! peers that misbehave: a server that never acks, a port nobody listens on.

mod common;

use std::time::Duration;

use actix::{Actor, Addr};
use common::ClientEvents as Events;
use common::{event_kind, eventually, EventLog, TestServer, IO_TIMEOUT};
use heartwatch::client::{ClientConfig, ClientEvent, DownReason, HeartbeatClient, Shutdown};
use heartwatch::config::SessionConfig;
use heartwatch::metrics::CloseReason;
use heartwatch::protocol::Proj;
use heartwatch::Builder;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

struct TestClient {
    addr: Addr<HeartbeatClient>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
}

impl TestClient {
    fn start(config: ClientConfig) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        let recipient = Events(sender).start().recipient();
        let addr = HeartbeatClient::new(config, recipient).start();
        Self { addr, events }
    }

    /// Sends `Shutdown` and waits for the `Stopped` event.
    async fn shutdown(&mut self) -> ClientEvent {
        self.addr.send(Shutdown).await.unwrap();
        self.until(IO_TIMEOUT, "stopped", |e| {
            matches!(e, ClientEvent::Stopped { .. })
        })
        .await
    }

    async fn next(&mut self) -> ClientEvent {
        timeout(IO_TIMEOUT, self.events.recv())
            .await
            .expect("no client event in time")
            .expect("event channel open")
    }

    /// Skips events until one matches `want`; panics after `within`.
    async fn until(
        &mut self,
        within: Duration,
        what: &str,
        want: impl Fn(&ClientEvent) -> bool,
    ) -> ClientEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match timeout(left, self.events.recv()).await {
                Ok(Some(event)) if want(&event) => return event,
                Ok(Some(_)) => {}
                Ok(None) => panic!("client events ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {within:?}"),
            }
        }
    }
}

fn config(server: impl ToString, proj: &str) -> ClientConfig {
    let mut config = ClientConfig::new(server.to_string(), Proj::new(proj).unwrap());
    config.interval = Duration::from_millis(100);
    config.ack_timeout = Duration::from_millis(300);
    config.retries = 2;
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(200);
    config
}

#[actix_rt::test]
async fn comes_up_beats_with_rising_seq_and_leaves_with_offline() {
    let (subscriber, mut log) = EventLog::new();
    let server =
        TestServer::start_with(Builder::new(common::test_config()).subscribe(subscriber)).await;
    let mut cfg = config(server.tcp, "C-1");
    cfg.server_timeout = Some(Duration::from_secs(7));
    let mut client = TestClient::start(cfg);

    assert!(matches!(client.next().await, ClientEvent::Up { server: s } if s == server.tcp));
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        if let ClientEvent::Acked { seq, timeout, .. } = client.next().await {
            assert_eq!(
                timeout,
                Duration::from_secs(7),
                "the server applies the asked timeout"
            );
            seqs.push(seq);
        }
    }
    assert_eq!(seqs, [1, 2, 3]);
    let record = server.client_record("C-1").await;
    assert_eq!(record["timeout_ms"], 7000);
    assert!(record["heartbeats"].as_u64().unwrap() >= 3);

    let stopped = client.shutdown().await;
    assert_eq!(
        stopped,
        ClientEvent::Stopped {
            offline_acked: true
        }
    );
    assert_eq!(
        server.client_status("C-1").await,
        404,
        "offline removes at once"
    );
    assert_eq!(event_kind(&log.next().await), "online");
    assert_eq!(event_kind(&log.next().await), "offline(offline)");
    server.stop().await;
}

#[actix_rt::test]
async fn answers_server_pings_so_a_quiet_client_is_not_closed() {
    let session = SessionConfig {
        idle_ping: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(100),
        ping_retries: 2,
        ..SessionConfig::default()
    };
    let server = TestServer::start_with(Builder::new(common::test_config()).session(session)).await;
    // Beats once a second: the server pings it in between, several times.
    let mut cfg = config(server.tcp, "C-2");
    cfg.interval = Duration::from_secs(1);
    cfg.jitter = 0.0;
    let mut client = TestClient::start(cfg);
    assert!(matches!(client.next().await, ClientEvent::Up { .. }));

    eventually(IO_TIMEOUT, "three pings sent", || async {
        server.metric("heartwatch_pings_total").await >= 3.0
    })
    .await;
    let idle_closed = server
        .running()
        .metrics()
        .sessions_closed(CloseReason::Idle);
    assert_eq!(idle_closed, 0, "pongs kept the connection open");
    let acked = client
        .until(
            IO_TIMEOUT,
            "an ack after the pings",
            |e| matches!(e, ClientEvent::Acked { seq, .. } if *seq >= 2),
        )
        .await;
    assert!(matches!(acked, ClientEvent::Acked { .. }));
    assert_eq!(server.metric("heartwatch_connections").await, 1.0);
    client.addr.send(Shutdown).await.unwrap();
    server.stop().await;
}

/// A peer that accepts and reads but never answers: the client retries, declares the server
/// down with `ack_timeout`, drops the connection, and connects again.
#[actix_rt::test]
async fn declares_a_silent_server_down_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, mut connections) = mpsc::unbounded_channel();
    let black_hole = actix_rt::spawn(async move {
        for _ in 0..10 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let accepted = accepted.clone();
            actix_rt::spawn(async move {
                let mut sink = vec![0u8; 4096];
                let mut frames = 0;
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                    frames += sink[..n].iter().filter(|b| **b == b'\n').count();
                }
                let _ = accepted.send(frames);
            });
        }
    });

    let mut client = TestClient::start(config(addr, "C-3"));
    let started = tokio::time::Instant::now();
    assert!(matches!(client.next().await, ClientEvent::Up { .. }));
    let down = client
        .until(IO_TIMEOUT, "down", |e| {
            matches!(e, ClientEvent::Down { .. })
        })
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(
            down,
            ClientEvent::Down {
                reason: DownReason::AckTimeout,
                ..
            }
        ),
        "{down:?}"
    );
    // Two misses of 300 ms each.
    assert!(
        elapsed >= Duration::from_millis(600),
        "down too early: {elapsed:?}"
    );
    let ClientEvent::Reconnecting { delay } = client.next().await else {
        panic!("expected a reconnect delay");
    };
    assert!(
        delay <= Duration::from_millis(50),
        "first backoff bound: {delay:?}"
    );
    // The dropped connection carried the heartbeat and its retry.
    let frames = timeout(IO_TIMEOUT, connections.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        frames, 2,
        "one heartbeat and one retry on the first connection"
    );
    assert!(
        matches!(client.next().await, ClientEvent::Up { .. }),
        "reconnected"
    );

    client.addr.send(Shutdown).await.unwrap();
    black_hole.abort();
}

#[actix_rt::test]
async fn a_refused_connection_is_down_at_once_with_capped_backoff() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut client = TestClient::start(config(port, "C-4"));
    for attempt in 0..4 {
        let down = client.next().await;
        assert!(
            matches!(
                down,
                ClientEvent::Down {
                    reason: DownReason::ConnectFailed,
                    ..
                }
            ),
            "attempt {attempt}: {down:?}"
        );
        let ClientEvent::Reconnecting { delay } = client.next().await else {
            panic!("expected a reconnect delay");
        };
        assert!(delay <= Duration::from_millis(200), "capped: {delay:?}");
    }
    let stopped = client.shutdown().await;
    assert_eq!(
        stopped,
        ClientEvent::Stopped {
            offline_acked: false
        }
    );
}
