//! Many clients at once: every heartbeat of every connection is acked and counted.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, Client, TestServer};
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use tokio::time::{timeout, Instant};

const CLIENTS: usize = 2_000;
const BEATS: u64 = 3;

#[actix_rt::test]
async fn two_thousand_concurrent_connections_are_all_acked_and_listed() {
    let server = TestServer::start_default().await;
    let started = Instant::now();

    // Connect all of them (at most 100 connects in flight), keeping every connection open.
    let tcp = server.tcp;
    let mut clients: Vec<Client> = stream::iter(0..CLIENTS)
        .map(|_| Client::connect(tcp))
        .buffer_unordered(100)
        .collect()
        .await;
    assert_eq!(clients.len(), CLIENTS);

    // Every connection beats three times for its own proj, all connections at once.
    let beating = join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(i, client)| async move {
                let proj = format!("c-{i:05}");
                for seq in 1..=BEATS {
                    let reply = client
                        .request(serde_json::json!({"type":"heartbeat","proj":proj,"seq":seq}))
                        .await;
                    common::assert_ack(&reply, &proj);
                    assert_eq!(reply["seq"], seq);
                }
            }),
    );
    timeout(Duration::from_secs(30), beating)
        .await
        .expect("every heartbeat acked in time");

    let listed = server.get("/api/v1/clients").await;
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), CLIENTS);
    let projs: Vec<&str> = listed.iter().map(|c| c["proj"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..CLIENTS).map(|i| format!("c-{i:05}")).collect();
    assert_eq!(projs, expected, "every client, in proj order");
    assert!(listed.iter().all(|c| c["heartbeats"] == BEATS));
    let addrs: BTreeSet<&str> = listed.iter().map(|c| c["addr"].as_str().unwrap()).collect();
    assert_eq!(addrs.len(), CLIENTS, "each from its own connection");

    assert_eq!(server.known_clients().await, CLIENTS as f64);
    assert_eq!(
        server.metric("heartwatch_connections").await,
        CLIENTS as f64
    );
    assert_eq!(
        server.metric("heartwatch_heartbeats_total").await,
        (CLIENTS as u64 * BEATS) as f64
    );

    // Closing the connections closes the sessions but is not an offline.
    drop(clients);
    eventually(Duration::from_secs(10), "every session closed", || async {
        server.running().metrics().connections() == 0
    })
    .await;
    assert_eq!(server.known_clients().await, CLIENTS as f64);

    eprintln!("{CLIENTS} clients in {:?}", started.elapsed());
    server.stop().await;
}
