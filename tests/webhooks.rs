//! Webhooks against a real HTTP receiver on 127.0.0.1 that fails its first attempts: retries
//! with backoff, HMAC signatures, event filters, and deliveries still pending when the server
//! crashed, made after the restart (from the event log).

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::pki::Pki;
use common::{assert_ack, eventually, test_config, BinServer, Client, TestServer, IO_TIMEOUT};
use heartwatch::config::StorageConfig;
use heartwatch::notify::{verify, NotifyConfig, WebhookConfig};
use heartwatch::{Builder, Config};
use serde_json::Value;

const SECRET: &str = "s3cret-for-tests";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct State {
    hits: Mutex<Vec<Hit>>,
    /// Requests to `fail_path` still to answer with 500.
    fail: AtomicUsize,
    fail_path: String,
}

/// An HTTP server recording every request, answering 500 to the first `fail` ones to
/// `fail_path`.
struct Receiver {
    state: Arc<State>,
    handle: ServerHandle,
}

impl Receiver {
    fn start(listener: TcpListener, fail: usize, fail_path: &str) -> Self {
        Self::start_with(listener, fail, fail_path, None)
    }

    /// The receiver over HTTPS, with the certificate of `pki`.
    fn start_tls(listener: TcpListener, pki: &Pki) -> Self {
        let config = pki.server_tls().config;
        Self::start_with(listener, 0, "", Some(rustls::ServerConfig::clone(&config)))
    }

    fn start_with(
        listener: TcpListener,
        fail: usize,
        fail_path: &str,
        tls: Option<rustls::ServerConfig>,
    ) -> Self {
        let state = Arc::new(State {
            hits: Mutex::default(),
            fail: AtomicUsize::new(fail),
            fail_path: fail_path.to_owned(),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(1);
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls),
            None => server.listen(listener),
        }
        .expect("receiver listens")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self { state, handle }
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    fn ok_hits(&self, path: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200 && h.path == path)
            .collect()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn record(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let failing = req.path() == state.fail_path
        && state
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if failing { 500 } else { 200 };
    state.hits.lock().unwrap().push(Hit {
        path: req.path().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        status,
    });
    if failing {
        HttpResponse::InternalServerError().body("not now")
    } else {
        HttpResponse::Ok().finish()
    }
}

fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn storage(dir: &Path) -> StorageConfig {
    let mut storage = Config::default().storage;
    storage.path = dir.to_path_buf();
    storage
}

fn notify(hooks: Vec<WebhookConfig>) -> NotifyConfig {
    let mut notify = Config::default().notify;
    notify.retry_initial = Duration::from_millis(50);
    notify.retry_max = Duration::from_millis(200);
    notify.webhook = hooks;
    notify
}

fn hook(url: String, events: &str, secret: &str) -> WebhookConfig {
    let events: Vec<&str> = events.split(',').filter(|e| !e.is_empty()).collect();
    serde_json::from_value(serde_json::json!({
        "url": url,
        "events": events,
        "secret": secret,
    }))
    .expect("a webhook config")
}

#[actix_rt::test]
async fn events_are_retried_until_accepted_signed_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, at) = loopback_listener();
    let receiver = Receiver::start(listener, 2, "/all");
    let builder = Builder::new(test_config())
        .storage(storage(dir.path()))
        .notify(notify(vec![
            hook(format!("http://{at}/all"), "", SECRET),
            hook(format!("http://{at}/offline-only"), "offline", ""),
        ]));
    let server = TestServer::start_with(builder).await;
    let mut client = server.client().await;
    assert_ack(&client.heartbeat("W-1").await, "W-1");
    assert_eq!(client.offline("W-1").await["type"], "ack");

    eventually(IO_TIMEOUT, "both events delivered to /all", || async {
        receiver.ok_hits("/all").len() == 2
    })
    .await;
    eventually(
        IO_TIMEOUT,
        "the offline delivered to /offline-only",
        || async { !receiver.ok_hits("/offline-only").is_empty() },
    )
    .await;

