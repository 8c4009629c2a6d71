// Webhooks in cluster mode against a real redis-server and a real HTTP receiver: every event
// is delivered once by the cluster, with its stream id as delivery id, also when the node
// that was delivering it dies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::hook_recorder::HookRecorder;
use super::redis_server::RedisServer;
use crate::cluster::{ClaimToken, Cluster, ClusterConfig, ClusterOptions, Transition};
use crate::metrics::Metrics;
use crate::notify::{NotifyConfig, WebhookConfig};
use crate::protocol::Proj;
use crate::{Config, Event};

fn config(url: &str, name: &str) -> ClusterConfig {
    ClusterConfig {
        redis: url.to_string(),
        node: name.to_string(),
        key_prefix: "wh".into(),
        renew_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(600),
        stream_max_len: 10_000,
    }
}

fn notify(url: String) -> NotifyConfig {
    let mut notify = Config::default().notify;
    notify.retry_initial = Duration::from_millis(50);
    notify.retry_max = Duration::from_millis(200);
    notify.timeout = Duration::from_secs(1);
    notify.webhook = vec![serde_json::from_value::<WebhookConfig>(serde_json::json!({
        "url": url, "name": "alerts"
    }))
    .unwrap()];
    notify
}

#[actix_rt::test]
async fn each_event_is_delivered_once_across_the_death_of_a_delivering_node() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (receiver, hook_addr, handle) = HookRecorder::start_failing();

    let listen: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let start = |name: &'static str| {
        let url = redis.url();
        let notify = notify(format!("http://{hook_addr}/hook"));
        async move {
            Cluster::start(
                &config(&url, name),
                ClusterOptions {
                    listen,
                    http: None,
                    journal: None,
                    webhooks: Some((notify, Arc::new(Metrics::new()))),
                    outage_webhooks: Default::default(),
                },
            )
            .await
            .unwrap()
            .0
        }
    };
    let n1 = start("n1").await;
    let n2 = start("n2").await;
    // Both consumers in the group before the events.
    super::eventually(Duration::from_secs(5), "two consumers", || async {
        let mut c = redis.conn();
        let groups: redis::Value = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg("{wh}:events")
            .arg("wh:alerts")
            .query(&mut c)
            .unwrap_or(redis::Value::Nil);
        matches!(groups, redis::Value::Array(ref a) if a.len() == 2)
    })
    .await;

    for i in 0..6 {
        n1.transition(Transition::Online {
            event: Event::Online {
                proj: Proj::new(&format!("W-{i}")).unwrap(),
                addr: listen,
                at: SystemTime::now(),
                recovered: false,
                outage: None,
            },
            token: ClaimToken::new(),
            timeout: Duration::from_secs(5),
            quiet: false,
        });
    }
    n1.flushed().await;
    let ids: Vec<String> = n1
        .events_after("0-0", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 6);
    // Both nodes are retrying against the failing receiver; wait until n1 holds some.
    super::eventually(Duration::from_secs(5), "n1 delivering", || async {
        let mut c = redis.conn();
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg("{wh}:events")
            .arg("wh:alerts")
            .query(&mut c)
            .unwrap();
        format!("{pending:?}").contains("n1")
    })
    .await;
    // n1 dies mid-delivery; the receiver comes back.
    n1.stop().await;
    receiver.failing.store(false, Ordering::SeqCst);

    super::eventually(Duration::from_secs(10), "every event delivered", || async {
        let delivered: std::collections::HashSet<String> =
            receiver.delivered().into_iter().collect();
        delivered.len() == ids.len()
    })
    .await;
    let hits = receiver.hits.lock().unwrap().clone();
    let mut ok: HashMap<String, usize> = HashMap::new();
    for (id, status, body) in &hits {
        if *status == 200 {
            *ok.entry(id.clone()).or_default() += 1;
            assert_eq!(body["id"], serde_json::Value::String(id.clone()));
            assert_eq!(body["node"], "n1");
            assert_eq!(body["event"], "online");
        }
    }
    let mut delivered: Vec<String> = ok.keys().cloned().collect();
    delivered.sort();
    assert_eq!(delivered, ids, "the delivery ids are the stream ids");
    // At least once: a POST that succeeded as n1 stopped, before its acknowledgement, is
    // sent again by n2 under the same delivery id. A node delivers one event at a time, so
    // at most one can be in flight when it stops.
    let repeats: usize = ok.values().map(|n| n - 1).sum();
    assert!(repeats <= 1, "delivered more than once: {ok:?}");
    // Nothing left pending: the acknowledgement follows the delivery, so wait for it.
    let mut c = redis.conn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let pending: (u64, Option<String>, Option<String>, redis::Value) = redis::cmd("XPENDING")
            .arg("{wh}:events")
            .arg("wh:alerts")
            .query(&mut c)
            .unwrap();
        if pending.0 == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} deliveries still pending",
            pending.0
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    n2.stop().await;
    handle.stop(false).await;
}
