//! The Lua scripts, compiled in and invoked by SHA (EVALSHA, loaded again on NOSCRIPT).
//!
//! Each script is one atomic step of the cluster's state machine: the check of the caller's
//! liveness and token, the state change, its indexes and its event happen together or not at
//! all, so the state and the event stream cannot diverge, and a stale writer changes nothing.
//! The files under `scripts/` document their arguments and answers.

use redis::Script;

/// Every script, hashed once.
pub(crate) struct Scripts {
    /// A node incarnation joins.
    pub register: Script,
    /// Lease renewal, answering the peers' counters.
    pub renew: Script,
    /// Compare-and-set death of a peer.
    pub declare_dead: Script,
    /// A batch of transitions (claims and offlines) with their events.
    pub publish: Script,
    /// Take over a dead or departed incarnation's clients.
    pub adopt: Script,
    /// Record last heartbeats.
    pub checkpoint: Script,
    /// A clean leave.
    pub leave: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            register: Script::new(include_str!("scripts/register.lua")),
            renew: Script::new(include_str!("scripts/renew.lua")),
            declare_dead: Script::new(include_str!("scripts/declare_dead.lua")),
            publish: Script::new(include_str!("scripts/publish.lua")),
            adopt: Script::new(include_str!("scripts/adopt.lua")),
            checkpoint: Script::new(include_str!("scripts/checkpoint.lua")),
            leave: Script::new(include_str!("scripts/leave.lua")),
        }
    }
}
