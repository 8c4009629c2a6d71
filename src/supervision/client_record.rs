//! What the server knows about one online client, readable without asking its monitor.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::clock::serialize_rfc3339;
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

/// The live record of one client, shared by its monitor and the registry.
///
/// Sharing it means a query never waits on thousands of monitor mailboxes and a heartbeat
/// never hops through the registry: whoever applies a heartbeat (the monitor, or the registry
/// for a session that has no monitor address yet) updates the record before the ack is sent,
/// so a query made after an ack sees that heartbeat.
///
/// It is also where "is this client still online?" is decided, atomically, under its lock:
/// every applied heartbeat increments `generation`, and the registry removes a client only if
/// the generation its watchdog expired at is still the current one (see [`Self::expire`]).
/// A heartbeat therefore either lands before the removal (and cancels it) or finds the record
/// removed (and goes on to create a fresh monitor); it is never lost in between.
#[derive(Debug)]
pub struct ClientRecord {
    proj: Proj,
    state: Mutex<RecordState>,
}

#[derive(Debug, Clone, Copy)]
struct RecordState {
    addr: SocketAddr,
    last_seen: SystemTime,
    heartbeats: u64,
    timeout: Duration,
    generation: u64,
    removed: bool,
}

/// The record was removed: its client went offline; a new monitor must be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed;

/// A heartbeat applied to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The record's generation after it: the watchdog armed for it carries this value.
    pub generation: u64,
    /// The client's effective timeout.
    pub timeout: Duration,
}

impl ClientRecord {
    /// The record of a client whose first heartbeat arrives now.
    pub fn new(proj: Proj, addr: SocketAddr, timeout: Duration, now: SystemTime) -> Self {
        Self {
            proj,
            state: Mutex::new(RecordState {
                addr,
                last_seen: now,
                heartbeats: 1,
                timeout,
                generation: 0,
                removed: false,
            }),
        }
    }

    /// The record of a client recovered from the event log after a restart: no heartbeat
    /// since (generation 0, zero heartbeats), last seen when the log last saw it.
    pub fn recovered(
        proj: Proj,
        addr: SocketAddr,
        timeout: Duration,
        last_seen: SystemTime,
    ) -> Self {
        Self {
            proj,
            state: Mutex::new(RecordState {
                addr,
                last_seen,
                heartbeats: 0,
                timeout,
                generation: 0,
                removed: false,
            }),
        }
    }

    /// The client.
    pub fn proj(&self) -> &Proj {
        &self.proj
    }

    /// Applies one more heartbeat, with a new timeout if `timeout` is given, unless the
    /// client has been removed.
    pub fn beat(
        &self,
        addr: SocketAddr,
        timeout: Option<Duration>,
        now: SystemTime,
    ) -> Result<Applied, Removed> {
        let mut s = self.lock();
        if s.removed {
            return Err(Removed);
        }
        s.addr = addr;
        s.last_seen = now;
        s.heartbeats += 1;
        s.generation += 1;
        if let Some(timeout) = timeout {
            s.timeout = timeout;
        }
        Ok(Applied {
            generation: s.generation,
            timeout: s.timeout,
        })
    }

    /// The current generation and timeout, to arm a watchdog with.
    pub fn current(&self) -> Applied {
        let s = self.lock();
        Applied {
            generation: s.generation,
            timeout: s.timeout,
        }
    }

    /// Removes the client if no heartbeat was applied since `generation` (its watchdog
    /// expired). Answers whether it was removed.
    pub fn expire(&self, generation: u64) -> bool {
        let mut s = self.lock();
        if s.removed || s.generation != generation {
            return false;
        }
        s.removed = true;
        true
    }

    /// Removes the client unconditionally (an explicit `offline`, or shutdown).
    pub fn remove(&self) {
        self.lock().removed = true;
    }

    /// Wall time of the last heartbeat and where it came from.
    pub fn last_seen(&self) -> (SystemTime, SocketAddr) {
        let s = self.lock();
        (s.last_seen, s.addr)
    }

    /// A copy for the API.
    pub fn snapshot(&self) -> ClientInfo {
        let s = *self.lock();
        ClientInfo {
            proj: self.proj.clone(),
            state: ClientState::Online,
            last_seen: s.last_seen,
            heartbeats: s.heartbeats,
            timeout_ms: crate::clock::millis(s.timeout),
            addr: s.addr,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordState> {
        // The critical sections cannot panic; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
