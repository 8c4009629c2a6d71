//! The phi-accrual detector (Hayashibara et al., 2004), as Akka and Cassandra use it.
//!
//! Instead of a fixed timeout, each client's recent heartbeat intervals give a distribution
//! of when its next heartbeat should come. `phi` is how unlikely the silence so far is under
//! it: `phi = -log10(P(an interval at least this long))`, so phi 8 means a chance of one in
//! 10^8 that a client beating as it did would still be silent now. The client is declared
//! offline when phi exceeds the threshold.
//!
//! The distribution is normal with the window's mean and standard deviation (floored: a very
//! regular client would otherwise get a deviation near zero and be declared offline for a few
//! milliseconds of jitter), and its tail is the logistic approximation Akka uses, which has a
//! closed form. Because phi only grows with the silence, the moment phi crosses the threshold
//! is known at each heartbeat: `mean + z * deviation`, with `z` solved once from the threshold.
//! So the phi detector costs one timer per heartbeat, like the fixed one, and never a poll.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Coefficients of the logistic approximation of the normal tail:
/// `P(X > mean + y * sd) ~ e / (1 + e)` with `e = exp(-y * (A + B * y^2))`.
const A: f64 = 1.5976;
const B: f64 = 0.070566;

/// `[phi]`: the phi-accrual detector's settings (used when `server.detector = "phi"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhiConfig {
    /// Heartbeat intervals kept per client (the last ones).
    pub window: usize,
    /// Phi above which a silent client is declared offline.
    pub threshold: f64,
    /// The smallest standard deviation assumed for a client's intervals.
    #[serde(with = "humantime_serde")]
    pub min_deviation: Duration,
    /// Intervals a client must have sent before phi judges it; until then its timeout does.
    pub min_samples: usize,
}

/// The phi rule, ready to use: the threshold turned into a number of deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Phi {
    pub window: usize,
    pub threshold: f64,
    /// Deviations after the mean at which phi reaches the threshold.
    z: f64,
    min_deviation_ms: f64,
    min_samples: usize,
}

/// A phi value, kept to two decimals so that events stay comparable (`Eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhiValue(u32);

impl PhiValue {
    /// Rounds `phi` to two decimals (saturating at 42,949,672.95).
    pub fn new(phi: f64) -> Self {
        Self((phi.max(0.0) * 100.0).round().min(f64::from(u32::MAX)) as u32)
    }

    /// The value.
    pub fn get(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl Serialize for PhiValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.get())
    }
}

impl<'de> Deserialize<'de> for PhiValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(PhiValue::new)
    }
}

impl Phi {
    pub(crate) fn new(config: &PhiConfig) -> Self {
        Self {
            window: config.window,
            threshold: config.threshold,
            z: deviations_for(config.threshold),
            min_deviation_ms: config.min_deviation.as_secs_f64() * 1000.0,
            min_samples: config.min_samples.max(1),
        }
    }

    /// Whether `samples` intervals are enough for phi to judge.
    pub(crate) fn ready(&self, samples: usize) -> bool {
        samples >= self.min_samples
    }

    fn deviation(&self, std_dev_ms: f64) -> f64 {
        std_dev_ms.max(self.min_deviation_ms).max(f64::MIN_POSITIVE)
    }

    /// The silence after which phi exceeds the threshold, for intervals of this mean and
    /// deviation (milliseconds).
    pub(crate) fn verdict_after(&self, mean_ms: f64, std_dev_ms: f64) -> Duration {
        let ms = mean_ms + self.z * self.deviation(std_dev_ms);
        Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 1e9))
    }

    /// Phi after `silent_ms` of silence.
    pub(crate) fn phi(&self, silent_ms: f64, mean_ms: f64, std_dev_ms: f64) -> f64 {
        let y = (silent_ms - mean_ms) / self.deviation(std_dev_ms);
        let e = (-y * (A + B * y * y)).exp();
        let tail = if silent_ms > mean_ms {
            e / (1.0 + e)
        } else {
            1.0 - 1.0 / (1.0 + e)
        };
        if tail <= 0.0 {
            // Beyond what an f64 tells apart from certainty.
            return f64::from(u32::MAX) / 100.0;
        }
        -tail.log10()
    }
}

/// Solves `phi(mean + z * sd) = threshold` for `z`: `z * (A + B z^2) = ln(10^threshold - 1)`,
/// whose left side increases with `z` (Newton's method from a point past the root converges
/// monotonically).
fn deviations_for(threshold: f64) -> f64 {
    let target = (10f64.powf(threshold) - 1.0).ln().max(0.0);
    let mut z = (target / B).cbrt().max(target / A);
    for _ in 0..100 {
        let f = z * (A + B * z * z) - target;
        let slope = A + 3.0 * B * z * z;
        let next = z - f / slope;
        if (next - z).abs() < 1e-12 {
            return next;
        }
        z = next;
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phi(threshold: f64, min_deviation_ms: u64) -> Phi {
        Phi::new(&PhiConfig {
            window: 100,
            threshold,
            min_deviation: Duration::from_millis(min_deviation_ms),
            min_samples: 5,
        })
    }

    #[test]
    fn the_verdict_moment_is_where_phi_reaches_the_threshold() {
        for threshold in [1.0, 3.0, 8.0, 12.0, 16.0] {
            let p = phi(threshold, 1);
            let after = p.verdict_after(1000.0, 100.0);
            let at = after.as_secs_f64() * 1000.0;
            let value = p.phi(at, 1000.0, 100.0);
            assert!(
                (value - threshold).abs() < 1e-6,
                "threshold {threshold}: phi {value}"
            );
            assert!(p.phi(at - 1.0, 1000.0, 100.0) < threshold);
            assert!(p.phi(at + 1.0, 1000.0, 100.0) > threshold);
        }
    }

    #[test]
    fn phi_grows_with_silence_and_a_deviation_floor_holds_it_back() {
        let p = phi(8.0, 250);
        let mut last = 0.0;
        for silent in (0..5000).step_by(100) {
            let value = p.phi(f64::from(silent), 1000.0, 10.0);
            assert!(value >= last, "{silent}: {value} < {last}");
            last = value;
        }
        // With a 10 ms deviation floored at 250 ms, phi 8 is about 5.2 deviations out.
        let after = p.verdict_after(1000.0, 10.0);
        assert!((2_250..2_400).contains(&after.as_millis()), "{after:?}");
        assert_eq!(PhiValue::new(8.004).get(), 8.0);
    }
}
