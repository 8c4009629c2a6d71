//! Peer liveness by renewal counters: who to declare dead, whose clients to take over.
//!
//! Each node increments its own counter in `{p}:hb` every `renew_interval` and reads everyone
//! else's in the same script. A peer whose counter has not moved for `dead_rounds` of *this
//! node's own successful* renewals is declared dead (a compare-and-set on the counter seen).
//! Rounds are counted only after a successful renewal, so a Redis that is down or frozen
//! makes nobody count and nobody is declared dead: judgement freezes with Redis. No key
//! expiry is involved, so Redis's clock and its expiry cycle are not on the correctness path.

use std::collections::HashMap;

use super::store::PeerMark;

/// The counters seen, round after round.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    dead_rounds: u32,
    peers: HashMap<String, Seen>,
    /// Dead or departed incarnations still being taken over, and the rounds until this node
    /// tries (again) to adopt their clients.
    ending: HashMap<String, u32>,
}

#[derive(Debug)]
struct Seen {
    counter: String,
    unchanged: u32,
}

/// What one round calls for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Peers to declare dead, with the counter seen unchanged.
    pub declare: Vec<(String, String)>,
    /// Dead or departed incarnations whose clients this node should try to take over: at once
    /// when first seen (a departed node has no reaper yet; a dead one's reaper may be this
    /// node), then every `dead_rounds` rounds while they remain (their reaper may have died).
    pub adopt: Vec<String>,
}

impl PeerWatch {
    pub fn new(dead_rounds: u32) -> Self {
        Self {
            dead_rounds,
            peers: HashMap::new(),
            ending: HashMap::new(),
        }
    }

    /// Takes the renewal hash read after a successful renewal of `me`.
    pub fn round(&mut self, me: &str, marks: &[(String, PeerMark)]) -> Verdict {
        let mut verdict = Verdict::default();
        let mut present = std::collections::HashSet::new();
        for (id, mark) in marks {
            if id == me {
                continue;
            }
            present.insert(id.as_str());
            match mark {
                PeerMark::Counter(counter) => {
                    self.ending.remove(id);
                    let Some(seen) = self.peers.get_mut(id) else {
                        // First sighting: round zero.
                        self.peers.insert(
                            id.clone(),
                            Seen {
                                counter: counter.clone(),
                                unchanged: 0,
                            },
                        );
                        continue;
                    };
                    if &seen.counter == counter {
                        seen.unchanged += 1;
                    } else {
                        seen.counter = counter.clone();
                        seen.unchanged = 0;
                    }
                    if seen.unchanged >= self.dead_rounds {
                        verdict.declare.push((id.clone(), counter.clone()));
                    }
                }
                PeerMark::Ending => {
                    self.peers.remove(id);
                    let wait = self.ending.entry(id.clone()).or_insert(0);
                    if *wait == 0 {
                        verdict.adopt.push(id.clone());
                        *wait = self.dead_rounds;
                    } else {
                        *wait -= 1;
                    }
                }
            }
        }
        self.peers.retain(|id, _| present.contains(id.as_str()));
        self.ending.retain(|id, _| present.contains(id.as_str()));
        verdict.declare.sort();
        verdict.adopt.sort();
        verdict
    }

    /// Adopt `id` at the next round (this node just declared it dead: it is the reaper).
    pub fn adopt_next(&mut self, id: &str) {
        self.peers.remove(id);
        self.ending.insert(id.to_string(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(list: &[(&str, &str)]) -> Vec<(String, PeerMark)> {
        list.iter()
            .map(|(id, v)| {
                let mark = if *v == "x" {
                    PeerMark::Ending
                } else {
                    PeerMark::Counter(v.to_string())
                };
                (id.to_string(), mark)
            })
            .collect()
    }

    #[test]
    fn a_peer_is_declared_after_exactly_dead_rounds_without_a_change() {
        let mut watch = PeerWatch::new(3);
        assert_eq!(
            watch.round("me", &marks(&[("me", "1"), ("p", "7")])),
            Verdict::default()
        );
        for _ in 0..2 {
            assert!(watch.round("me", &marks(&[("p", "7")])).declare.is_empty());
        }
        let v = watch.round("me", &marks(&[("p", "7")]));
        assert_eq!(v.declare, vec![("p".to_string(), "7".to_string())]);
    }

    #[test]
    fn a_renewal_resets_the_count() {
        let mut watch = PeerWatch::new(2);
        watch.round("me", &marks(&[("p", "1")]));
        watch.round("me", &marks(&[("p", "1")]));
        assert!(watch.round("me", &marks(&[("p", "2")])).declare.is_empty());
        assert!(watch.round("me", &marks(&[("p", "2")])).declare.is_empty());
        assert_eq!(watch.round("me", &marks(&[("p", "2")])).declare.len(), 1);
    }

    #[test]
    fn a_departed_node_is_adopted_at_once_then_retried_every_dead_rounds() {
        let mut watch = PeerWatch::new(2);
        assert_eq!(watch.round("me", &marks(&[("p", "x")])).adopt, vec!["p"]);
        assert!(watch.round("me", &marks(&[("p", "x")])).adopt.is_empty());
        assert!(watch.round("me", &marks(&[("p", "x")])).adopt.is_empty());
        assert_eq!(watch.round("me", &marks(&[("p", "x")])).adopt, vec!["p"]);
        // Gone from the hash: forgotten.
        assert_eq!(watch.round("me", &marks(&[])), Verdict::default());
    }

    #[test]
    fn this_node_is_never_its_own_peer() {
        let mut watch = PeerWatch::new(1);
        for _ in 0..3 {
            assert_eq!(
                watch.round("me", &marks(&[("me", "1")])),
                Verdict::default()
            );
        }
    }
}
