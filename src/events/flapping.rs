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
/// Clients are known by a 64-bit hash of their proj (two projs with the same hash would share
/// one count: with a million clients, a chance of one in 10^7). Memory, per client with a
/// transition within the last `flap.window`: about 40 bytes while its only one is its coming
/// online (the common case: a fleet starting), about 150 once it has more; forgotten once the
/// window has passed.
pub(crate) struct FlapTracker {
    transitions: usize,
    window_ms: u32,
    window: Duration,
    hasher: std::hash::RandomState,
    /// Clients whose only transition within the window is their coming online, and when.
    fresh: HashMap<u64, u32>,
    /// Clients with more transitions within the window.
    projs: HashMap<u64, Flap>,
    /// Every transition, oldest first, with its client: what to look at as windows close.
    timeline: VecDeque<(u32, u64)>,
    /// The origin of the millisecond offsets.
    base: Instant,
    /// Clients flapping now.
    flapping: usize,
}

struct Flap {
    proj: Proj,
    /// The last `transitions` transitions, in milliseconds after the tracker's base.
    times: VecDeque<u32>,
    flapping: bool,
    /// Its state after its last event.
    state: ClientState,
    /// Transitions recorded but not announced while flapping.
    suppressed: u64,
}

impl Flap {
    fn last(&self) -> u32 {
        self.times.back().copied().unwrap_or(0)
    }
}

impl FlapTracker {
    /// `None` when flap damping is off.
    pub(crate) fn new(config: &FlapConfig) -> Option<Self> {
        (config.transitions > 0).then(|| Self {
            transitions: config.transitions as usize,
            window_ms: u32::try_from(config.window.as_millis()).unwrap_or(u32::MAX),
            window: config.window,
            hasher: std::hash::RandomState::new(),
            fresh: HashMap::new(),
            projs: HashMap::new(),
            timeline: VecDeque::new(),
            base: clock::now(),
            flapping: 0,
        })
    }

    fn key(&self, proj: &Proj) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(proj.as_str())
    }

    /// Whether `proj` is flapping now.
    pub(crate) fn is_flapping(&self, proj: &Proj) -> bool {
        self.flapping > 0 && self.projs.get(&self.key(proj)).is_some_and(|f| f.flapping)
    }

    /// Whether no client is flapping.
    pub(crate) fn none_flapping(&self) -> bool {
        self.flapping == 0
    }

    fn offset(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u32::MAX)
    }

    /// Whether the last transition seen of `proj` (within the window) brought it online.
    fn is_online(&self, proj: &Proj) -> bool {
        let key = self.key(proj);
        self.fresh.contains_key(&key)
            || self
                .projs
                .get(&key)
                .is_some_and(|f| f.state != ClientState::Offline)
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
        // An `online` for a client this tracker knows to be online already is not a
        // transition: in cluster mode a client that beats on two nodes is claimed back and
        // forth, each node announcing its claim as `online` (Redis turns it into a move, no
        // event) with no `offline` in between.
        let transition = transition && !(state == ClientState::Online && self.is_online(proj));
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
        let key = self.key(proj);
        self.timeline.push_back((at, key));
        let window_ms = self.window_ms;
        let capacity = self.transitions;
        if !self.projs.contains_key(&key) {
            // Its coming online, if that was its one transition within the window.
            let first = self.fresh.remove(&key);
            if state == ClientState::Online && first.is_none() {
                // Its first transition within the window: remembered in a few bytes.
                self.fresh.insert(key, at);
                return Damped::default();
            }
            let mut flap = Flap::new(proj.clone(), capacity, state);
            flap.times.extend(first);
            self.projs.insert(key, flap);
        }
        let Some(flap) = self.projs.get_mut(&key) else {
            return Damped::default();
        };
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
        flap.state = state;
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
        let key = self.key(proj);
        if let Some(flap) = self.projs.get_mut(&key) {
            flap.state = state;
        }
    }

    /// When [`Self::tick`] has something to do next.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.timeline
            .front()
            .map(|(at, _)| self.base + Duration::from_millis(u64::from(*at)) + self.window)
    }

    /// Forgets the clients quiet for a window, and says `stable` for those that flapped.
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Vec<Event>) {
        let now = self.offset(now);
        while let Some((at, _)) = self.timeline.front() {
            if now.saturating_sub(*at) < self.window_ms {
                break;
            }
            let Some((at, key)) = self.timeline.pop_front() else {
                break;
            };
            if self.fresh.get(&key) == Some(&at) {
                self.fresh.remove(&key);
                continue;
            }
            let quiet = self
                .projs
                .get(&key)
                .is_some_and(|f| now.saturating_sub(f.last()) >= self.window_ms);
            if !quiet {
                // It had a later transition: a later slot of the timeline covers it.
                continue;
            }
            if let Some(flap) = self.projs.remove(&key) {
                if flap.flapping {
                    self.flapping -= 1;
                    out.push(Event::Stable {
                        proj: flap.proj,
                        state: flap.state,
                        suppressed: flap.suppressed,
                        at: clock::wall_now(),
                    });
                }
            }
        }
    }
}

impl Flap {
    fn new(proj: Proj, capacity: usize, state: ClientState) -> Self {
        Self {
            proj,
            times: VecDeque::with_capacity(capacity),
            flapping: false,
            state,
            suppressed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn online(p: &str) -> Event {
        Event::test_online(p, clock::wall_now())
    }

    fn offline(p: &str) -> Event {
        Event::test_offline(p, clock::wall_now(), clock::wall_now())
    }

    fn tracker() -> FlapTracker {
        FlapTracker::new(&FlapConfig {
            transitions: 5,
            window: 600 * S,
        })
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_online_without_an_offline_before_it_is_not_a_transition() {
        // Cluster mode: a client beating on two nodes is claimed back and forth, and each
        // claim is announced locally as `online`.
        let mut t = tracker();
        let start = clock::now();
        for i in 0..20u32 {
            let d = t.observe(&online("P"), start + i * S);
            assert!(!d.muted && d.then.is_none(), "the {i}th online");
        }
        assert!(!t.is_flapping(&Proj::new("P").unwrap()));
        // Its real transitions still count, the first online included.
        for (i, e) in [offline("P"), online("P"), offline("P"), online("P")]
            .iter()
            .enumerate()
        {
            let d = t.observe(e, start + (30 + i as u32) * S);
            assert_eq!(d.then.is_some(), i == 3, "flapping at the fifth transition");
        }
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
