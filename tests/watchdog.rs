//! The watchdog: a client that stops beating is declared offline after its timeout, and only
//! then. These tests run on real time with short timeouts. "Not before" is read from the
//! server's own timestamps (an offline event's `at` minus its `last_seen`), and "still online"
//! checks are made well ahead of the earliest moment the watchdog may fire; one answered too
//! late to tell runs the scenario again with longer timeouts (`retry_when_late`).
//!
//! The same checks under CPU pressure are in `watchdog_under_load.rs`, a binary of its own, so
//! that its busy threads do not slow the short watchdogs here.

mod common;

use std::time::{Duration, SystemTime};

use common::{eventually, retry_when_late, test_config, Client, EventLog, TestServer, IO_TIMEOUT};
use heartwatch::{Event, OfflineReason};
use tokio::time::Instant;

/// Longest wait for an event that is due within the longest timeout these tests use (2.4 s,
/// times the largest timing scale).
const EVENT_WAIT: Duration = Duration::from_secs(45);

/// Waits for the next event, which must be `proj`'s offline for `reason`; returns it.
async fn expect_offline(events: &mut EventLog, proj: &str, reason: OfflineReason) -> Event {
    let event = events
        .next_within(EVENT_WAIT)
        .await
        .unwrap_or_else(|| panic!("no offline for {proj} within {EVENT_WAIT:?}"));
    match &event {
        Event::Offline {
            proj: p, reason: r, ..
        } if p.as_str() == proj && *r == reason => {}
        other => panic!("expected offline({reason}) for {proj}, got {other:?}"),
    }
    event
}

/// Asserts that the server declared `offline` no earlier than `timeout` after the heartbeat it
/// last saw, by its own clock (a millisecond of truncation allowed).
fn assert_silent_for_its_timeout(offline: &Event, timeout: Duration) {
    let Event::Offline { last_seen, at, .. } = offline else {
        panic!("not an offline: {offline:?}");
    };
    let silent = at.duration_since(*last_seen).unwrap_or_default();
    assert!(
        silent + Duration::from_millis(1) >= timeout,
        "declared offline {silent:?} after its last heartbeat, its timeout is {timeout:?}"
    );
}

/// The `last_seen` of an offline event.
fn last_seen(offline: &Event) -> SystemTime {
    match offline {
        Event::Offline { last_seen, .. } => *last_seen,
        other => panic!("not an offline: {other:?}"),
    }
}

/// Waits for the next event, which must be `proj`'s online.
async fn expect_online(events: &mut EventLog, proj: &str) -> Event {
    let event = events.next().await;
    match &event {
        Event::Online { proj: p, .. } if p.as_str() == proj => {}
        other => panic!("expected online for {proj}, got {other:?}"),
    }
    event
}

/// Asserts that the API no longer knows `proj`: the registry publishes an offline event in
/// the same step that removes the client, so a query made after the event sees it gone.
async fn expect_removed(server: &TestServer, proj: &str) {
    assert_eq!(
        server.client_status(proj).await,
        404,
        "{proj} is removed by the time its offline event is out"
    );
}

#[actix_rt::test]
async fn a_client_that_stops_beating_goes_offline_after_its_timeout_and_not_before() {
    retry_when_late(|scale| async move {
        let server = TestServer::start_default().await;
        let mut events = server.event_log();
        let mut client = server.client().await;
        let timeout = Duration::from_millis(500) * scale;

        let sent = Instant::now();
        client
            .heartbeat_timeout("silent", timeout.as_millis() as u64)
            .await;
        let online = expect_online(&mut events, "silent").await;
        let Event::Online { addr, .. } = online else {
            unreachable!()
        };
        assert_eq!(addr, client.local);
        let last_seen = server.client_record("silent").await["last_seen"].clone();

        // At about half its timeout it is still online, as it was.
        tokio::time::sleep_until(sent + timeout / 2).await;
        let halfway = server.assert_online_until("silent", sent + timeout).await;
        if let Ok(record) = &halfway {
            assert_eq!(record["heartbeats"], 1, "{record}");
            assert_eq!(record["last_seen"], last_seen, "{record}");
        }

        // Then it goes offline: its next event (nothing was published in between), reason
        // timeout, no earlier than its timeout by the server's clock and by ours...
        let offline = expect_offline(&mut events, "silent", OfflineReason::Timeout).await;
        assert_silent_for_its_timeout(&offline, timeout);
        assert!(
            sent.elapsed() >= timeout,
            "offline after {:?}, its timeout is {timeout:?}",
            sent.elapsed()
        );
        let Event::Offline {
            last_seen: event_last_seen,
            addr,
            ..
        } = offline
        else {
            unreachable!()
        };
        // The API showed the same instant, truncated to its precision (a millisecond at most).
        let api_last_seen =
            humantime::parse_rfc3339(last_seen.as_str().unwrap()).expect("RFC 3339");
        let skew = event_last_seen.duration_since(api_last_seen);
        assert!(
            skew.is_ok_and(|d| d < Duration::from_millis(1)),
            "the offline event carries the last heartbeat's time: {event_last_seen:?} vs {last_seen}"
        );
        assert_eq!(addr, client.local);
        // ... and by the API, which no longer knows it.
        expect_removed(&server, "silent").await;
        assert_eq!(server.known_clients().await, 0.0);
        assert_eq!(
            server
                .metric("heartwatch_offline_total{reason=\"timeout\"}")
                .await,
            1.0
        );

        server.stop().await;
        halfway.map(drop)
    })
    .await;
}

