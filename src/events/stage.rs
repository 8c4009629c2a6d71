//! What stands between the registry and the sinks: flap damping and outage grouping, which
//! decide how a transition is announced (muted, tagged with an outage, preceded or followed by
//! an event of their own), never whether it happened.

use super::event::Event;
use super::flapping::{FlapConfig, FlapTracker};
use super::outage::{OutageConfig, OutageTracker};
use crate::clock::Instant;
use crate::protocol::Proj;

/// One event to number and hand to the sinks.
#[derive(Debug)]
pub(crate) struct Staged {
    pub event: Event,
    /// Recorded but not announced (see [`super::Published::muted`]).
    pub muted: bool,
    /// Whether this is the event the registry published (not one the stage added).
    pub original: bool,
}

/// Flap damping and outage grouping, each off unless configured.
#[derive(Default)]
pub(crate) struct Stage {
    flap: Option<FlapTracker>,
    outage: Option<OutageTracker>,
}

impl Stage {
    /// `online`: the clients online at start (recovered from the event log).
    pub(crate) fn new(flap: &FlapConfig, outage: &OutageConfig, online: usize) -> Self {
        Self {
            flap: FlapTracker::new(flap),
            outage: OutageTracker::new(outage, online),
        }
    }

    /// Whether the stage does anything.
    pub(crate) fn is_active(&self) -> bool {
        self.flap.is_some() || self.outage.is_some()
    }

    /// What to announce for `event`, in order. `next_id` is the id the first of them gets.
    pub(crate) fn process(&mut self, mut event: Event, next_id: u64, now: Instant) -> Vec<Staged> {
        let damped = self
            .flap
            .as_mut()
            .map(|f| f.observe(&event, now))
            .unwrap_or_default();
        let grouped = self
            .outage
            .as_mut()
            .map(|o| o.observe(&event, now, next_id))
            .unwrap_or_default();
        if let Some(id) = grouped.outage {
            match &mut event {
                Event::Online { outage, .. } | Event::Offline { outage, .. } => *outage = Some(id),
                _ => {}
            }
        }
        let added = |event| Staged {
            event,
            muted: false,
            original: false,
        };
        let mut out = Vec::with_capacity(1);
        out.extend(grouped.before.map(added));
        out.push(Staged {
            event,
            muted: damped.muted,
            original: true,
        });
        out.extend(damped.then.map(added));
        out.extend(grouped.after.map(added));
        out
    }

    /// The events due by `now` (a flapping client that became stable, an outage that ran out).
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(flap) = self.flap.as_mut() {
            flap.tick(now, &mut out);
        }
        if let Some(outage) = self.outage.as_mut() {
            outage.tick(now, &mut out);
        }
        out
    }

    /// When [`Self::tick`] has something to do next.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let flap = self.flap.as_ref().and_then(FlapTracker::next_due);
        let outage = self.outage.as_ref().and_then(OutageTracker::next_due);
        flap.into_iter().chain(outage).min()
    }

    /// Whether `proj` is flapping.
    pub(crate) fn is_flapping(&self, proj: &Proj) -> bool {
        self.flap.as_ref().is_some_and(|f| f.is_flapping(proj))
    }

    /// Whether no client is flapping (a fast path for listings).
    pub(crate) fn none_flapping(&self) -> bool {
        self.flap.as_ref().is_none_or(FlapTracker::none_flapping)
    }
}