    // /all: in order, numbered, signed; the first failures were retries of event 1.
    let all = receiver.ok_hits("/all");
    let (online, offline) = (all[0].json(), all[1].json());
    assert_eq!(
        (&online["id"], &online["event"], &online["proj"]),
        (&1.into(), &"online".into(), &"W-1".into())
    );
    assert_eq!(
        (&offline["id"], &offline["event"], &offline["reason"]),
        (&2.into(), &"offline".into(), &"offline".into())
    );
    for hit in &all {
        let signature = hit.header("x-heartwatch-signature-256").expect("signed");
        assert!(
            verify(SECRET.as_bytes(), &hit.body, signature),
            "bad signature"
        );
        assert!(!verify(b"another secret", &hit.body, signature));
        assert_eq!(hit.header("content-type"), Some("application/json"));
    }
    assert_eq!(all[0].header("x-heartwatch-delivery"), Some("1"));
    assert_eq!(all[1].header("x-heartwatch-event"), Some("offline"));
    let failed: Vec<Hit> = receiver
        .hits()
        .into_iter()
        .filter(|h| h.status == 500)
        .collect();
    assert_eq!(failed.len(), 2);
    for hit in &failed {
        assert_eq!(
            hit.header("x-heartwatch-delivery"),
            Some("1"),
            "a retry of #1"
        );
    }

    // /offline-only: the offline alone, unsigned.
    eventually(IO_TIMEOUT, "nothing more to /offline-only", || async {
        receiver
            .hits()
            .iter()
            .filter(|h| h.path == "/offline-only")
            .count()
            == 1
    })
    .await;
    let only = &receiver.ok_hits("/offline-only")[0];
    assert_eq!(only.json()["event"], "offline");
    assert_eq!(only.header("x-heartwatch-signature-256"), None);

    assert_eq!(
        server
            .metric("heartwatch_webhook_deliveries_total{result=\"failed\"}")
            .await,
        2.0
    );
    assert_eq!(
        server
            .metric("heartwatch_webhook_deliveries_total{result=\"ok\"}")
            .await,
        3.0
    );
    server.stop().await;
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_delivery_pending_at_a_crash_is_made_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The receiver's port, with nothing listening on it yet: every attempt is refused.
    let (listener, at) = loopback_listener();
    drop(listener);
    let config = dir.path().join("heartwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n\n\
             [[notify.webhook]]\nurl = \"http://{at}/hook\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let args = ["--config", config.as_str()];
    let data = dir.path().join("data").display().to_string();
    let env = [
        ("HEARTWATCH__STORAGE__PATH", data.as_str()),
        ("HEARTWATCH__STORAGE__FSYNC", "always"),
    ];

    let mut first = BinServer::spawn_with("127.0.0.1:0", &env, &args);
    let mut client = Client::connect(first.tcp).await;
    assert_ack(
        &client.heartbeat_timeout("PENDING", 60_000).await,
        "PENDING",
    );
    eventually(IO_TIMEOUT, "a failed delivery attempt", || async {
        first
            .metric("heartwatch_webhook_deliveries_total{result=\"failed\"}")
            .await
            >= 1.0
    })
    .await;
    first.signal("KILL");
    assert!(first.wait_exit(IO_TIMEOUT).await.is_some());

    let receiver = Receiver::start(TcpListener::bind(at).expect("rebind the port"), 0, "");
    let second = BinServer::spawn_with("127.0.0.1:0", &env, &args);
    eventually(IO_TIMEOUT, "the pending online delivered", || async {
        !receiver.ok_hits("/hook").is_empty()
    })
    .await;
    let hit = &receiver.ok_hits("/hook")[0];
    let body = hit.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["event"], "online");
    assert_eq!(body["proj"], "PENDING");
    assert!(verify(
        SECRET.as_bytes(),
        &hit.body,
        hit.header("x-heartwatch-signature-256").unwrap()
    ));
    // Delivered once: nothing else is pending (the restart announced nothing new).
    assert_eq!(second.client_status("PENDING").await, 200);
    assert_eq!(receiver.hits().len(), 1, "{:?}", receiver.hits());
    drop(second);
    receiver.stop().await;
}

