//! Property test of the client actor/registry state machine, on paused time: for any sequence of
//! heartbeats (with or without their own timeout), offlines and clock advances, every
//! client's reported state matches a simple model: online until its last heartbeat plus its
//! timeout, with the heartbeat count and timeout the protocol promises.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use heartwatch::protocol::Proj;
use heartwatch::{Builder, Config, Heartbeat};
use proptest::prelude::*;

const CLIENTS: u8 = 4;
const DEFAULT_MS: u64 = 1_000;
const MIN_MS: u64 = 100;
const MAX_MS: u64 = 2_000;

#[derive(Debug, Clone)]
enum Op {
    Beat { client: u8, timeout_ms: Option<u64> },
    Offline { client: u8 },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CLIENTS, prop::option::of(1u64..5_000))
            .prop_map(|(client, timeout_ms)| Op::Beat { client, timeout_ms }),
        1 => (0..CLIENTS).prop_map(|client| Op::Offline { client }),
        3 => (1u64..1_500).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The timer's rounding: a deadline is met within this much after it.
const SLACK: Duration = Duration::from_millis(2);

/// What the model knows of one online client.
#[derive(Debug, Clone, Copy)]
struct Expected {
    /// Since the start of the run.
    deadline: Duration,
    timeout: Duration,
    heartbeats: u64,
}

fn proj(client: u8) -> Proj {
    Proj::new(&format!("M-{client}")).unwrap()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    actix_rt::System::new().block_on(async move {
        tokio::time::pause();
        let clock = tokio::time::Instant::now();
        let mut config = Config::default().server;
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.timeout = Duration::from_millis(DEFAULT_MS);
        config.min_timeout = Duration::from_millis(MIN_MS);
        config.max_timeout = Duration::from_millis(MAX_MS);
        config.workers = 1;
        let server = Builder::new(config)
            .http(false)
            .log_events(false)
            .start()
            .await
            .expect("server starts");
        let heartbeats = server.heartbeats().clone();
        let registry = server.registry().clone();
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut model: HashMap<u8, Expected> = HashMap::new();
        for op in ops {
            match op {
                Op::Beat { client, timeout_ms } => {
                    let heartbeat = Heartbeat {
                        proj: proj(client),
                        addr,
                        timeout_ms,
                    };
                    // At or past its deadline, the client's watchdog fires within the timer's
                    // rounding: this heartbeat may find it online or bring it back.
                    let due = model
                        .get(&client)
                        .is_some_and(|e| clock.elapsed() >= e.deadline);
                    let delivered = heartbeats.beat(heartbeat).await.expect("delivered");
                    let asked = timeout_ms.map(|t| Duration::from_millis(t.clamp(MIN_MS, MAX_MS)));
                    let fresh = (asked.unwrap_or(Duration::from_millis(DEFAULT_MS)), 1);
                    let (timeout, heartbeats) = match model.get(&client) {
                        Some(e) if due => {
                            // Whichever it was, the record says which: back online (one
                            // heartbeat, a fresh timeout) or still online (one more).
                            let info = registry
                                .get(proj(client))
                                .await
                                .expect("registry running")
                                .expect("online after a heartbeat");
                            if info.heartbeats == 1 {
                                fresh
                            } else {
                                (asked.unwrap_or(e.timeout), e.heartbeats + 1)
                            }
                        }
                        Some(e) => (asked.unwrap_or(e.timeout), e.heartbeats + 1),
                        None => fresh,
                    };
                    prop_assert_eq!(delivered.timeout, timeout);
                    let expected = Expected {
                        deadline: clock.elapsed() + timeout,
                        timeout,
                        heartbeats,
                    };
                    model.insert(client, expected);
                }
                Op::Offline { client } => {
                    let due = model
                        .get(&client)
                        .is_some_and(|e| clock.elapsed() >= e.deadline);
                    let was_online = heartbeats.offline(proj(client)).await.expect("delivered");
                    let expected = model.remove(&client).is_some();
                    // At its deadline, its watchdog may have fired first: either is right.
                    if !due {
                        prop_assert_eq!(was_online, expected);
                    }
                }
                Op::Advance { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
            let now = clock.elapsed();
            for client in 0..CLIENTS {
                let reported = registry.get(proj(client)).await.expect("registry running");
                let Some(expected) = model.get(&client).copied() else {
                    prop_assert!(
                        reported.is_none(),
                        "client {} at {:?}: {:?}",
                        client,
                        now,
                        reported
                    );
                    continue;
                };
                if now >= expected.deadline + SLACK {
                    prop_assert!(
                        reported.is_none(),
                        "client {} online past its deadline",
                        client
                    );
                    model.remove(&client);
                    continue;
                }
                match reported {
                    Some(info) => {
                        prop_assert_eq!(info.heartbeats, expected.heartbeats);
                        prop_assert_eq!(info.timeout_ms, expected.timeout.as_millis() as u64);
                    }
                    None => {
                        // tokio's timer rounds a deadline up to its next millisecond: at the
                        // deadline itself, offline is right too.
                        prop_assert!(
                            now >= expected.deadline,
                            "client {} offline at {:?}, before its deadline {:?}",
                            client,
                            now,
                            expected.deadline
                        );
                        model.remove(&client);
                    }
                }
            }
        }
        server.stop().await;
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn reported_state_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}

/// A case the property test found: two advances that add up to 1 ms short of a 2 s deadline
/// land on it, since each sleep ends at the timer's next millisecond; the heartbeat then
/// finds the client online or brings it back, and both are right.
#[test]
fn a_heartbeat_one_millisecond_before_the_deadline() {
    run(vec![
        Op::Beat {
            client: 0,
            timeout_ms: Some(2000),
        },
        Op::Advance { ms: 1430 },
        Op::Advance { ms: 569 },
        Op::Beat {
            client: 0,
            timeout_ms: None,
        },
    ])
    .unwrap();
}
