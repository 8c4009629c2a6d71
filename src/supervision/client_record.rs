//! What the server knows about one online client, readable without asking its actor.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::detector::{Detection, IntervalSummary, Intervals};
use super::states::ClientState;
use crate::clock::{serialize_rfc3339, Instant};
use crate::events::{ClientTimeout, Evidence};
use crate::protocol::Proj;

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
    /// Its recent heartbeat intervals, when asked about this one client. Not part of the
    /// record's JSON (whose fields are fixed): the history shows them.
    #[serde(skip)]
    pub intervals: Option<IntervalSummary>,
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
/// integers, the flags in the padding, the interval window small (see
/// [`super::detector::Intervals`]).
#[derive(Debug, Clone)]
struct RecordState {
    addr: SocketAddr,
    /// Wall time of the last heartbeat, in microseconds since the Unix epoch.
    last_seen_us: u64,
    /// Monotonic time of the last heartbeat, or of when the server started watching the
    /// client again (after a restart, or at the end of a pause), if later: the base of the
    /// deadline.
    beat_at: Instant,
    /// Heartbeats applied to this record (saturating).
    heartbeats: u32,
    timeout_ms: u64,
    generation: u64,
    flags: Flags,
    /// Its recent heartbeat intervals.
    intervals: Intervals,
}

/// A record's yes-or-no facts in one byte. Five `bool`s and a 64-bit count put the record in
/// the allocator's 192-byte class; packed, it fits the 160-byte one (docs/performance.md).
#[derive(Debug, Clone, Copy, Default)]
struct Flags(u8);

impl Flags {
    /// The client asked for its timeout (else it is the server's default).
    const REQUESTED: u8 = 1;
    /// The record was removed: its client went offline, or moved to another actor.
    const REMOVED: u8 = 1 << 1;
    /// Judged late, and no heartbeat since.
    const LATE: u8 = 1 << 2;
    /// Paused by an operator: never declared offline.
    const PAUSED: u8 = 1 << 3;
    /// The time from `beat_at` to the next heartbeat is not the client's rhythm (`beat_at` is
    /// a restart or the end of a pause): it stays out of the interval window.
    const RHYTHM_BROKEN: u8 = 1 << 4;

