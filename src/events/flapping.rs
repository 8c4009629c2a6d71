//! Flap damping: a client that keeps going offline and online is announced once, as
//! `flapping`, instead of at every transition; once it has been quiet for a window, as
//! `stable`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Deserialize;

use super::event::Event;
use crate::clock::{self, Instant};
use crate::protocol::Proj;
use crate::supervision::ClientState;

/// `[flap]`: flap damping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlapConfig {
    /// Offline/online transitions of one client within `window` that make it flapping; 0 turns
    /// flap damping off.
    pub transitions: u32,
    /// The window; also how long a flapping client must be quiet to be stable again.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

/// What flap damping says about one event.
#[derive(Debug, Default)]
pub(crate) struct Damped {
    /// Record it but do not announce it.
    pub muted: bool,
    /// Announce this after it (the client just started flapping).
    pub then: Option<Event>,
}

/// The recent transitions of the clients that had one within the window.
///
/// Memory: one entry per client with a transition in the last `flap.window` (about 100 bytes
/// and one timeline slot per transition), dropped once the window has passed.
pub(crate) struct FlapTracker {
    transitions: usize,
    window: Duration,
    projs: HashMap<Proj, Flap>,
    /// Every transition, oldest first, with its client: what to look at as windows close.
    timeline: VecDeque<(Instant, Proj)>,
    /// The origin of the millisecond offsets in [`Flap::times`].
    base: Instant,
    /// Clients flapping now.
    flapping: usize,
}

struct Flap {
    /// The last `transitions` transitions, in milliseconds after the tracker's base.
    times: VecDeque<u32>,
    flapping: bool,
    /// Transitions recorded but not announced while flapping.
    suppressed: u64,
    /// Its state after its last event.
    state: ClientState,
    /// Its last transition.
    last: Instant,
}

impl FlapTracker {
    /// `None` when flap damping is off.
    pub(crate) fn new(config: &FlapConfig) -> Option<Self> {
        (config.transitions > 0).then(|| Self {
            transitions: config.transitions as usize,
            window: config.window,
            projs: HashMap::new(),
            timeline: VecDeque::new(),
            base: clock::now(),
            flapping: 0,
        })
    }

    /// Whether `proj` is flapping now.
    pub(crate) fn is_flapping(&self, proj: &Proj) -> bool {
        self.projs.get(proj).is_some_and(|f| f.flapping)
    }

    /// Whether no client is flapping.
    pub(crate) fn none_flapping(&self) -> bool {
        self.flapping == 0
    }

