//! What the server knows about one online client, readable without asking its actor.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::clock::{serialize_rfc3339, Instant};
use crate::events::ClientTimeout;
use crate::protocol::Proj;

/// The state of a client as the API reports it.
///
/// Only online clients are in the registry: an offline client is removed (and the API answers
/// 404 for it), so `Online` is the one state today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientState {
    /// Beating within its timeout.
    Online,
}

/// A point-in-time copy of a client's record, as served by the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    /// The client.
    pub proj: Proj,
    /// Its state.
    pub state: ClientState,
    /// Wall time of its last heartbeat.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub last_seen: SystemTime,
    /// Heartbeats accepted since it came online.
    pub heartbeats: u64,
    /// Its effective watchdog timeout.
    pub timeout_ms: u64,
    /// Where its last heartbeat came from.
    pub addr: SocketAddr,
}

/// The live record of one client, shared by its actor and the registry.
///
/// Sharing it means a query never waits on thousands of actor mailboxes and a heartbeat
/// never hops through the registry: whoever applies a heartbeat (the client's actor, or the
/// registry for a heartbeat that did not reach the actor) updates the record before the ack
/// is sent, so a query made after an ack sees that heartbeat.
///
/// It is also where "is this client still online?" is decided, atomically, under its lock:
/// every applied heartbeat increments `generation`, and the registry removes a client only if
/// the generation its watchdog expired at is still the current one (see [`Self::expire`]).
/// A heartbeat therefore either lands before the removal (and cancels it) or finds the record
/// removed (and goes through the registry, which brings the client online again); it is never
/// lost in between.
#[derive(Debug)]
pub(crate) struct ClientRecord {
    proj: Proj,
    state: Mutex<RecordState>,
}

/// Kept compact (a record is one allocation per online client): wall time and timeout as
/// integers.
#[derive(Debug, Clone, Copy)]
struct RecordState {
    addr: SocketAddr,
    /// Wall time of the last heartbeat, in microseconds since the Unix epoch.
    last_seen_us: u64,
    /// Monotonic time of the last heartbeat: the base of the deadline.
    beat_at: Instant,
    heartbeats: u64,
    timeout_ms: u64,
    /// Whether the client asked for its timeout (else it is the server's default).
    requested: bool,
    generation: u64,
    removed: bool,
}

fn micros(t: SystemTime) -> u64 {
    // Seconds and sub-seconds apart: `as_micros` divides a u128, on every heartbeat.
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| {
        d.as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(d.subsec_micros()))
    })
}

fn wall(us: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(us)
}

/// The record was removed: its client went offline, or its actor was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed;

/// A heartbeat applied to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The record's generation after it: the watchdog armed for it carries this value.
    pub generation: u64,
    /// The client's effective timeout.
    pub timeout: Duration,
    /// When the client is due: its last heartbeat plus its timeout.
    pub deadline: Instant,
    /// For an applied heartbeat: the time since the client's previous one, if it had one in
    /// this record (not for the first heartbeat after a restart or a takeover).
    pub interval: Option<Duration>,
}

/// What one heartbeat says, for a record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pulse {
    /// Where it came from.
    pub addr: SocketAddr,
    /// The timeout it asks for, already clamped; `None` keeps the current one.
    pub timeout: Option<Duration>,
    /// Wall time, for people.
    pub wall: SystemTime,
    /// Monotonic time, for the deadline.
    pub at: Instant,
}

impl Pulse {
    /// A heartbeat from `addr` now.
    pub(crate) fn now(addr: SocketAddr, timeout: Option<Duration>) -> Self {
        Self::at(addr, timeout, crate::clock::now())
    }

    /// A heartbeat from `addr` read at `at` (monotonic; the wall time is read now).
    pub(crate) fn at(addr: SocketAddr, timeout: Option<Duration>, at: Instant) -> Self {
        Self {
            addr,
            timeout,
            wall: crate::clock::wall_now(),
            at,
        }
    }
}

impl ClientRecord {
    /// The record of a client whose first heartbeat is `pulse`; `default` is the server's
    /// timeout for a client that does not ask for one.
    pub(crate) fn new(proj: Proj, pulse: Pulse, default: Duration) -> Self {
        Self {
            proj,
            state: Mutex::new(RecordState {
                addr: pulse.addr,
                last_seen_us: micros(pulse.wall),
                beat_at: pulse.at,
                heartbeats: 1,
                timeout_ms: crate::clock::millis(pulse.timeout.unwrap_or(default)),
                requested: pulse.timeout.is_some(),
                generation: 0,
                removed: false,
            }),
        }
    }

