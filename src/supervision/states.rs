//! The states a client is in, as the API shows them and `?state=` filters them.

use serde::{Deserialize, Serialize};

/// A client's state.
///
/// While the server knows a client (it is in the registry) it is `online`, `late`, `paused` or
/// `flapping`; once it is declared offline (or leaves) it is `offline`, which only the history
/// and `?state=offline` show. When several apply, the first of paused, flapping, late wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientState {
    /// Beating in time.
    Online,
    /// Silent for `server.late_ratio` of the time after which it would be declared offline;
    /// its next heartbeat makes it `online` again (an `online` event with `recovered: true`).
    Late,
    /// Paused by an operator (`POST .../pause`, or a window over its proj): never declared
    /// offline until resumed; its heartbeats are still acked and recorded.
    Paused,
    /// Went offline and online `flap.transitions` times within `flap.window`: its
    /// transitions are recorded but not announced until it is stable again.
    Flapping,
    /// Declared offline, or left.
    Offline,
}

impl ClientState {
    /// Every state, in the API's order.
    pub const ALL: [ClientState; 5] = [
        ClientState::Online,
        ClientState::Late,
        ClientState::Paused,
        ClientState::Flapping,
        ClientState::Offline,
    ];

    /// As written in the API and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Online => "online",
            ClientState::Late => "late",
            ClientState::Paused => "paused",
            ClientState::Flapping => "flapping",
            ClientState::Offline => "offline",
        }
    }

    /// The state named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// How many known clients are in each state (offline ones are not known), for
/// `heartwatch_clients{state=...}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Beating in time.
    pub online: u64,
    /// Late.
    pub late: u64,
    /// Paused.
    pub paused: u64,
    /// Flapping (and not paused).
    pub flapping: u64,
}

impl StateCounts {
    /// Counts one client in `state` (an offline one is not counted).
    pub fn add(&mut self, state: ClientState) {
        match state {
            ClientState::Online => self.online += 1,
            ClientState::Late => self.late += 1,
            ClientState::Paused => self.paused += 1,
            ClientState::Flapping => self.flapping += 1,
            ClientState::Offline => {}
        }
    }

    /// The count of `state` (0 for offline).
    pub fn get(&self, state: ClientState) -> u64 {
        match state {
            ClientState::Online => self.online,
            ClientState::Late => self.late,
            ClientState::Paused => self.paused,
            ClientState::Flapping => self.flapping,
            ClientState::Offline => 0,
        }
    }
}

impl std::fmt::Display for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in ClientState::ALL {
            assert_eq!(ClientState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
        }
        assert_eq!(ClientState::parse("gone"), None);
    }
}