    fn offset(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u32::MAX)
    }

    /// Takes note of `event`, seen `now`.
    pub(crate) fn observe(&mut self, event: &Event, now: Instant) -> Damped {
        let (proj, transition, state) = match event {
            Event::Online {
                proj, recovered, ..
            } => (proj, !recovered, ClientState::Online),
            Event::Offline { proj, .. } => (proj, true, ClientState::Offline),
            Event::Late { proj, .. } => (proj, false, ClientState::Late),
            // An operator's doing: always announced, never counted.
            Event::Paused { proj, .. } => {
                self.set_state(proj, ClientState::Paused);
                return Damped::default();
            }
            Event::Resumed { proj, .. } => {
                self.set_state(proj, ClientState::Online);
                return Damped::default();
            }
            _ => return Damped::default(),
        };
        if !transition {
            // A late client and its recovery: not a transition, but noise while flapping.
            let flapping = self.is_flapping(proj);
            self.set_state(proj, state);
            return Damped {
                muted: flapping,
                then: None,
            };
        }
        let at = self.offset(now);
        let window_ms = u32::try_from(self.window.as_millis()).unwrap_or(u32::MAX);
        let capacity = self.transitions;
        let flap = self.projs.entry(proj.clone()).or_insert_with(|| Flap {
            times: VecDeque::with_capacity(capacity),
            flapping: false,
            suppressed: 0,
            state,
            last: now,
        });
        while flap
            .times
            .front()
            .is_some_and(|&t| at.saturating_sub(t) >= window_ms)
        {
            flap.times.pop_front();
        }
        if flap.times.len() == capacity {
            flap.times.pop_front();
        }
        flap.times.push_back(at);
        flap.last = now;
        flap.state = state;
        self.timeline.push_back((now, proj.clone()));
        if flap.flapping {
            flap.suppressed += 1;
            return Damped {
                muted: true,
                then: None,
            };
        }
        if flap.times.len() < capacity {
            return Damped::default();
        }
        flap.flapping = true;
        self.flapping += 1;
        Damped {
            muted: false,
            then: Some(Event::Flapping {
                proj: proj.clone(),
                transitions: capacity as u32,
                window_ms: clock::millis(self.window),
                at: clock::wall_now(),
            }),
        }
    }

    fn set_state(&mut self, proj: &Proj, state: ClientState) {
        if let Some(flap) = self.projs.get_mut(proj) {
            flap.state = state;
        }
    }

    /// When [`Self::tick`] has something to do next.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.timeline.front().map(|(at, _)| *at + self.window)
    }

    /// Forgets the clients quiet for a window, and says `stable` for those that flapped.
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Vec<Event>) {
        while let Some((at, _)) = self.timeline.front() {
            if *at + self.window > now {
                break;
            }
            let Some((_, proj)) = self.timeline.pop_front() else {
                break;
            };
            let quiet = self
                .projs
                .get(&proj)
                .is_some_and(|f| f.last + self.window <= now);
            if !quiet {
                // It had a later transition: a later slot of the timeline covers it.
                continue;
            }
            if let Some(flap) = self.projs.remove(&proj) {
                if flap.flapping {
                    self.flapping -= 1;
                    out.push(Event::Stable {
                        proj,
                        state: flap.state,
                        suppressed: flap.suppressed,
                        at: clock::wall_now(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OfflineReason;

    const S: Duration = Duration::from_secs(1);

    fn online(p: &str) -> Event {
        Event::Online {
            proj: Proj::new(p).unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
            at: clock::wall_now(),
            recovered: false,
            outage: None,
        }
    }

    fn offline(p: &str) -> Event {
        Event::Offline {
            proj: Proj::new(p).unwrap(),
            reason: OfflineReason::Timeout,
            addr: "127.0.0.1:1".parse().unwrap(),
            last_seen: clock::wall_now(),
            at: clock::wall_now(),
            evidence: None,
            outage: None,
        }
    }

    fn tracker() -> FlapTracker {
        FlapTracker::new(&FlapConfig {
            transitions: 5,
            window: 600 * S,
        })
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn five_transitions_in_a_window_flap_and_a_quiet_window_is_stable() {
        let mut t = tracker();
        let start = clock::now();
        let events = [
            online("P"),
            offline("P"),
            online("P"),
            offline("P"),
            online("P"),
        ];
        for (i, e) in events.iter().enumerate() {
            let d = t.observe(e, start + (i as u32) * 10 * S);
            assert!(!d.muted);
            assert_eq!(d.then.is_some(), i == 4, "flapping at the fifth");
        }
        assert!(t.is_flapping(&Proj::new("P").unwrap()));
        // Further transitions are muted; the stable check waits for the last one.
        assert!(t.observe(&offline("P"), start + 100 * S).muted);
        assert!(t.observe(&online("P"), start + 200 * S).muted);
        let mut out = Vec::new();
        t.tick(start + 799 * S, &mut out);
        assert!(out.is_empty());
        t.tick(start + 800 * S, &mut out);
        match out.as_slice() {
            [Event::Stable {
                state, suppressed, ..
            }] => assert_eq!((*state, *suppressed), (ClientState::Online, 2)),
            other => panic!("{other:?}"),
        }
        assert!(!t.is_flapping(&Proj::new("P").unwrap()));
        assert_eq!(t.next_due(), None, "everything forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn transitions_spread_wider_than_the_window_never_flap() {
        let mut t = tracker();
        let start = clock::now();
        for i in 0..20u32 {
            let e = if i % 2 == 0 {
                online("P")
            } else {
                offline("P")
            };
            let d = t.observe(&e, start + i * 200 * S);
            assert!(!d.muted && d.then.is_none(), "transition {i}");
            let mut out = Vec::new();
            t.tick(start + i * 200 * S, &mut out);
            assert!(out.is_empty());
        }
    }
}
