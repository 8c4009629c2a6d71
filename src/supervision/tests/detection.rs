//! Late verdicts, the phi detector, pauses, stalls, flap damping and outage grouping, on paused
//! time (see the parent module).

use std::time::Duration;

use tokio::time::sleep;

use super::*;
use crate::events::{DetectorKind, FlapConfig, OutageConfig, OutageWebhooks};
use crate::supervision::detector::{PhiConfig, StallGuard};
use crate::supervision::registry::{PauseError, Target};
use crate::supervision::{glob, BeatError, ClientState, Detection, Until};

const S: Duration = Duration::from_secs(1);

fn phi_config() -> PhiConfig {
    PhiConfig {
        window: 100,
        threshold: 8.0,
        min_deviation: 250 * MS,
        min_samples: 5,
    }
}

/// Clients judged by `kind`, late at half the time to their offline verdict, stalls detected
/// beyond 500 ms with a 2 s grace.
fn judged_by(kind: DetectorKind) -> Fixture {
    fixture_with(
        move |metrics| {
            let stall = StallGuard::new(500 * MS, 2 * S, metrics);
            Detection::new(kind, 0.5, &phi_config(), 16, Arc::new(stall))
        },
        Stage::default(),
    )
}

fn flap(transitions: u32) -> FlapConfig {
    FlapConfig {
        transitions,
        window: 600 * S,
    }
}

fn no_outage() -> OutageConfig {
    OutageConfig {
        min_clients: 0,
        ratio: 0.2,
        window: 5 * S,
        max_duration: 3600 * S,
        webhooks: OutageWebhooks::Grouped,
    }
}

impl Fixture {
    async fn raw_events(&self) -> Vec<Event> {
        self.events.send(Take).await.unwrap()
    }

    async fn state(&self, p: &str) -> Option<ClientState> {
        self.registry.get(proj(p)).await.unwrap().map(|i| i.state)
    }

    async fn pause(
        &self,
        target: Target,
        length: Option<Duration>,
    ) -> Result<Vec<Proj>, PauseError> {
        self.registry
            .pause(target, length.map(Until::after))
            .await
            .unwrap()
    }

    async fn resume(&self, target: Target) -> Result<Vec<Proj>, PauseError> {
        self.registry.resume(target).await.unwrap()
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::kind).collect()
}

#[actix_rt::test]
async fn a_silent_client_is_late_at_half_its_timeout_and_its_next_heartbeat_recovers_it() {
    let f = judged_by(DetectorKind::Fixed);
    f.beat("P", None).await;
    sleep(S).await;
    f.beat("P", None).await;
    assert_eq!(kinds(&f.raw_events().await), ["online"]);

    sleep(TIMEOUT / 2 - MS).await;
    assert_eq!(f.state("P").await, Some(ClientState::Online));
    sleep(2 * MS).await;
    assert_eq!(f.state("P").await, Some(ClientState::Late));
    let counts = f.registry.count_states().await.unwrap();
    assert_eq!((counts.online, counts.late), (0, 1), "{counts:?}");
    let events = f.raw_events().await;
    match events.as_slice() {
        [Event::Late {
            silent_ms,
            evidence,
            ..
        }] => {
            assert!((10_000..10_002).contains(silent_ms), "{silent_ms}");
            assert_eq!(evidence.detector, DetectorKind::Fixed);
            assert_eq!(evidence.timeout_ms, 20_000);
            assert!(
                matches!(evidence.mean_interval_ms, Some(1_000..=1_001)),
                "{evidence:?}"
            );
            assert!((9..=10).contains(&evidence.missed_beats), "{evidence:?}");
            assert_eq!(evidence.phi, None);
        }
        other => panic!("{other:?}"),
    }

    // Its next heartbeat: an online that says so, not a new session.
    f.beat("P", None).await;
    match f.raw_events().await.as_slice() {
        [Event::Online { recovered, .. }] => assert!(recovered),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.state("P").await, Some(ClientState::Online));

    // Silent again: late once, then offline with its evidence, at its timeout.
    sleep(TIMEOUT + MS).await;
    let events = f.raw_events().await;
    assert_eq!(kinds(&events), ["late", "offline"]);
    let Event::Offline {
        evidence: Some(evidence),
        ..
    } = &events[1]
    else {
        panic!("{events:?}")
    };
    assert!(
        (20_000..20_002).contains(&evidence.silent_ms),
        "{evidence:?}"
    );
    // Its intervals now: a second, and the ten seconds it was late.
    let mean = evidence.mean_interval_ms.expect("a mean");
    assert!((5_500..=5_502).contains(&mean), "{evidence:?}");
    assert_eq!(evidence.missed_beats, evidence.silent_ms / mean);
}