    /// The record of a client recovered from the event log after a restart: no heartbeat
    /// since (zero heartbeats), last seen when the log last saw it, due one timeout from now.
    pub(crate) fn recovered(
        proj: Proj,
        addr: SocketAddr,
        timeout: ClientTimeout,
        last_seen: SystemTime,
    ) -> Self {
        Self {
            proj,
            state: Mutex::new(RecordState {
                addr,
                last_seen_us: micros(last_seen),
                beat_at: crate::clock::now(),
                heartbeats: 0,
                timeout_ms: crate::clock::millis(timeout.timeout),
                requested: timeout.requested,
                generation: 0,
                removed: false,
            }),
        }
    }

    /// The record of a client this node took over from a lost cluster node: no heartbeat here
    /// (zero heartbeats), last seen as the cluster knew it, due `due_in` from now (its capped
    /// deadline) however long its timeout.
    pub(crate) fn adopted(
        proj: Proj,
        addr: SocketAddr,
        timeout: ClientTimeout,
        last_seen: SystemTime,
        due_in: Duration,
    ) -> Self {
        let now = crate::clock::now();
        let beat_at = (now + due_in).checked_sub(timeout.timeout).unwrap_or(now);
        Self {
            proj,
            state: Mutex::new(RecordState {
                addr,
                last_seen_us: micros(last_seen),
                beat_at,
                heartbeats: 0,
                timeout_ms: crate::clock::millis(timeout.timeout),
                requested: timeout.requested,
                generation: 0,
                removed: false,
            }),
        }
    }

    /// A copy of this record for a new actor, and this one marked removed, under one lock:
    /// a heartbeat that reaches the old actor afterwards is refused and goes through the
    /// registry to the new one.
    pub(crate) fn relocate(&self) -> Option<ClientRecord> {
        let mut s = self.lock();
        if s.removed {
            return None;
        }
        let copy = *s;
        s.removed = true;
        Some(ClientRecord {
            proj: self.proj.clone(),
            state: Mutex::new(copy),
        })
    }

    /// The client.
    pub(crate) fn proj(&self) -> &Proj {
        &self.proj
    }

    /// Applies one more heartbeat, with a new timeout if it asks for one, unless the client
    /// has been removed.
    pub(crate) fn beat(&self, pulse: Pulse) -> Result<Applied, Removed> {
        let mut s = self.lock();
        if s.removed {
            return Err(Removed);
        }
        let interval = (s.heartbeats > 0).then(|| pulse.at.saturating_duration_since(s.beat_at));
        s.addr = pulse.addr;
        s.last_seen_us = micros(pulse.wall);
        s.beat_at = pulse.at;
        s.heartbeats += 1;
        s.generation += 1;
        if let Some(timeout) = pulse.timeout {
            s.timeout_ms = crate::clock::millis(timeout);
            s.requested = true;
        }
        Ok(Applied {
            interval,
            ..s.applied()
        })
    }

    /// The current generation, timeout and deadline, to arm a watchdog with.
    pub(crate) fn current(&self) -> Applied {
        self.lock().applied()
    }

    /// Removes the client if no heartbeat was applied since `generation` (its watchdog
    /// expired). Answers whether it was removed.
    pub(crate) fn expire(&self, generation: u64) -> bool {
        let mut s = self.lock();
        if s.removed || s.generation != generation {
            return false;
        }
        s.removed = true;
        true
    }

    /// Removes the client unconditionally (an explicit `offline`, or shutdown).
    pub(crate) fn remove(&self) {
        self.lock().removed = true;
    }

    /// Whether the client was removed.
    pub(crate) fn is_removed(&self) -> bool {
        self.lock().removed
    }

    /// Wall time of the last heartbeat and where it came from.
    pub(crate) fn last_seen(&self) -> (SystemTime, SocketAddr) {
        let s = self.lock();
        (wall(s.last_seen_us), s.addr)
    }

    /// The timeout in force and whether the client asked for it.
    pub(crate) fn timeout(&self) -> ClientTimeout {
        let s = self.lock();
        ClientTimeout {
            timeout: Duration::from_millis(s.timeout_ms),
            requested: s.requested,
        }
    }

    /// A copy for the API.
    pub(crate) fn snapshot(&self) -> ClientInfo {
        let s = *self.lock();
        ClientInfo {
            proj: self.proj.clone(),
            state: ClientState::Online,
            last_seen: wall(s.last_seen_us),
            heartbeats: s.heartbeats,
            timeout_ms: s.timeout_ms,
            addr: s.addr,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordState> {
        // The critical sections cannot panic; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RecordState {
    fn applied(&self) -> Applied {
        let timeout = Duration::from_millis(self.timeout_ms);
        Applied {
            generation: self.generation,
            timeout,
            deadline: self.beat_at + timeout,
            interval: None,
        }
    }
}