#[actix_rt::test]
async fn https_webhooks_verify_the_receiver_against_notify_ca() {
    let pki = Pki::new("webhook");
    let stranger = Pki::new("webhook-stranger");
    let dir = tempfile::tempdir().unwrap();
    let (listener, at) = loopback_listener();
    let receiver = Receiver::start_tls(listener, &pki);
    let (listener, other_at) = loopback_listener();
    let impostor = Receiver::start_tls(listener, &stranger);
    let mut notify = notify(vec![
        hook(format!("https://{at}/secure"), "", SECRET),
        hook(format!("https://{other_at}/impostor"), "", SECRET),
    ]);
    notify.ca = pki.ca.clone();
    let builder = Builder::new(test_config())
        .storage(storage(dir.path()))
        .notify(notify);
    let server = TestServer::start_with(builder).await;
    let mut client = server.client().await;
    assert_ack(&client.heartbeat("TLS-1").await, "TLS-1");

    eventually(IO_TIMEOUT, "the online delivered over HTTPS", || async {
        !receiver.ok_hits("/secure").is_empty()
    })
    .await;
    let hit = &receiver.ok_hits("/secure")[0];
    assert_eq!(hit.json()["proj"], "TLS-1");
    // A receiver whose certificate notify.ca does not vouch for never gets the event: the
    // handshake fails before any byte of it is sent, and the delivery is retried.
    eventually(IO_TIMEOUT, "failed attempts to the impostor", || async {
        server
            .metric("heartwatch_webhook_deliveries_total{result=\"failed\"}")
            .await
            >= 2.0
    })
    .await;
    assert!(impostor.hits().is_empty(), "{:?}", impostor.hits());
    server.stop().await;
    receiver.stop().await;
    impostor.stop().await;
}

#[actix_rt::test]
async fn each_webhooks_queue_depth_is_what_it_has_not_delivered_yet() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, at) = loopback_listener();
    // `/slow` refuses every delivery until told otherwise; `/fast` takes them all.
    let receiver = Receiver::start(listener, usize::MAX, "/slow");
    let named = |name: &str| -> WebhookConfig {
        serde_json::from_value(serde_json::json!({
            "url": format!("http://{at}/{name}"),
            "name": name,
        }))
        .expect("a webhook config")
    };
    let builder = Builder::new(test_config())
        .storage(storage(dir.path()))
        .notify(notify(vec![named("slow"), named("fast")]));
    let server = TestServer::start_with(builder).await;
    let depth = |name: &str| format!("heartwatch_webhook_queue_depth{{webhook=\"{name}\"}}");
    assert_eq!(server.metric(&depth("slow")).await, 0.0);
    assert_eq!(server.metric(&depth("fast")).await, 0.0);

    let mut client = server.client().await;
    client.heartbeat("Q-1").await;
    client.offline("Q-1").await;
    client.heartbeat("Q-2").await;
    eventually(
        IO_TIMEOUT,
        "the three events delivered to /fast",
        || async { receiver.ok_hits("/fast").len() == 3 },
    )
    .await;
    eventually(IO_TIMEOUT, "/fast's queue is empty", || async {
        server.metric(&depth("fast")).await == 0.0
    })
    .await;
    // /slow has been refusing #1 all along: the three are queued.
    eventually(IO_TIMEOUT, "failed attempts to /slow", || async {
        receiver.hits().iter().filter(|h| h.path == "/slow").count() >= 2
    })
    .await;
    assert_eq!(server.metric(&depth("slow")).await, 3.0);

    receiver.state.fail.store(0, Ordering::SeqCst);
    eventually(
        IO_TIMEOUT,
        "the three events delivered to /slow",
        || async { receiver.ok_hits("/slow").len() == 3 },
    )
    .await;
    eventually(IO_TIMEOUT, "/slow's queue is empty", || async {
        server.metric(&depth("slow")).await == 0.0
    })
    .await;
    server.stop().await;
    receiver.stop().await;
}
