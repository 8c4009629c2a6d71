//! The per-connection frame rate limit (`session.max_frame_rate`, `session.frame_burst`).

use crate::clock::Instant;
use crate::config::SessionConfig;

/// A token bucket: `frame_burst` frames at once, refilled at `max_frame_rate` per second.
/// No timer: the refill is computed from the time of each frame.
#[derive(Debug)]
pub(crate) struct FrameBudget {
    tokens: f64,
    refilled: Instant,
}

impl FrameBudget {
    /// A full bucket at `now`.
    pub(crate) fn full(config: &SessionConfig, now: Instant) -> Self {
        Self {
            tokens: f64::from(config.frame_burst),
            refilled: now,
        }
    }

    /// Takes one frame's token at `now`; false if none is left (the frame is over budget).
    pub(crate) fn take(&mut self, config: &SessionConfig, now: Instant) -> bool {
        if config.max_frame_rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * f64::from(config.max_frame_rate))
            .min(f64::from(config.frame_burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(rate: u32, burst: u32) -> SessionConfig {
        SessionConfig {
            max_frame_rate: rate,
            frame_burst: burst,
            ..SessionConfig::default()
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let config = config(10, 5);
        let t0 = Instant::now();
        let mut budget = FrameBudget::full(&config, t0);
        let passed = (0..20).filter(|_| budget.take(&config, t0)).count();
        assert_eq!(passed, 5, "the burst, and not one more at the same instant");
        // 10 frames a second: one token every 100 ms.
        assert!(!budget.take(&config, t0 + Duration::from_millis(99)));
        // 200 ms after the burst, two tokens have come (the refused frame took none).
        let at = t0 + Duration::from_millis(200);
        assert!(budget.take(&config, at));
        assert!(budget.take(&config, at));
        assert!(!budget.take(&config, at));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        let passed = (0..20).filter(|_| budget.take(&config, later)).count();
        assert_eq!(passed, 5);
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let config = config(0, 1);
        let t0 = Instant::now();
        let mut budget = FrameBudget::full(&config, t0);
        assert!((0..10_000).all(|_| budget.take(&config, t0)));
    }
}
