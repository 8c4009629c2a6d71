//! What the local registry tells the cluster, and what the cluster tells it back.

use std::time::{Duration, SystemTime};

use super::token::ClaimToken;
use crate::events::Event;
use crate::protocol::Proj;

/// A transition this node decided, for the cluster to publish. Sent with
/// [`Cluster::transition`](super::Cluster::transition), which never waits on Redis.
#[derive(Debug, Clone)]
pub enum Transition {
    /// The registry started supervising a client it had no monitor for: a claim. It becomes
    /// the cluster's `online` event only if the client was online nowhere; a client that moves
    /// here from another node changes owner silently, and the node it left is told to evict
    /// it. The registry makes a fresh `token` for every claim, and must claim again (with a
    /// new token) when an adopted client's first heartbeat reaches it, so that its capped
    /// deadline is lifted.
    Online {
        /// The `online` event as the node would announce it.
        event: Event,
        /// This claim's fencing token.
        token: ClaimToken,
        /// The client's watchdog timeout.
        timeout: Duration,
        /// A muted event (a flapping client's, see docs/detection.md): the claim is applied,
        /// but the stream gets no entry.
        quiet: bool,
    },
    /// The registry stopped supervising a client: its watchdog fired, it said `offline`, or an
    /// adopted client's detached watchdog reached its cap. It becomes the cluster's event only
    /// if `token` is still the client's token in force (a client that moved is fenced).
    Offline {
        /// The `offline` event as the node would announce it.
        event: Event,
        /// The token of the claim (or adoption) it ends.
        token: ClaimToken,
        /// For an adopted client, the node it was lost with (`"lost_node"` in the event).
        lost_node: Option<String>,
        /// A muted event: the claim ends, but the stream gets no entry.
        quiet: bool,
    },
    /// An event that changes no claim: a detection verdict (`late`, `paused`, `resumed`,
    /// `flapping`, `stable`), a late client's `online` with `recovered`, or an outage's
    /// `outage`/`outage_end`. Added to the stream as it is (not fenced: it says what this node
    /// saw).
    Note {
        /// The event.
        event: Event,
    },
}

impl Transition {
    /// The client it is about (none for an outage's events).
    pub fn proj(&self) -> Option<&Proj> {
        self.event().proj()
    }

    /// The event.
    pub fn event(&self) -> &Event {
        match self {
            Transition::Online { event, .. }
            | Transition::Offline { event, .. }
            | Transition::Note { event } => event,
        }
    }

    /// Its fencing token (none for a note).
    pub fn token(&self) -> Option<&ClaimToken> {
        match self {
            Transition::Online { token, .. } | Transition::Offline { token, .. } => Some(token),
            Transition::Note { .. } => None,
        }
    }

    /// Whether the stream gets no entry for it (a muted claim or offline).
    pub fn quiet(&self) -> bool {
        match self {
            Transition::Online { quiet, .. } | Transition::Offline { quiet, .. } => *quiet,
            Transition::Note { .. } => false,
        }
    }

    /// The event's JSON as the stream carries it: the node's own JSON plus `"node"` (the node
    /// that decided it) and, for a client taken over from a lost node, `"lost_node"`.
    pub(crate) fn event_json(&self, node: &str) -> String {
        let (event, lost) = match self {
            Transition::Online { event, .. } | Transition::Note { event } => (event, None),
            Transition::Offline {
                event, lost_node, ..
            } => (event, lost_node.as_deref()),
        };
        let mut value = serde_json::to_value(event).expect("an event serializes");
        if let Some(map) = value.as_object_mut() {
            map.insert("node".into(), node.into());
            if let Some(lost) = lost {
                map.insert("lost_node".into(), lost.into());
            }
        }
        value.to_string()
    }
}

/// What the cluster asks of the local registry. Read from the feed [`Cluster::start`]
/// returns (see [`ClusterFeeds`](super::ClusterFeeds)).
///
/// [`Cluster::start`]: super::Cluster::start
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The client was claimed by another node (it moved, or a replayed claim of ours lost to a
    /// later one): stop supervising it without an event, if its token is still `token` (a
    /// newer claim here keeps it). A session still open for it may be closed as taken over.
    Evict {
        /// The client.
        proj: Proj,
        /// The token of the claim that lost.
        token: ClaimToken,
    },
    /// This node took over a client of a node that died or left: watch it with a detached
    /// watchdog until `deadline`, then send [`Transition::Offline`] with reason `timeout`,
    /// this `token` and `lost_node`; a heartbeat here before then claims it again.
    Adopt {
        /// The client.
        proj: Proj,
        /// When it goes offline unless it beats somewhere (wall time, from Redis).
        deadline: SystemTime,
        /// Its last heartbeat as far as the cluster knows (exact after a clean leave, else
        /// its claim or last checkpoint).
        last_seen: SystemTime,
        /// Its watchdog timeout.
        timeout: Duration,
        /// The name of the node it was lost with.
        lost_node: String,
        /// The token of the adoption.
        token: ClaimToken,
        /// Where its claiming heartbeat came from, if the cluster knows.
        addr: Option<std::net::SocketAddr>,
    },
}