/// Beats `p` every second (give or take 20 ms), `n` times.
async fn beat_every_second(f: &Fixture, p: &str, n: usize) {
    for i in 0..n {
        f.beat(p, None).await;
        let jitter = [0, 20, 0, 40, 10][i % 5];
        sleep(Duration::from_millis(980 + jitter)).await;
    }
}

#[actix_rt::test]
async fn phi_declares_a_regular_client_offline_in_seconds_not_at_its_timeout() {
    let f = judged_by(DetectorKind::Phi);
    beat_every_second(&f, "P", 60).await;
    f.beat("P", None).await;
    let last = tokio::time::Instant::now();
    let _ = f.raw_events().await;
    // Its rhythm: about a second, deviation floored at 250 ms: offline after about 2.3 s.
    sleep(2 * S).await;
    assert_eq!(f.state("P").await, Some(ClientState::Late));
    sleep(400 * MS).await;
    assert_eq!(f.state("P").await, None, "offline within 2.4 s of silence");
    let events = f.raw_events().await;
    assert_eq!(kinds(&events), ["late", "offline"]);
    let Event::Offline {
        evidence: Some(evidence),
        at,
        last_seen,
        ..
    } = &events[1]
    else {
        panic!("{events:?}")
    };
    assert_eq!(evidence.detector, DetectorKind::Phi);
    let phi = evidence.phi.expect("a phi value").get();
    assert!((8.0..8.1).contains(&phi), "{evidence:?}");
    assert!((2_000..2_400).contains(&evidence.silent_ms), "{evidence:?}");
    let _ = (at, last_seen, last);
}

#[actix_rt::test]
async fn phi_never_waits_longer_than_the_timeout_and_judges_by_timeout_until_it_knows_the_rhythm() {
    let f = judged_by(DetectorKind::Phi);
    // Three heartbeats: too few intervals for phi, the timeout decides.
    beat_every_second(&f, "P", 3).await;
    f.beat("P", None).await;
    sleep(TIMEOUT - MS).await;
    assert!(f.online("P").await);
    sleep(2 * MS).await;
    assert!(!f.online("P").await);

    // A slow rhythm with a short timeout: the timeout comes first.
    for _ in 0..10 {
        f.beat("Q", Some(3_000)).await;
        sleep(2 * S).await;
    }
    f.beat("Q", Some(3_000)).await;
    sleep(3 * S - MS).await;
    assert!(f.online("Q").await);
    sleep(2 * MS).await;
    assert!(!f.online("Q").await);
}

#[actix_rt::test]
async fn a_paused_client_is_never_offline_and_its_watchdog_restarts_at_the_resume() {
    let f = judged_by(DetectorKind::Fixed);
    f.beat("P", None).await;
    assert_eq!(
        f.pause(Target::Proj(proj("P")), None).await,
        Ok(vec![proj("P")])
    );
    assert_eq!(f.state("P").await, Some(ClientState::Paused));
    // Long past its timeout: still there, and its heartbeats still count.
    sleep(TIMEOUT * 5).await;
    f.beat("P", None).await;
    sleep(TIMEOUT * 5).await;
    assert_eq!(f.state("P").await, Some(ClientState::Paused));
    assert_eq!(
        f.registry.get(proj("P")).await.unwrap().unwrap().heartbeats,
        2
    );
    assert_eq!(kinds(&f.raw_events().await), ["online", "paused"]);

    // Resumed: offline one timeout after the resume (its last heartbeat is older).
    assert_eq!(f.resume(Target::Proj(proj("P"))).await, Ok(vec![proj("P")]));
    assert_eq!(f.state("P").await, Some(ClientState::Online));
    sleep(TIMEOUT / 2 + MS).await;
    assert_eq!(f.state("P").await, Some(ClientState::Late));
    sleep(TIMEOUT / 2 - 2 * MS).await;
    assert!(f.online("P").await);
    sleep(2 * MS).await;
    assert!(!f.online("P").await);
    assert_eq!(kinds(&f.raw_events().await), ["resumed", "late", "offline"]);

    // Unknown clients cannot be paused or resumed.
    assert_eq!(
        f.pause(Target::Proj(proj("X")), None).await,
        Err(PauseError::NotKnown(proj("X")))
    );
    assert_eq!(
        f.resume(Target::Proj(proj("X"))).await,
        Err(PauseError::NotKnown(proj("X")))
    );
}

