//! A client's recent heartbeat intervals, in a few bytes each.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The last few intervals between a client's heartbeats: a fixed-size ring of `u16` counts of a
/// per-client unit, with running sums for the mean and the variance.
///
/// # Why `u16` units and not `f64` milliseconds
/// The phi detector wants a window of about a hundred intervals per client, and a server holds
/// hundreds of thousands of clients at under 2 KB each: 100 `f64`s would be 800 B per client.
/// An interval kept for detection is always shorter than the client's timeout (a longer one is
/// a pause, not rhythm), so a unit of `ceil(timeout / 65535)` milliseconds makes every interval
/// fit a `u16`: 1 ms resolution up to a 65 s timeout, about 1.3 s at the 24 h maximum, where
/// a second is nothing. 100 intervals then take 200 B, and the sums are exact integers.
#[derive(Debug, Clone)]
pub(crate) struct Intervals {
    samples: Box<[u16]>,
    /// Where the next sample goes.
    head: u16,
    len: u16,
    /// Milliseconds per count.
    unit_ms: u32,
    sum: u64,
    sum_sq: u64,
}

/// What a window of intervals says, for evidence, the API and the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalSummary {
    /// Intervals summarized.
    pub samples: u32,
    /// Their mean, in milliseconds.
    pub mean_ms: u64,
    /// Their median.
    pub p50_ms: u64,
    /// Their 99th percentile (the largest but one in a hundred).
    pub p99_ms: u64,
    /// The longest.
    pub max_ms: u64,
}

impl Intervals {
    /// An empty window of `capacity` intervals for a client whose timeout is `timeout`.
    pub(crate) fn new(capacity: usize, timeout: Duration) -> Self {
        let capacity = capacity.min(usize::from(u16::MAX));
        Self {
            samples: vec![0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            unit_ms: unit_for(timeout),
            sum: 0,
            sum_sq: 0,
        }
    }

    /// Adds one interval, dropping the oldest when full. An interval of `timeout` or more is
    /// not rhythm (the client was paused, or would have been declared offline): the caller
    /// leaves it out. A timeout whose unit differs from the window's starts the window again.
    pub(crate) fn push(&mut self, interval: Duration, timeout: Duration) {
        if self.samples.is_empty() {
            return;
        }
        let unit = unit_for(timeout);
        if unit != self.unit_ms {
            self.clear(unit);
        }
        let count =
            (crate::clock::millis(interval) / u64::from(self.unit_ms)).min(u64::from(u16::MAX));
        let at = usize::from(self.head);
        if usize::from(self.len) == self.samples.len() {
            let old = u64::from(self.samples[at]);
            self.sum -= old;
            self.sum_sq -= old * old;
        } else {
            self.len += 1;
        }
        // `count` fits a u16: it was clamped above.
        self.samples[at] = count as u16;
        self.sum += count;
        self.sum_sq += count * count;
        self.head = if at + 1 == self.samples.len() {
            0
        } else {
            self.head + 1
        };
    }

    fn clear(&mut self, unit_ms: u32) {
        self.head = 0;
        self.len = 0;
        self.sum = 0;
        self.sum_sq = 0;
        self.unit_ms = unit_ms;
    }

    /// How many intervals the window holds.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The mean interval in milliseconds, if any is known.
    pub(crate) fn mean_ms(&self) -> Option<f64> {
        (self.len > 0).then(|| self.sum as f64 / f64::from(self.len) * f64::from(self.unit_ms))
    }

    /// The standard deviation of the intervals in milliseconds, if any is known.
    pub(crate) fn std_dev_ms(&self) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let n = f64::from(self.len);
        let mean = self.sum as f64 / n;
        let variance = (self.sum_sq as f64 / n - mean * mean).max(0.0);
        Some(variance.sqrt() * f64::from(self.unit_ms))
    }

    /// Mean, median, 99th percentile and maximum; `None` while empty. Sorts a copy: for
    /// queries and verdicts, never per heartbeat.
    pub(crate) fn summary(&self) -> Option<IntervalSummary> {
        if self.len == 0 {
            return None;
        }
        let mut sorted: Vec<u16> = self.samples[..self.len()].to_vec();
        sorted.sort_unstable();
        let unit = u64::from(self.unit_ms);
        let rank = |q: f64| {
            // Nearest rank: the smallest sample with at least q of them at or below it.
            let at = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            u64::from(sorted[at]) * unit
        };
        Some(IntervalSummary {
            samples: u32::from(self.len),
            mean_ms: (self.sum * unit) / u64::from(self.len),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: u64::from(sorted[sorted.len() - 1]) * unit,
        })
    }
}

/// The unit that makes every interval shorter than `timeout` fit a `u16`.
fn unit_for(timeout: Duration) -> u32 {
    let ms = crate::clock::millis(timeout);
    u32::try_from(ms.div_ceil(u64::from(u16::MAX)).max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TIMEOUT: Duration = Duration::from_secs(20);

    #[test]
    fn a_full_window_forgets_the_oldest_and_keeps_exact_sums() {
        let mut w = Intervals::new(4, TIMEOUT);
        for ms in [100, 200, 300, 400, 500, 600] {
            w.push(ms * MS, TIMEOUT);
        }
        assert_eq!(w.len(), 4);
        assert_eq!(w.mean_ms(), Some(450.0));
        // 300..600: variance 12,500, deviation 111.8
        assert!((w.std_dev_ms().unwrap() - 111.803).abs() < 0.01);
        let s = w.summary().unwrap();
        assert_eq!(
            (s.samples, s.mean_ms, s.p50_ms, s.p99_ms, s.max_ms),
            (4, 450, 400, 600, 600)
        );
    }

    #[test]
    fn long_timeouts_use_a_coarser_unit_and_a_new_unit_restarts_the_window() {
        let day = Duration::from_secs(24 * 3600);
        let mut w = Intervals::new(8, day);
        w.push(Duration::from_secs(3600), day);
        let mean = w.mean_ms().unwrap();
        // Within one unit (1,319 ms) of an hour.
        assert!((mean - 3_600_000.0).abs() < 1_319.0, "{mean}");
        w.push(Duration::from_secs(1), TIMEOUT);
        assert_eq!(
            w.len(),
            1,
            "a timeout with another unit restarts the window"
        );
        assert_eq!(w.mean_ms(), Some(1000.0));
    }

    #[test]
    fn an_empty_window_says_nothing_and_zero_capacity_keeps_nothing() {
        let mut w = Intervals::new(0, TIMEOUT);
        w.push(MS, TIMEOUT);
        assert_eq!(w.len(), 0);
        assert!(w.mean_ms().is_none() && w.std_dev_ms().is_none() && w.summary().is_none());
    }
}
