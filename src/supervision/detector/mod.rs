//! How a silent client is judged: when it is `late`, when it is `offline`, and the evidence
//! for each verdict (docs/detection.md).
//!
//! - The **fixed** detector (the default) declares a client offline one timeout after its last
//!   heartbeat.
//! - The **phi** detector ([`phi`]) learns each client's rhythm from its recent heartbeat
//!   intervals and declares it offline as soon as its silence is too unlikely for that rhythm,
//!   and never later than its timeout.
//! - Either way a client is `late` after `server.late_ratio` of the time to its offline
//!   verdict, and every verdict carries [`Evidence`].
//! - [`stall`]: the server's own stalls defer verdicts until it has caught up.
//!
//! A verdict's moment is computed when a heartbeat is applied, so that a client's watchdog
//! stays one timer, re-armed per heartbeat, whichever detector is in force.

mod intervals;
mod phi;
mod stall;

use std::sync::Arc;
use std::time::Duration;

pub use intervals::IntervalSummary;
pub(crate) use intervals::Intervals;
pub use phi::{PhiConfig, PhiValue};
#[cfg(test)]
pub(crate) use stall::Stall;
pub(crate) use stall::{watch as watch_stalls, StallGuard};

use crate::clock::millis;
use crate::events::{DetectorKind, Evidence};
use phi::Phi;

/// The detection rules of a server, shared by every record, actor and registry.
#[derive(Debug)]
pub(crate) struct Detection {
    kind: DetectorKind,
    /// Fraction of the time to the offline verdict after which a silent client is late; 0: never.
    late_ratio: f64,
    /// The phi rule, under the phi detector.
    phi: Option<Phi>,
    /// Intervals each client keeps (for the phi rule, evidence and statistics).
    samples: usize,
    /// The server's own stalls.
    pub(crate) stall: Arc<StallGuard>,
}

/// When a client silent since its last heartbeat is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Offline after this much silence.
    pub offline_after: Duration,
    /// Late after this much silence, if late verdicts are on.
    pub late_after: Option<Duration>,
}

impl Detection {
    /// `samples` is how many intervals a client keeps under the fixed detector (for evidence
    /// and statistics); under phi it keeps `phi.window`.
    pub(crate) fn new(
        kind: DetectorKind,
        late_ratio: f64,
        phi: &PhiConfig,
        samples: usize,
        stall: Arc<StallGuard>,
    ) -> Self {
        let phi = (kind == DetectorKind::Phi).then(|| Phi::new(phi));
        Self {
            kind,
            late_ratio,
            samples: phi.map_or(samples, |p| p.window),
            phi,
            stall,
        }
    }

    /// The fixed detector with no late verdicts and no stall detection, for unit tests.
    #[cfg(test)]
    pub(crate) fn fixed(metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        let phi = PhiConfig {
            window: 100,
            threshold: 8.0,
            min_deviation: Duration::from_millis(250),
            min_samples: 5,
        };
        Self::new(
            DetectorKind::Fixed,
            0.0,
            &phi,
            16,
            Arc::new(StallGuard::off(metrics)),
        )
    }

    /// An empty interval window for a new client.
    pub(crate) fn intervals(&self, timeout: Duration) -> Intervals {
        Intervals::new(self.samples, timeout)
    }

    /// When a client with this timeout and these recent intervals is late and offline.
    pub(crate) fn verdict(&self, timeout: Duration, intervals: &Intervals) -> Verdict {
        let offline_after = match self.rhythm(intervals) {
            Some((phi, mean, sd)) => phi.verdict_after(mean, sd).min(timeout),
            // The fixed detector, and the phi detector until it knows the client's rhythm.
            None => timeout,
        };
        let late_after = (self.late_ratio > 0.0).then(|| offline_after.mul_f64(self.late_ratio));
        Verdict {
            offline_after,
            late_after,
        }
    }