#[actix_rt::test]
async fn a_pause_for_a_while_ends_by_itself() {
    let f = judged_by(DetectorKind::Fixed);
    f.beat("P", None).await;
    f.pause(Target::Proj(proj("P")), Some(60 * S))
        .await
        .unwrap();
    sleep(60 * S - MS).await;
    assert_eq!(f.state("P").await, Some(ClientState::Paused));
    sleep(2 * MS).await;
    assert_eq!(f.state("P").await, Some(ClientState::Online));
    let events = f.raw_events().await;
    assert_eq!(kinds(&events), ["online", "paused", "resumed"]);
    assert!(matches!(events[2], Event::Resumed { expired: true, .. }));
    assert!(matches!(
        events[1],
        Event::Paused {
            until: Some(_),
            window: None,
            ..
        }
    ));
    sleep(TIMEOUT).await;
    assert!(!f.online("P").await);
}

#[actix_rt::test]
async fn a_window_pauses_the_clients_it_matches_now_and_as_they_come_online() {
    let f = judged_by(DetectorKind::Fixed);
    f.beat("A-1", None).await;
    f.beat("B-1", None).await;
    let paused = f
        .pause(Target::Glob(glob("A-*").unwrap()), Some(600 * S))
        .await
        .unwrap();
    assert_eq!(paused, [proj("A-1")]);
    f.beat("A-2", None).await;
    assert_eq!(f.state("A-2").await, Some(ClientState::Paused));
    let events = f.raw_events().await;
    assert_eq!(
        kinds(&events),
        ["online", "online", "paused", "online", "paused"]
    );
    assert!(matches!(&events[4], Event::Paused { window: Some(w), .. } if w == "A-*"));

    // A client's own resume does not end a window over it.
    f.pause(Target::Proj(proj("A-1")), None).await.unwrap();
    assert_eq!(
        f.resume(Target::Proj(proj("A-1"))).await,
        Err(PauseError::StillPaused {
            proj: proj("A-1"),
            window: "A-*".into()
        })
    );
    sleep(TIMEOUT + MS).await;
    assert!(!f.online("B-1").await);
    assert!(f.online("A-1").await && f.online("A-2").await);
    let resumed = f.resume(Target::Glob(glob("A-*").unwrap())).await.unwrap();
    assert_eq!(resumed, [proj("A-1"), proj("A-2")]);
    sleep(TIMEOUT + MS).await;
    assert!(!f.online("A-1").await && !f.online("A-2").await);
}

#[actix_rt::test]
async fn after_a_stall_verdicts_wait_for_the_grace_and_only_the_still_silent_are_offline() {
    let f = judged_by(DetectorKind::Fixed);
    f.beat("BEATING", None).await;
    f.beat("SILENT", None).await;
    sleep(TIMEOUT - S).await;
    // The server notices it stalled (a timer fired 3 s late): verdicts wait for 2 s.
    f.detection.stall.stalled(
        tokio::time::Instant::now(),
        crate::supervision::detector::Stall::Late(3 * S),
    );
    assert_eq!(f.metrics.stalls(), 1);
    sleep(S + 500 * MS).await;
    // Past both deadlines, inside the grace: nobody is offline yet.
    assert!(f.online("BEATING").await && f.online("SILENT").await);
    // The buffered heartbeat of one is read.
    f.beat("BEATING", None).await;
    sleep(500 * MS + MS).await;
    assert!(f.online("BEATING").await);
    assert!(!f.online("SILENT").await, "judged at the end of the grace");
    let offlines: Vec<_> = f
        .raw_events()
        .await
        .into_iter()
        .filter(|e| e.kind() == "offline")
        .collect();
    assert_eq!(offlines.len(), 1, "{offlines:?}");
}

