//! Which watchdog timeout a client gets.

use std::time::Duration;

/// The default timeout and the bounds a client's own `timeout_ms` is clamped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutPolicy {
    /// For a client that never asked for its own.
    pub default: Duration,
    /// The shortest a client may ask for.
    pub min: Duration,
    /// The longest a client may ask for.
    pub max: Duration,
}

impl TimeoutPolicy {
    /// The timeout a client gets when it asks for `requested_ms` (clamped into `min..=max`).
    pub fn clamp_ms(&self, requested_ms: u64) -> Duration {
        Duration::from_millis(requested_ms).clamp(self.min, self.max)
    }
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        Self {
            default: Duration::from_secs(20),
            min: Duration::from_millis(100),
            max: Duration::from_secs(24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_into_bounds() {
        let p = TimeoutPolicy::default();
        assert_eq!(p.clamp_ms(1), Duration::from_millis(100));
        assert_eq!(p.clamp_ms(1500), Duration::from_millis(1500));
        assert_eq!(p.clamp_ms(u64::MAX), Duration::from_secs(24 * 3600));
    }
}
