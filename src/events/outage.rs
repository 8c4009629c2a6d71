//! Correlated outages: when many clients go offline together, one `outage` event (and one
//! `outage_end`) instead of a storm.
//!
//! # Why a stage of the pipeline, and not a sink that holds webhooks back
//! Grouping has to see every offline in order and tag the ones that belong to an outage; the
//! log, the event stream and the webhooks then all read the same tagged events. A stage
//! between the registry and the sinks does exactly that, with no timer on the way of an event:
//! nothing is delayed. Holding each offline back until `outage.window` has passed (to know
//! whether an outage will form) would spare webhook receivers the offlines that come before
//! the outage is recognised, but would delay every offline webhook by the window, outage or
//! not; the offlines before recognition are at most the threshold's worth, and each outage
//! event names how many there were.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::event::{Event, OfflineReason};
use crate::clock::{self, Instant};
use crate::protocol::Proj;

/// Clients named in an `outage` event at most.
pub const OUTAGE_PROJS: usize = 100;

/// Fraction of an outage's clients that must be back for it to end.
const BACK_TO_END: f64 = 0.8;

/// `[outage]`: grouping of correlated offlines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageConfig {
    /// Clients that must time out within `window` for an outage; 0 turns grouping off.
    pub min_clients: usize,
    /// ...and the fraction of the online clients they must be.
    pub ratio: f64,
    /// The window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// An outage ends when 80% of its clients are back, or after this long.
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
    /// What webhooks get: `grouped` (the outage events instead of its members' offlines and
    /// onlines) or `each` (every event, the outage events too).
    pub webhooks: OutageWebhooks,
}

/// What webhooks get during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageWebhooks {
    /// `outage` and `outage_end`, not the offlines and onlines that carry an outage id.
    #[default]
    Grouped,
    /// Every event.
    Each,
}

/// What outage grouping says about one event.
#[derive(Debug, Default)]
pub(crate) struct Grouped {
    /// Announce this first (the outage this event completes).
    pub before: Option<Event>,
    /// Tag the event with this outage.
    pub outage: Option<u64>,
    /// Announce this after it (the outage this event ends).
    pub after: Option<Event>,
}

/// Watches offlines for outages. One outage at a time: while one is open, every client that
/// times out joins it.
pub(crate) struct OutageTracker {
    min_clients: usize,
    ratio: f64,
    window: Duration,
    max_duration: Duration,
    /// Clients online, as announced (recovered ones included).
    online: usize,
    /// Timeouts within the window, oldest first, while no outage is open.
    recent: VecDeque<(Instant, SystemTime, Proj)>,
    open: Option<Open>,
}

struct Open {
    id: u64,
    started_at: SystemTime,
    since: Instant,
    /// Its clients, and whether each is back.
    members: HashMap<Proj, bool>,
    back: usize,
}

impl OutageTracker {
    /// `None` when grouping is off. `online` is how many clients are online at start (those
    /// recovered from the event log).
    pub(crate) fn new(config: &OutageConfig, online: usize) -> Option<Self> {
        (config.min_clients > 0).then(|| Self {
            min_clients: config.min_clients,
            ratio: config.ratio,
            window: config.window,
            max_duration: config.max_duration,
            online,
            recent: VecDeque::new(),
            open: None,
        })
    }

    /// Takes note of `event`, seen `now`; `next_id` is the id the first event announced for it
    /// gets (the outage's id, if this event completes one).
    pub(crate) fn observe(&mut self, event: &Event, now: Instant, next_id: u64) -> Grouped {
        match event {
            Event::Online {
                proj,
                recovered: false,
                ..
            } => {
                self.online += 1;
                self.back(proj)
            }
            Event::Offline {
                proj, reason, at, ..
            } => {
                self.online = self.online.saturating_sub(1);
                match reason {
                    OfflineReason::Timeout | OfflineReason::TimeoutAfterRestart => {
                        self.timed_out(proj, *at, now, next_id)
                    }
                    // It said it leaves: nothing went wrong.
                    OfflineReason::Offline => Grouped::default(),
                }
            }
            _ => Grouped::default(),
        }
    }

    fn back(&mut self, proj: &Proj) -> Grouped {
        let Some(open) = self.open.as_mut() else {
            return Grouped::default();
        };
        let Some(back) = open.members.get_mut(proj) else {
            return Grouped::default();
        };
        let mut grouped = Grouped {
            outage: Some(open.id),
            ..Grouped::default()
        };
        if !*back {
            *back = true;
            open.back += 1;
        }
        if open.back as f64 >= BACK_TO_END * open.members.len() as f64 {
            grouped.after = self.close();
        }
        grouped
    }

