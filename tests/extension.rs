//! Extending the server: handlers for custom frame types, and user event subscribers.

mod common;

use actix::{Actor, Context, Handler};
use common::{event_kind, test_config, EventLog, TestServer};
use heartwatch::extension::{
    CustomFrame, HandlerContext, HandlerError, HandlerNameError, HandlerReply,
};
use heartwatch::{Builder, Event, StartError};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Answers `{"type":"status","proj":P}` with whether P is online, looked up in the registry.
async fn status(frame: CustomFrame, ctx: HandlerContext) -> HandlerReply {
    let ask: Value = frame
        .parse()
        .map_err(|e| HandlerError::new(e.to_string()))?;
    let proj = ask["proj"]
        .as_str()
        .ok_or_else(|| HandlerError::new("proj is missing"))?;
    let proj =
        heartwatch::protocol::Proj::new(proj).map_err(|e| HandlerError::new(e.to_string()))?;
    let online = ctx.client(proj.clone()).await?.is_some();
    Ok(object(json!({
        "proj": proj.as_str(),
        "online": online,
        "kind": frame.kind,
        "peer": frame.peer.to_string(),
    })))
}

async fn typed(_: CustomFrame, _: HandlerContext) -> HandlerReply {
    Ok(object(json!({"type": "custom_type", "ok": true})))
}

async fn fail(_: CustomFrame, _: HandlerContext) -> HandlerReply {
    Err(HandlerError::new("x"))
}

/// Panics while its future runs.
async fn panic_later(_: CustomFrame, _: HandlerContext) -> HandlerReply {
    panic!("handler bug inside its future (expected by the test)")
}

/// Panics before it even returns a future.
fn panic_at_once(_: CustomFrame, _: HandlerContext) -> std::future::Ready<HandlerReply> {
    panic!("handler bug before its future (expected by the test)")
}

async fn extended_server() -> TestServer {
    let builder = Builder::new(test_config())
        .handler("status", status)
        .handler("typed", typed)
        .handler("fail", fail)
        .handler("panic_later", panic_later)
        .handler("panic_at_once", panic_at_once);
    TestServer::start_with(builder).await
}

#[actix_rt::test]
async fn a_custom_handler_answers_its_frames() {
    let server = extended_server().await;
    let mut client = server.client().await;

    let reply = client.request(json!({"type":"status","proj":"P-9"})).await;
    assert_eq!(
        reply,
        json!({
            "type": "status",
            "proj": "P-9",
            "online": false,
            "kind": "status",
            "peer": client.local.to_string(),
        }),
        "the server adds the request's type to a reply without one"
    );

    // The handler sees the registry.
    client.heartbeat("P-9").await;
    let reply = client.request(json!({"type":"status","proj":"P-9"})).await;
    assert_eq!(reply["online"], true, "{reply}");

    // A reply that has its own type keeps it.
    let reply = client.request(json!({"type":"typed"})).await;
    assert_eq!(reply, json!({"type":"custom_type","ok":true}));

    // Custom frames are answered in order with the built-in ones.
    let batch = "{\"type\":\"status\",\"proj\":\"Q\"}\n{\"type\":\"heartbeat\",\"proj\":\"Q\"}\n{\"type\":\"status\",\"proj\":\"Q\"}\n";
    client.send_raw(batch.as_bytes()).await;
    assert_eq!(client.recv().await["online"], false);
    common::assert_ack(&client.recv().await, "Q");
    assert_eq!(client.recv().await["online"], true);

    // Types without a handler are still unknown.
    let code = client.error_code_for(b"{\"type\":\"statuz\"}\n").await;
    assert_eq!(code, "unknown_type");

    server.stop().await;
}

#[actix_rt::test]
async fn a_failing_handler_gives_handler_error() {
    let server = extended_server().await;
    let mut client = server.client().await;

    let reply = client.request(json!({"type":"fail"})).await;
    assert_eq!(
        reply,
        json!({"type":"error","code":"handler_error","message":"x"})
    );
    // The handler's own parse errors come out the same way.
    let reply = client.request(json!({"type":"status"})).await;
    assert_eq!(reply["code"], "handler_error");
    assert_eq!(reply["message"], "proj is missing");
    client.heartbeat("after-failure").await;

    server.stop().await;
}

#[actix_rt::test]
async fn a_panicking_handler_gives_handler_error_and_the_server_keeps_serving() {
    let server = extended_server().await;
    // More connections than session threads, so that every thread has seen a panic.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.client().await);
    }

    for (i, client) in clients.iter_mut().enumerate() {
        for kind in ["panic_later", "panic_at_once"] {
            let reply = client.request(json!({"type": kind})).await;
            assert_eq!(reply["type"], "error", "{kind}: {reply}");
            assert_eq!(reply["code"], "handler_error", "{kind}: {reply}");
            // The same connection keeps working...
            client.heartbeat(&format!("survivor-{i}")).await;
        }
    }
    // ... and so do the others, and new ones.
    for (i, client) in clients.iter_mut().enumerate() {
        client.heartbeat(&format!("survivor-{i}")).await;
        let reply = client.request(json!({"type":"status","proj":"x"})).await;
        assert_eq!(reply["type"], "status");
    }
    server.client().await.heartbeat("newcomer").await;
    assert_eq!(server.client_record("survivor-0").await["heartbeats"], 3);
    assert_eq!(
        server
            .metric("heartwatch_frame_errors_total{code=\"handler_error\"}")
            .await,
        8.0
    );

    server.stop().await;
}