#[actix_rt::test]
async fn a_flapping_client_is_announced_once_then_quiet_until_stable() {
    let f = fixture_with(Detection::fixed, Stage::new(&flap(5), &no_outage(), 0));
    // online, offline, online, offline, online: the fifth transition makes it flapping. (A
    // one-hour timeout: no timeout in this test.)
    for i in 0..3 {
        f.beat("P", Some(3_600_000)).await;
        if i < 2 {
            f.heartbeats.offline(proj("P")).await.unwrap();
        }
        sleep(S).await;
    }
    let events = f.raw_events().await;
    assert_eq!(
        kinds(&events),
        ["online", "offline", "online", "offline", "online", "flapping"]
    );
    assert_eq!(f.state("P").await, Some(ClientState::Flapping));
    let counts = f.registry.count_states().await.unwrap();
    assert_eq!((counts.online, counts.flapping), (0, 1), "{counts:?}");
    // Its further transitions are not announced.
    for _ in 0..3 {
        f.heartbeats.offline(proj("P")).await.unwrap();
        f.beat("P", Some(3_600_000)).await;
        sleep(S).await;
    }
    assert!(f.raw_events().await.is_empty());
    // Quiet for the window: stable, in its state.
    sleep(600 * S).await;
    match f.raw_events().await.as_slice() {
        [Event::Stable {
            state, suppressed, ..
        }] => assert_eq!((*state, *suppressed), (ClientState::Online, 6)),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.state("P").await, Some(ClientState::Online));
}

#[actix_rt::test]
async fn clients_timing_out_together_are_one_outage_and_its_end() {
    let outage = OutageConfig {
        min_clients: 10,
        ..no_outage()
    };
    let f = fixture_with(Detection::fixed, Stage::new(&flap(0), &outage, 0));
    for i in 0..40 {
        f.beat(&format!("C-{i}"), None).await;
    }
    sleep(TIMEOUT / 2).await;
    // 30 keep beating; 10 go silent and time out together.
    for i in 10..40 {
        f.beat(&format!("C-{i}"), None).await;
    }
    let _ = f.raw_events().await;
    sleep(TIMEOUT / 2 + MS).await;
    let events = f.raw_events().await;
    let outage_id = events
        .iter()
        .find_map(|e| match e {
            Event::Outage {
                id, count, projs, ..
            } => {
                assert_eq!((*count, projs.len()), (10, 10));
                Some(*id)
            }
            _ => None,
        })
        .expect("an outage event");
    let tagged = events
        .iter()
        .filter(|e| matches!(e, Event::Offline { outage: Some(id), .. } if *id == outage_id))
        .count();
    assert_eq!(tagged, 1, "the offline that completed it carries its id");
    assert_eq!(
        events.iter().filter(|e| e.kind() == "offline").count(),
        10,
        "{events:?}"
    );
    // 8 of 10 back: the outage ends.
    for i in 0..8 {
        f.beat(&format!("C-{i}"), None).await;
    }
    let events = f.raw_events().await;
    assert_eq!(kinds(&events).last(), Some(&"outage_end"));
    assert!(matches!(
        events.last(),
        Some(Event::OutageEnd {
            count: 10,
            recovered: 8,
            ..
        })
    ));
}

#[actix_rt::test]
async fn past_max_pending_new_clients_are_told_when_to_retry_and_online_ones_are_served() {
    let f = fixture_limited(Detection::fixed, Stage::default(), 2);
    let ack = f.heartbeats.beat(heartbeat("ONLINE", None)).await.unwrap();
    assert!(
        ack.interval.abs_diff(TIMEOUT / 3) < MS,
        "a third of its timeout"
    );
    // Eleven at once: the first two new ones pass, the other new ones are refused, and the
    // online client's heartbeat is applied whatever the backlog.
    let mut beats: Vec<_> = (0..10)
        .map(|i| f.heartbeats.beat(heartbeat(&format!("N-{i}"), None)))
        .collect();
    beats.push(f.heartbeats.beat(heartbeat("ONLINE", None)));
    let results = futures_util::future::join_all(beats).await;
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    for refused in &results[2..10] {
        match refused {
            Err(e @ BeatError::Overloaded { retry_after }) => {
                assert!((100 * MS..=30 * S).contains(retry_after), "{retry_after:?}");
                assert_eq!(e.retry_after(), Some(*retry_after));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(results[10].is_ok(), "{results:?}");
    assert!(f.online("N-1").await && !f.online("N-2").await);
    // The backlog gone, a refused client gets in.
    f.beat("N-2", None).await;
    assert!(f.online("N-2").await);
}