#[actix_rt::test]
async fn the_configured_timeout_applies_to_clients_that_do_not_ask_for_one() {
    let mut config = test_config();
    config.timeout = Duration::from_millis(300);
    let server = TestServer::start(config).await;
    let mut events = server.event_log();
    let mut client = server.client().await;

    let sent = Instant::now();
    assert_eq!(client.heartbeat("default").await["timeout_ms"], 300);
    expect_online(&mut events, "default").await;
    expect_offline(&mut events, "default", OfflineReason::Timeout).await;
    assert!(sent.elapsed() >= Duration::from_millis(300));
    expect_removed(&server, "default").await;

    server.stop().await;
}

#[actix_rt::test]
async fn a_client_that_keeps_beating_stays_online_past_several_timeouts() {
    let server = TestServer::start_default().await;
    let mut events = server.event_log();
    let mut client = server.client().await;

    client.heartbeat_timeout("steady", 800).await;
    expect_online(&mut events, "steady").await;

    // Beat every 100 ms for 2.4 s: three timeouts' worth, with 700 ms of slack per beat.
    let start = Instant::now();
    let mut beats = 1u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while start.elapsed() < Duration::from_millis(2400) {
        tick.tick().await;
        client.heartbeat("steady").await;
        beats += 1;
    }
    let record = server.client_record("steady").await;
    assert_eq!(
        record["heartbeats"], beats,
        "one record all along: {record}"
    );
    assert_eq!(
        record["timeout_ms"], 800,
        "timeout kept by plain heartbeats"
    );

    // The watchdog was live all along: once the beats stop, it fires. Its offline is the
    // next event, and it is about the last heartbeat: no offline came while it beat.
    let offline = expect_offline(&mut events, "steady", OfflineReason::Timeout).await;
    let recorded = humantime::parse_rfc3339(record["last_seen"].as_str().expect("last_seen"))
        .expect("RFC 3339");
    assert!(
        last_seen(&offline)
            .duration_since(recorded)
            .is_ok_and(|d| d < Duration::from_millis(1)),
        "the offline is about the last heartbeat: {offline:?} vs {record}"
    );
    assert_silent_for_its_timeout(&offline, Duration::from_millis(800));

    server.stop().await;
}

#[actix_rt::test]
async fn a_closed_connection_is_not_an_offline() {
    retry_when_late(|scale| async move {
        let server = TestServer::start_default().await;
        let mut events = server.event_log();
        let timeout = Duration::from_millis(1000) * scale;

        let mut client = server.client().await;
        let sent = Instant::now();
        client
            .heartbeat_timeout("closer", timeout.as_millis() as u64)
            .await;
        expect_online(&mut events, "closer").await;
        drop(client);

        // The server has noticed the close...
        eventually(IO_TIMEOUT, "the session is closed", || async {
            server.running().metrics().connections() == 0
        })
        .await;
        // ... and the client is still online until its watchdog fires: its next event is
        // the watchdog's offline, a whole timeout after its heartbeat.
        let still_online = server.assert_online_until("closer", sent + timeout).await;
        let offline = expect_offline(&mut events, "closer", OfflineReason::Timeout).await;
        assert_silent_for_its_timeout(&offline, timeout);
        assert!(sent.elapsed() >= timeout);
        expect_removed(&server, "closer").await;

        server.stop().await;
        still_online.map(drop)
    })
    .await;
}

#[actix_rt::test]
async fn the_next_heartbeat_after_an_offline_brings_the_client_back() {
    let server = TestServer::start_default().await;
    let mut events = server.event_log();
    let mut client = server.client().await;

    client.heartbeat_timeout("phoenix", 200).await;
    expect_online(&mut events, "phoenix").await;
    expect_offline(&mut events, "phoenix", OfflineReason::Timeout).await;
    expect_removed(&server, "phoenix").await;

    // Same connection: its cached monitor has stopped; the heartbeat must still take effect.
    let reply = client.heartbeat("phoenix").await;
    assert_eq!(reply["timeout_ms"], 20_000, "a new client gets the default");
    expect_online(&mut events, "phoenix").await;
    let record = server.client_record("phoenix").await;
    assert_eq!(record["heartbeats"], 1, "a fresh record: {record}");
    assert_eq!(record["state"], "online");

    // Again, from a new connection after another timeout.
    client.heartbeat_timeout("phoenix", 200).await;
    expect_offline(&mut events, "phoenix", OfflineReason::Timeout).await;
    let mut other = Client::connect(server.tcp).await;
    other.heartbeat("phoenix").await;
    expect_online(&mut events, "phoenix").await;
    assert_eq!(server.client_record("phoenix").await["heartbeats"], 1);
    assert_eq!(server.known_clients().await, 1.0);

    server.stop().await;
}

#[actix_rt::test]
async fn each_client_has_its_own_watchdog() {
    retry_when_late(|scale| async move {
        let server = TestServer::start_default().await;
        let mut events = server.event_log();
        let mut client = server.client().await;
        let (short, long) = (Duration::from_millis(200), Duration::from_millis(1500));
        let (short, long) = (short * scale, long * scale);

        let sent = Instant::now();
        client
            .heartbeat_timeout("short", short.as_millis() as u64)
            .await;
        client
            .heartbeat_timeout("long", long.as_millis() as u64)
            .await;
        expect_online(&mut events, "short").await;
        expect_online(&mut events, "long").await;

        let offline = expect_offline(&mut events, "short", OfflineReason::Timeout).await;
        assert_silent_for_its_timeout(&offline, short);
        let long_online = server.assert_online_until("long", sent + long).await;
        expect_removed(&server, "short").await;
        // And the long one's watchdog fires on its own time.
        let offline = expect_offline(&mut events, "long", OfflineReason::Timeout).await;
        assert_silent_for_its_timeout(&offline, long);

        server.stop().await;
        long_online.map(drop)
    })
    .await;
}