#[actix_rt::test]
async fn built_in_types_cannot_be_given_a_handler() {
    let noop = |_: CustomFrame, _: HandlerContext| async move { HandlerReply::Ok(Map::new()) };
    for builtin in ["heartbeat", "offline"] {
        let started = Builder::new(test_config())
            .handler(builtin, noop)
            .log_events(false)
            .start()
            .await;
        match started {
            Err(StartError::Handler(HandlerNameError::Builtin(name))) => assert_eq!(name, builtin),
            Err(other) => panic!("{builtin}: unexpected error {other}"),
            Ok(running) => {
                running.stop().await;
                panic!("a handler for {builtin:?} was accepted");
            }
        }
    }
    // Empty and duplicate names too.
    let started = Builder::new(test_config()).handler("", noop).start().await;
    assert!(matches!(
        started,
        Err(StartError::Handler(HandlerNameError::Empty))
    ));
    let started = Builder::new(test_config())
        .handler("dup", noop)
        .handler("dup", noop)
        .start()
        .await;
    assert!(matches!(
        started,
        Err(StartError::Handler(HandlerNameError::Duplicate(name))) if name == "dup"
    ));
}

/// A user subscriber: an actix actor that handles [`Event`].
struct Audit(mpsc::UnboundedSender<Event>);

impl Actor for Audit {
    type Context = Context<Self>;
}

impl Handler<Event> for Audit {
    type Result = ();

    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

#[actix_rt::test]
async fn a_user_subscriber_receives_online_and_offline() {
    let (sender, mut received) = mpsc::unbounded_channel();
    let audit = Audit(sender).start();
    let builder = Builder::new(test_config()).subscribe(audit.recipient());
    let server = TestServer::start_with(builder).await;
    let mut client = server.client().await;

    client.heartbeat("audited").await;
    client.offline("audited").await;
    client.heartbeat_timeout("timed", 150).await;

    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let event = tokio::time::timeout(common::IO_TIMEOUT, received.recv())
            .await
            .expect("an event in time")
            .expect("subscriber alive");
        kinds.push(format!("{} {}", event.proj(), event_kind(&event)));
    }
    assert_eq!(
        kinds,
        [
            "audited online",
            "audited offline(offline)",
            "timed online",
            "timed offline(timeout)",
        ]
    );

    // A subscriber added to a running server hears from then on.
    let (recipient, mut late) = EventLog::new();
    server.running().events().subscribe(recipient);
    client.heartbeat("later").await;
    client.offline("later").await;
    let kinds = [late.next().await, late.next().await]
        .map(|event| format!("{} {}", event.proj(), event_kind(&event)));
    assert_eq!(kinds, ["later online", "later offline(offline)"]);

    server.stop().await;
}

/// Answers once `release` is notified: a handler as slow as the test wants.
async fn slow(
    _: CustomFrame,
    _: HandlerContext,
    release: std::sync::Arc<tokio::sync::Notify>,
) -> HandlerReply {
    release.notified().await;
    Ok(object(json!({"slow": true})))
}

/// A slow handler on a client's own connection holds back that connection's next frames
/// (replies stay in order), but not the client's watchdog: the client goes offline at its
/// deadline while the handler still runs, and the handler's answer still comes, in order.
#[actix_rt::test]
async fn a_slow_handler_does_not_hold_back_its_clients_watchdog() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let builder = Builder::new(test_config()).handler("slow", move |f, c| slow(f, c, gate.clone()));
    let server = TestServer::start_with(builder).await;
    let mut events = server.event_log();
    let mut client = server.client().await;
    client.heartbeat_timeout("SLOW-1", 200).await;
    assert_eq!(event_kind(&events.next().await), "online");
    client.send(r#"{"type":"slow"}"#).await;
    client.send(r#"{"type":"heartbeat","proj":"SLOW-2"}"#).await;
    // The watchdog fires while the handler is still waiting.
    let offline = events.next().await;
    assert_eq!(event_kind(&offline), "offline(timeout)");
    assert_eq!(offline.proj().as_str(), "SLOW-1");
    release.notify_one();
    let reply = client.recv().await;
    assert_eq!(reply, json!({"type":"slow","slow":true}));
    let ack = client.recv().await;
    assert_eq!(
        ack["type"], "ack",
        "the next frame is answered after: {ack}"
    );
    assert_eq!(ack["proj"], "SLOW-2");
    server.stop().await;
}