    fn new(requested: bool, rhythm_broken: bool) -> Self {
        let mut flags = Flags(0);
        flags.set(Flags::REQUESTED, requested);
        flags.set(Flags::RHYTHM_BROKEN, rhythm_broken);
        flags
    }

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }

    /// Whether `flag` was set; clears it.
    fn take(&mut self, flag: u8) -> bool {
        let was = self.has(flag);
        self.set(flag, false);
        was
    }
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
    /// When the client is due to be judged offline: its last heartbeat (or the end of its
    /// pause, if later) plus its detector's verdict time (never more than its timeout).
    pub deadline: Instant,
    /// When it turns late, if late verdicts are on and it is neither late nor paused.
    pub late_at: Option<Instant>,
    /// This heartbeat ended a `late`: the client is announced online again (recovered).
    pub recovered: bool,
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
    pub(crate) fn new(proj: Proj, pulse: Pulse, default: Duration, detection: &Detection) -> Self {
        let timeout = pulse.timeout.unwrap_or(default);
        Self {
            proj,
            state: Mutex::new(RecordState {
                addr: pulse.addr,
                last_seen_us: micros(pulse.wall),
                beat_at: pulse.at,
                heartbeats: 1,
                timeout_ms: crate::clock::millis(timeout),
                generation: 0,
                flags: Flags::new(pulse.timeout.is_some(), false),
                intervals: detection.intervals(timeout),
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
        detection: &Detection,
    ) -> Self {
        Self {
            proj,
            state: Mutex::new(RecordState {
                addr,
                last_seen_us: micros(last_seen),
                beat_at: crate::clock::now(),
                heartbeats: 0,
                timeout_ms: crate::clock::millis(timeout.timeout),
                generation: 0,
                flags: Flags::new(timeout.requested, true),
                intervals: detection.intervals(timeout.timeout),
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
        detection: &Detection,
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
                generation: 0,
                flags: Flags::new(timeout.requested, true),
                intervals: detection.intervals(timeout.timeout),
            }),
        }
    }

    /// A copy of this record for a new actor, and this one marked removed, under one lock:
    /// a heartbeat that reaches the old actor afterwards is refused and goes through the
    /// registry to the new one.
    pub(crate) fn relocate(&self) -> Option<ClientRecord> {
        let mut s = self.lock();
        if s.flags.has(Flags::REMOVED) {
            return None;
        }
        let copy = s.clone();
        s.flags.set(Flags::REMOVED, true);
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
    /// has been removed. The interval since the previous heartbeat joins the client's window
    /// unless it is not rhythm: the first after a restart or a pause, one spanning a pause,
    /// one as long as the timeout, or one read while the server catches up after a stall.
    pub(crate) fn beat(&self, pulse: Pulse, detection: &Detection) -> Result<Applied, Removed> {
        let mut s = self.lock();
        if s.flags.has(Flags::REMOVED) {
            return Err(Removed);
        }
        let timeout = Duration::from_millis(s.timeout_ms);
        let since = pulse.at.saturating_duration_since(s.beat_at);
        if !s.flags.has(Flags::RHYTHM_BROKEN)
            && !s.flags.has(Flags::PAUSED)
            && since < timeout
            && !detection.stall.in_grace(pulse.at)
        {
            s.intervals.push(since, timeout);
        }
        let interval = (s.heartbeats > 0).then_some(since);
        s.addr = pulse.addr;
        s.last_seen_us = micros(pulse.wall);
        s.beat_at = pulse.at;
        s.flags.set(Flags::RHYTHM_BROKEN, false);
        s.heartbeats = s.heartbeats.saturating_add(1);
        s.generation += 1;
        if let Some(timeout) = pulse.timeout {
            s.timeout_ms = crate::clock::millis(timeout);
            s.flags.set(Flags::REQUESTED, true);
        }
        let recovered = s.flags.take(Flags::LATE);
        Ok(Applied {
            recovered,
            interval,
            ..s.applied(detection)
        })
    }

    /// The current generation, timeout and deadlines, to arm a watchdog with.
    pub(crate) fn current(&self, detection: &Detection) -> Applied {
        self.lock().applied(detection)
    }

    /// Removes the client if no heartbeat was applied since `generation` (its watchdog
    /// expired) and it is not paused. Answers whether it was removed.
    pub(crate) fn expire(&self, generation: u64) -> bool {
        let mut s = self.lock();
        if s.flags.has(Flags::REMOVED) || s.flags.has(Flags::PAUSED) || s.generation != generation {
            return false;
        }
        s.flags.set(Flags::REMOVED, true);
        true
    }

    /// Marks the client late if no heartbeat was applied since `generation` and it is online,
    /// not paused and not late already. Answers whether it is newly late.
    pub(crate) fn mark_late(&self, generation: u64) -> bool {
        let mut s = self.lock();
        if s.flags.has(Flags::REMOVED)
            || s.flags.has(Flags::PAUSED)
            || s.flags.has(Flags::LATE)
            || s.generation != generation
        {
            return false;
        }
        s.flags.set(Flags::LATE, true);
        true
    }

    /// Pauses the client: it is not judged late or offline until resumed. Answers whether it
    /// was not paused already (a removed record cannot be paused).
    pub(crate) fn pause(&self) -> bool {
        let mut s = self.lock();
        if s.flags.has(Flags::REMOVED) || s.flags.has(Flags::PAUSED) {
            return false;
        }
        s.flags.set(Flags::PAUSED, true);
        s.flags.set(Flags::LATE, false);
        true
    }

    /// Ends a pause at `now`: the watchdog runs again from the later of the last heartbeat and
    /// now. Answers what to re-arm it with, or `None` if it was not paused.
    pub(crate) fn resume(&self, now: Instant, detection: &Detection) -> Option<Applied> {
        let mut s = self.lock();
        if s.flags.has(Flags::REMOVED) || !s.flags.has(Flags::PAUSED) {
            return None;
        }
        s.flags.set(Flags::PAUSED, false);
        s.beat_at = s.beat_at.max(now);
        s.flags.set(Flags::RHYTHM_BROKEN, true);
        // The watchdog armed before (if it has not fired) is for the current generation:
        // a new one makes it stale, so the re-armed one is the only one.
        s.generation += 1;
        Some(s.applied(detection))
    }

    /// Whether the client is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.lock().flags.has(Flags::PAUSED)
    }

    /// The figures behind a verdict made `now` on this client.
    pub(crate) fn evidence(&self, now: Instant, detection: &Detection) -> Evidence {
        let s = self.lock();
        detection.evidence(
            now.saturating_duration_since(s.beat_at),
            Duration::from_millis(s.timeout_ms),
            &s.intervals,
        )
    }

    /// Its recent heartbeat intervals, summarized (for the API and the history).
    pub(crate) fn intervals(&self) -> Option<IntervalSummary> {
        self.lock().intervals.summary()
    }

    /// Removes the client unconditionally (an explicit `offline`, or shutdown).
    pub(crate) fn remove(&self) {
        self.lock().flags.set(Flags::REMOVED, true);
    }

    /// Whether the client was removed.
    pub(crate) fn is_removed(&self) -> bool {
        self.lock().flags.has(Flags::REMOVED)
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
            requested: s.flags.has(Flags::REQUESTED),
        }
    }

    /// A copy for the API. Its state is paused, late or online (the registry knows about
    /// flapping).
    pub(crate) fn snapshot(&self) -> ClientInfo {
        let s = self.lock();
        let state = s.state();
        ClientInfo {
            proj: self.proj.clone(),
            state,
            last_seen: wall(s.last_seen_us),
            heartbeats: u64::from(s.heartbeats),
            timeout_ms: s.timeout_ms,
            addr: s.addr,
            intervals: None,
        }
    }

    /// Its state as the record knows it: online, late or paused (flapping is the pipeline's
    /// to say).
    pub(crate) fn state(&self) -> ClientState {
        self.lock().state()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordState> {
        // The critical sections cannot panic; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RecordState {
    /// Its state as the record knows it (flapping is the pipeline's to say).
    fn state(&self) -> ClientState {
        if self.flags.has(Flags::PAUSED) {
            ClientState::Paused
        } else if self.flags.has(Flags::LATE) {
            ClientState::Late
        } else {
            ClientState::Online
        }
    }

    fn applied(&self, detection: &Detection) -> Applied {
        let timeout = Duration::from_millis(self.timeout_ms);
        let verdict = detection.verdict(timeout, &self.intervals);
        let late_at = match verdict.late_after {
            Some(after) if !self.flags.has(Flags::LATE) && !self.flags.has(Flags::PAUSED) => {
                Some(self.beat_at + after)
            }
            _ => None,
        };
        Applied {
            generation: self.generation,
            timeout,
            deadline: self.beat_at + verdict.offline_after,
            late_at,
            recovered: false,
            interval: None,
        }
    }
}
