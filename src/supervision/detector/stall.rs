//! Noticing that the server itself stopped running for a while, and deferring verdicts until
//! it has caught up.
//!
//! When heartwatch is stopped (SIGSTOP, a VM pause, a swap storm, CPU starvation), every
//! watchdog due in the meantime fires at once when it runs again, while the heartbeats its
//! clients sent meanwhile still sit unread in the socket buffers: without care, a storm of
//! false offlines. A stall shows as a timer firing late: the watchdogs themselves (each checks
//! its own lateness) and a ticker of the server's own (which also notices a wall-clock jump
//! against the monotonic clock: a suspend, or a clock step). Either opens a grace period in
//! which every verdict due is deferred to its end, long enough for the buffered heartbeats to
//! be read; a client still silent after it is judged then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Instant};
use crate::metrics::Metrics;

/// What showed the stall.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stall {
    /// A timer fired this late.
    Late(Duration),
    /// The wall clock moved this many milliseconds more (or, negative, less) than the
    /// monotonic clock.
    ClockJump(i64),
}

/// The server's knowledge of its own stalls, shared by every watchdog (atomics only: it is
/// read on every timer firing and every heartbeat).
pub(crate) struct StallGuard {
    /// The origin of the microseconds below.
    base: Instant,
    /// A timer later than this is a stall; zero turns stall detection off.
    threshold: Duration,
    grace: Duration,
    /// End of the grace period, in microseconds after `base` (0: none yet).
    grace_until_us: AtomicU64,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for StallGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallGuard")
            .field("threshold", &self.threshold)
            .field("grace", &self.grace)
            .field("grace_until_us", &self.grace_until_us)
            .finish_non_exhaustive()
    }
}

impl StallGuard {
    pub(crate) fn new(threshold: Duration, grace: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            base: clock::now(),
            threshold,
            grace,
            grace_until_us: AtomicU64::new(0),
            metrics,
        }
    }

    /// A guard that never defers (stall detection off).
    #[cfg(test)]
    pub(crate) fn off(metrics: Arc<Metrics>) -> Self {
        Self::new(Duration::ZERO, Duration::ZERO, metrics)
    }

    /// `at` in milliseconds after the guard's origin: a moment in 8 bytes, for timers.
    pub(crate) fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// The moment `ms` milliseconds after the guard's origin.
    pub(crate) fn instant(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    fn grace_until(&self) -> Instant {
        self.base + Duration::from_micros(self.grace_until_us.load(Ordering::Acquire))
    }

    /// Whether verdicts are deferred now.
    pub(crate) fn in_grace(&self, now: Instant) -> bool {
        self.micros(now) < self.grace_until_us.load(Ordering::Acquire)
    }

    /// A verdict timer meant for `due` fired `now`: the moment to defer it to, if the server
    /// stalled (this timer is late by more than the threshold, or another stall's grace
    /// period is still running), or `None` to judge now.
    pub(crate) fn defer(&self, now: Instant, due: Instant) -> Option<Instant> {
        if self.threshold.is_zero() {
            return None;
        }
        let late = now.saturating_duration_since(due);
        if late > self.threshold {
            self.stalled(now, Stall::Late(late));
        }
        self.in_grace(now).then(|| self.grace_until())
    }

    /// Records a stall seen `now`: opens (or extends) the grace period, and counts and logs
    /// the stall if it is a new one.
    pub(crate) fn stalled(&self, now: Instant, stall: Stall) {
        if self.threshold.is_zero() {
            return;
        }
        let now_us = self.micros(now);
        let until =
            now_us.saturating_add(u64::try_from(self.grace.as_micros()).unwrap_or(u64::MAX));
        let before = self.grace_until_us.fetch_max(until, Ordering::AcqRel);
        if before > now_us {
            // The same stall, seen by another timer.
            return;
        }
        self.metrics.stall();
        let grace = humantime::format_duration(self.grace);
        match stall {
            Stall::Late(late) => log::warn!(
                "heartwatch itself stalled: a timer fired {:.3}s late (the process was stopped, \
                 starved of CPU, or swapping); offline and late verdicts are deferred for {grace} \
                 so that the heartbeats that arrived meanwhile are read first",
                late.as_secs_f64()
            ),
            Stall::ClockJump(ms) => log::warn!(
                "the wall clock jumped {:+.3}s against the monotonic clock (a suspend, or a \
                 clock step); offline and late verdicts are deferred for {grace}",
                ms as f64 / 1000.0
            ),
        }
    }
}

/// Watches the server's own timing until its task is dropped: a tick every half threshold
/// that notices its own lateness and wall-clock jumps. Watchdogs check their own lateness
/// too (a stall ends on every thread at once, and whichever timer runs first notices it);
/// this ticker also sees stalls when no watchdog is due, and the clock jumps watchdogs
/// cannot see.
pub(crate) async fn watch(guard: Arc<StallGuard>) {
    if guard.threshold.is_zero() {
        return;
    }
    let period = (guard.threshold / 2).max(Duration::from_millis(10));
    let threshold_ms = i64::try_from(guard.threshold.as_millis()).unwrap_or(i64::MAX);
    let mut mono = clock::now();
    let mut wall = clock::wall_now();
    loop {
        let due = mono + period;
        tokio::time::sleep_until(due).await;
        let now = clock::now();
        let wall_now = clock::wall_now();
        let late = now.saturating_duration_since(due);
        if late > guard.threshold {
            guard.stalled(now, Stall::Late(late));
        }
        let mono_ms = millis_i64(now.saturating_duration_since(mono));
        let wall_ms = match wall_now.duration_since(wall) {
            Ok(d) => millis_i64(d),
            Err(e) => -millis_i64(e.duration()),
        };
        let drift = wall_ms - mono_ms;
        if drift.abs() > threshold_ms {
            guard.stalled(now, Stall::ClockJump(drift));
        }
        mono = now;
        wall = wall_now;
    }
}

fn millis_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_late_timer_opens_one_grace_period_and_is_counted_once() {
        let metrics = Arc::new(Metrics::new());
        let guard = StallGuard::new(500 * MS, 2000 * MS, metrics.clone());
        let start = clock::now();
        // On time, or late by less than the threshold: no stall.
        assert_eq!(guard.defer(start + 400 * MS, start), None);
        assert_eq!(metrics.stalls(), 0);
        // 3 s late: deferred to 2 s after now.
        let now = start + 3000 * MS;
        assert_eq!(guard.defer(now, start), Some(now + 2000 * MS));
        // Another late timer of the same stall: not counted again, and the grace period runs
        // from the latest late firing.
        let end = now + 2001 * MS;
        assert_eq!(guard.defer(now + MS, start + 100 * MS), Some(end));
        // A timer due inside the grace period, on time, is deferred too.
        assert_eq!(guard.defer(now + 1000 * MS, now + 1000 * MS), Some(end));
        assert_eq!(metrics.stalls(), 1);
        assert!(guard.in_grace(end - MS));
        assert!(!guard.in_grace(end));
        assert_eq!(guard.defer(end, end), None);
        // A later stall is a new one.
        let later = now + 10_000 * MS;
        assert!(guard.defer(later, later - 700 * MS).is_some());
        assert_eq!(metrics.stalls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_threshold_turns_it_off() {
        let metrics = Arc::new(Metrics::new());
        let guard = StallGuard::off(metrics.clone());
        let start = clock::now();
        assert_eq!(guard.defer(start + 60_000 * MS, start), None);
        guard.stalled(start, Stall::ClockJump(10_000));
        assert!(!guard.in_grace(start));
        assert_eq!(metrics.stalls(), 0);
    }
}