    /// The phi rule with the client's mean and deviation, once it has enough intervals.
    fn rhythm(&self, intervals: &Intervals) -> Option<(&Phi, f64, f64)> {
        let phi = self.phi.as_ref().filter(|p| p.ready(intervals.len()))?;
        Some((phi, intervals.mean_ms()?, intervals.std_dev_ms()?))
    }

    /// The figures behind a verdict on a client silent for `silent`.
    pub(crate) fn evidence(
        &self,
        silent: Duration,
        timeout: Duration,
        intervals: &Intervals,
    ) -> Evidence {
        let silent_ms = millis(silent);
        let mean = intervals.mean_ms();
        let mean_interval_ms = mean.map(|m| m.round() as u64);
        let missed_beats = match mean_interval_ms {
            Some(mean) if mean > 0 => silent_ms / mean,
            _ => 0,
        };
        let phi = self
            .rhythm(intervals)
            .map(|(phi, mean, sd)| PhiValue::new(phi.phi(silent_ms as f64, mean, sd)));
        Evidence {
            detector: self.kind,
            silent_ms,
            timeout_ms: millis(timeout),
            mean_interval_ms,
            missed_beats,
            phi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn detection(kind: DetectorKind, late_ratio: f64) -> Detection {
        let phi = PhiConfig {
            window: 100,
            threshold: 8.0,
            min_deviation: 250 * MS,
            min_samples: 5,
        };
        let metrics = Arc::new(crate::metrics::Metrics::new());
        Detection::new(
            kind,
            late_ratio,
            &phi,
            16,
            Arc::new(StallGuard::off(metrics)),
        )
    }

    fn beating_every_second(d: &Detection, n: usize) -> Intervals {
        let timeout = Duration::from_secs(20);
        let mut w = d.intervals(timeout);
        for i in 0..n {
            // 950, 1000, 1050, 1000, ...
            let jitter = [0, 50, 0, -50][i % 4];
            w.push(Duration::from_millis((1000 + jitter) as u64), timeout);
        }
        w
    }

    #[test]
    fn fixed_judges_at_the_timeout_and_late_at_its_ratio() {
        let d = detection(DetectorKind::Fixed, 0.5);
        let w = beating_every_second(&d, 50);
        let v = d.verdict(Duration::from_secs(20), &w);
        assert_eq!(v.offline_after, Duration::from_secs(20));
        assert_eq!(v.late_after, Some(Duration::from_secs(10)));
        let e = d.evidence(Duration::from_secs(20), Duration::from_secs(20), &w);
        assert_eq!(
            (
                e.detector,
                e.silent_ms,
                e.timeout_ms,
                e.mean_interval_ms,
                e.missed_beats,
                e.phi
            ),
            (DetectorKind::Fixed, 20_000, 20_000, Some(1000), 20, None)
        );
        assert_eq!(
            detection(DetectorKind::Fixed, 0.0)
                .verdict(Duration::from_secs(20), &w)
                .late_after,
            None
        );
    }

    #[test]
    fn phi_judges_a_regular_client_in_seconds_once_it_knows_its_rhythm() {
        let d = detection(DetectorKind::Phi, 0.5);
        let timeout = Duration::from_secs(20);
        let few = beating_every_second(&d, 4);
        assert_eq!(
            d.verdict(timeout, &few).offline_after,
            timeout,
            "too few intervals"
        );
        let w = beating_every_second(&d, 100);
        let v = d.verdict(timeout, &w);
        assert!(
            (2000 * MS..4000 * MS).contains(&v.offline_after),
            "{:?}",
            v.offline_after
        );
        let late = v.late_after.unwrap();
        assert!(late.abs_diff(v.offline_after / 2) < MS, "{late:?}");
        let e = d.evidence(v.offline_after, timeout, &w);
        assert_eq!(e.detector, DetectorKind::Phi);
        assert!((e.phi.unwrap().get() - 8.0).abs() < 0.02, "{e:?}");
        assert_eq!(e.missed_beats, 2);
        // Never later than the timeout.
        assert_eq!(d.verdict(1500 * MS, &w).offline_after, 1500 * MS);
    }
}
