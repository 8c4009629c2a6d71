//! Fixed against phi on recorded jitter traces (`tests/data/jitter/`, recorded with
//! `examples/record_intervals.rs`; see docs/detection.md): each trace is replayed into the real
//! registry on paused time, heartbeat by heartbeat, then the client falls silent. A verdict
//! while it beats is a false one; the silence until the offline after the last heartbeat is the
//! detection time.
//!
//! `cargo test --lib traces -- --nocapture` prints the table of docs/detection.md.

use std::time::Duration;

use tokio::time::sleep;

use super::*;
use crate::events::DetectorKind;
use crate::supervision::detector::{PhiConfig, StallGuard};
use crate::supervision::Detection;

/// The traces: (name, intervals in milliseconds).
fn traces() -> Vec<(String, Vec<u64>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jitter");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/data/jitter")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let intervals = std::fs::read_to_string(&path)
                .expect("a trace")
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            (name, intervals)
        })
        .collect()
}

/// What one detector did on one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    false_offlines: usize,
    false_lates: usize,
    /// Silence before the offline verdict once the client stopped.
    detection: Duration,
}

/// The server's defaults: a 20 s timeout (the client asks for none), late at half the time
/// to the verdict, phi 8 over 100 intervals with a deviation floor of `floor_ms` (250 ms by
/// default).
fn judged_by(kind: DetectorKind, floor_ms: u64) -> Fixture {
    fixture_with(
        move |metrics| {
            let phi = PhiConfig {
                window: 100,
                threshold: 8.0,
                min_deviation: Duration::from_millis(floor_ms),
                min_samples: 5,
            };
            Detection::new(kind, 0.5, &phi, 16, Arc::new(StallGuard::off(metrics)))
        },
        Stage::default(),
    )
}

async fn replay(kind: DetectorKind, floor_ms: u64, intervals: &[u64]) -> Outcome {
    let f = judged_by(kind, floor_ms);
    f.beat("T", None).await;
    for &ms in intervals {
        sleep(Duration::from_millis(ms)).await;
        f.beat("T", None).await;
    }
    sleep(TIMEOUT + Duration::from_secs(1)).await;
    let events = f.events.send(Take).await.unwrap();
    let offlines: Vec<&Event> = events.iter().filter(|e| e.kind() == "offline").collect();
    let lates = events.iter().filter(|e| e.kind() == "late").count();
    let Some(Event::Offline {
        evidence: Some(last),
        ..
    }) = offlines.last()
    else {
        panic!("no final offline: {events:?}")
    };
    Outcome {
        false_offlines: offlines.len() - 1,
        // The last late is the final silence's.
        false_lates: lates.saturating_sub(1),
        detection: Duration::from_millis(last.silent_ms),
    }
}

#[actix_rt::test]
async fn phi_detects_in_seconds_where_fixed_takes_the_timeout_with_no_false_verdict() {
    let traces = traces();
    assert!(traces.len() >= 2, "the recorded traces are missing");
    println!(
        "| trace | intervals | mean / p99 / max ms | detector | false offlines | false lates | detection |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|");
    for (name, intervals) in &traces {
        let mut sorted = intervals.clone();
        sorted.sort_unstable();
        let mean = intervals.iter().sum::<u64>() / intervals.len().max(1) as u64;
        let p99 = sorted[(sorted.len() * 99).div_ceil(100).saturating_sub(1)];
        let max = sorted.last().copied().unwrap_or(0);
        for kind in [DetectorKind::Fixed, DetectorKind::Phi] {
            let outcome = replay(kind, 250, intervals).await;
            println!(
                "| {name} | {} | {mean} / {p99} / {max} | {} | {} | {} | {:.2} s |",
                intervals.len(),
                kind.as_str(),
                outcome.false_offlines,
                outcome.false_lates,
                outcome.detection.as_secs_f64()
            );
            assert_eq!(outcome.false_offlines, 0, "{name}, {kind:?}: {outcome:?}");
            match kind {
                DetectorKind::Fixed => {
                    assert!(
                        (TIMEOUT..TIMEOUT + Duration::from_millis(5)).contains(&outcome.detection),
                        "{name}: {outcome:?}"
                    );
                    assert_eq!(outcome.false_lates, 0, "{name}: {outcome:?}");
                }
                DetectorKind::Phi => assert!(
                    (Duration::from_secs(2)..Duration::from_secs(4)).contains(&outcome.detection),
                    "{name}: {outcome:?}"
                ),
            }
        }
    }
}

/// What the deviation floor does: phi with floors below the default's 250 ms, on the same
/// traces. Printed for docs/detection.md; the assertion is only that a lower floor is never
/// slower and never makes fewer false verdicts.
#[actix_rt::test]
async fn a_lower_deviation_floor_detects_sooner_and_errs_on_stop_the_world_pauses() {
    println!("| trace | floor | false offlines | detection |");
    println!("|---|---:|---:|---:|");
    for (name, intervals) in traces() {
        let mut previous: Option<Outcome> = None;
        for floor in [250, 150, 100] {
            let outcome = replay(DetectorKind::Phi, floor, &intervals).await;
            println!(
                "| {name} | {floor} ms | {} | {:.2} s |",
                outcome.false_offlines,
                outcome.detection.as_secs_f64()
            );
            if let Some(previous) = previous {
                assert!(
                    outcome.detection <= previous.detection,
                    "{name}: {outcome:?}"
                );
                assert!(
                    outcome.false_offlines >= previous.false_offlines,
                    "{name}: {outcome:?}"
                );
            }
            previous = Some(outcome);
        }
    }
}
