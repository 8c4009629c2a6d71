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