    fn timed_out(&mut self, proj: &Proj, at: SystemTime, now: Instant, next_id: u64) -> Grouped {
        if let Some(open) = self.open.as_mut() {
            // A member that was back and times out again is down again.
            if let Some(true) = open.members.insert(proj.clone(), false) {
                open.back -= 1;
            }
            return Grouped {
                outage: Some(open.id),
                ..Grouped::default()
            };
        }
        while self
            .recent
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back((now, at, proj.clone()));
        let down = self.recent.len();
        if down < self.min_clients || (down as f64) < self.ratio * (self.online + down) as f64 {
            return Grouped::default();
        }
        let started_at = self.recent.front().map_or(at, |(_, t, _)| *t);
        let mut members = HashMap::with_capacity(down);
        let mut projs = Vec::with_capacity(down.min(OUTAGE_PROJS));
        for (_, _, p) in self.recent.drain(..) {
            if members.insert(p.clone(), false).is_none() && projs.len() < OUTAGE_PROJS {
                projs.push(p);
            }
        }
        let count = members.len() as u64;
        self.open = Some(Open {
            id: next_id,
            started_at,
            since: now,
            members,
            back: 0,
        });
        Grouped {
            before: Some(Event::Outage {
                id: next_id,
                count,
                projs,
                started_at,
                at: clock::wall_now(),
            }),
            outage: Some(next_id),
            after: None,
        }
    }

    fn close(&mut self) -> Option<Event> {
        let open = self.open.take()?;
        Some(Event::OutageEnd {
            id: open.id,
            count: open.members.len() as u64,
            recovered: open.back as u64,
            started_at: open.started_at,
            at: clock::wall_now(),
        })
    }

    /// When [`Self::tick`] has something to do next.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.open.as_ref().map(|o| o.since + self.max_duration)
    }

    /// Ends an outage open for `outage.max_duration`.
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Vec<Event>) {
        if self.next_due().is_some_and(|due| due <= now) {
            out.extend(self.close());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proj(i: usize) -> Proj {
        Proj::new(&format!("P-{i}")).unwrap()
    }

    fn offline(i: usize) -> Event {
        Event::test_offline(proj(i).as_str(), clock::wall_now(), clock::wall_now())
    }

    fn online(i: usize) -> Event {
        Event::test_online(proj(i).as_str(), clock::wall_now())
    }

    fn config() -> OutageConfig {
        OutageConfig {
            min_clients: 10,
            ratio: 0.2,
            window: Duration::from_secs(5),
            max_duration: Duration::from_secs(3600),
            webhooks: OutageWebhooks::Grouped,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ten_timeouts_within_the_window_are_an_outage_that_ends_when_most_are_back() {
        let mut t = OutageTracker::new(&config(), 0).unwrap();
        let now = clock::now();
        for i in 0..30 {
            t.observe(&online(i), now, 0);
        }
        for i in 0..9 {
            let g = t.observe(&offline(i), now + Duration::from_millis(100 * i as u64), 0);
            assert!(g.before.is_none() && g.outage.is_none(), "{i}");
        }
        let g = t.observe(&offline(9), now + Duration::from_secs(1), 77);
        match g.before {
            Some(Event::Outage {
                id, count, projs, ..
            }) => {
                assert_eq!((id, count, projs.len()), (77, 10, 10));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(g.outage, Some(77));
        // Later timeouts join it.
        assert_eq!(
            t.observe(&offline(10), now + Duration::from_secs(2), 90)
                .outage,
            Some(77)
        );
        // 11 members: 9 back (80%) end it.
        for i in 0..8 {
            let g = t.observe(&online(i), now + Duration::from_secs(3), 0);
            assert_eq!((g.outage, g.after.is_some()), (Some(77), false), "{i}");
        }
        let g = t.observe(&online(8), now + Duration::from_secs(3), 0);
        match g.after {
            Some(Event::OutageEnd {
                id,
                count,
                recovered,
                ..
            }) => {
                assert_eq!((id, count, recovered), (77, 11, 9));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn too_few_or_too_spread_out_is_no_outage_and_the_ratio_counts() {
        let now = clock::now();
        // 10 of 100 online: 10% < 20%.
        let mut t = OutageTracker::new(&config(), 100).unwrap();
        for i in 0..10 {
            assert!(t.observe(&offline(i), now, 0).before.is_none());
        }
        // 10 of 10, but 6 s apart from the first: never 10 within 5 s.
        let mut t = OutageTracker::new(&config(), 10).unwrap();
        for i in 0..10 {
            let at = now + Duration::from_millis(600 * i as u64);
            assert!(t.observe(&offline(i), at, 0).before.is_none(), "{i}");
        }
        // An explicit offline is no outage.
        let mut t = OutageTracker::new(&config(), 10).unwrap();
        for i in 0..10 {
            let Event::Offline {
                proj,
                addr,
                last_seen,
                at,
                ..
            } = offline(i)
            else {
                unreachable!()
            };
            let leave = Event::Offline {
                proj,
                reason: OfflineReason::Offline,
                addr,
                last_seen,
                at,
                evidence: None,
                outage: None,
            };
            assert!(t.observe(&leave, now, 0).before.is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_ends_after_its_max_duration() {
        let mut t = OutageTracker::new(&config(), 10).unwrap();
        let now = clock::now();
        for i in 0..10 {
            t.observe(&offline(i), now, 5);
        }
        let mut out = Vec::new();
        t.tick(now + Duration::from_secs(3599), &mut out);
        assert!(out.is_empty());
        t.tick(now + Duration::from_secs(3600), &mut out);
        assert!(matches!(
            out.as_slice(),
            [Event::OutageEnd {
                id: 5,
                count: 10,
                recovered: 0,
                ..
            }]
        ));
    }
}
