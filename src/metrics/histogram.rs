//! A histogram of durations that the hot path can afford: two relaxed atomic additions per
//! observation, no lock.
//!
//! prometheus-client's own `Histogram` takes a mutex per observation; observed on every
//! heartbeat from every session arbiter, that lock would be contended. Here each bucket is its
//! own counter (not cumulative: an observation touches one bucket) and the sum is kept in
//! microseconds, an integer. The cumulative counts, the total count and the sum in seconds are
//! computed at each scrape. A scrape that races an observation may see its bucket without its
//! sum (off by one observation's microseconds); `_count` is always the `+Inf` bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Durations, in buckets fixed at creation. Cheap to clone (the clones share the counts).
#[derive(Debug, Clone)]
pub(crate) struct DurationHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds (inclusive), in microseconds, ascending.
    bounds_us: Box<[u64]>,
    /// Observations per bucket, the last one past every bound (`+Inf`).
    counts: Box<[AtomicU64]>,
    /// The sum of all observations, in microseconds.
    sum_us: AtomicU64,
}

/// A duration in whole microseconds, saturating, without a `u128` division.
fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

impl DurationHistogram {
    /// A histogram with these upper bounds (seconds, ascending; `+Inf` is added).
    pub(crate) fn new(bounds_seconds: &[f64]) -> Self {
        let bounds_us: Box<[u64]> = bounds_seconds
            .iter()
            .map(|s| micros(Duration::from_secs_f64(*s)))
            .collect();
        debug_assert!(bounds_us.windows(2).all(|w| w[0] < w[1]), "ascending");
        let counts = (0..=bounds_us.len()).map(|_| AtomicU64::new(0)).collect();
        Self(Arc::new(Inner {
            bounds_us,
            counts,
            sum_us: AtomicU64::new(0),
        }))
    }

    /// Counts one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let us = micros(d);
        let bucket = self.0.bounds_us.partition_point(|&bound| bound < us);
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub(crate) fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of the observations so far.
    pub(crate) fn sum(&self) -> Duration {
        Duration::from_micros(self.0.sum_us.load(Ordering::Relaxed))
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per bucket, not cumulative: the encoder adds them up.
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds_us
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.0.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let h = DurationHistogram::new(&[0.001, 0.5, 2.0]);
        h.observe(Duration::from_micros(1_000)); // on the bound: le="0.001"
        h.observe(Duration::from_micros(1_001));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(3));
        h.observe(Duration::ZERO);
        let counts: Vec<u64> =
            h.0.counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
        assert_eq!(counts, [2, 2, 0, 1]);
        assert_eq!(h.count(), 5);
        assert_eq!(
            h.sum(),
            Duration::from_micros(1_000 + 1_001 + 500_000 + 3_000_000)
        );
    }

    /// Not a test: the cost of one observation, printed (docs/performance.md). Ignored
    /// unless asked for: `cargo test --release --lib observe_cost -- --ignored --nocapture`.
    #[ignore = "a benchmark: run it with --ignored --nocapture, in release mode"]
    #[test]
    fn observe_cost() {
        const OBSERVATIONS: u64 = 20_000_000;
        let h = DurationHistogram::new(&crate::metrics::INTERVAL_BUCKETS);
        for threads in [1, 2] {
            let start = std::time::Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| {
                        for i in 0..OBSERVATIONS {
                            // Around one second, as for clients beating every second.
                            h.observe(Duration::from_micros(900_000 + i % 200_000));
                        }
                    });
                }
            });
            let each = start.elapsed().as_nanos() as f64 / OBSERVATIONS as f64;
            println!("{threads} thread(s) observing at once: {each:.1} ns per observation");
        }
        assert_eq!(h.count(), 3 * OBSERVATIONS);
    }

    #[test]
    fn a_huge_duration_saturates_instead_of_wrapping() {
        let h = DurationHistogram::new(&[1.0]);
        h.observe(Duration::MAX);
        assert_eq!(h.count(), 1);
        assert_eq!(h.0.counts[1].load(Ordering::Relaxed), 1);
    }
}
