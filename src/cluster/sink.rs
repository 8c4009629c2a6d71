//! The cluster's place in the pipeline of sinks: after the event log, every transition with a
//! cluster stamp is handed to the cluster task, and so is every other event (a detection
//! verdict, an outage), as a note for the stream.

use std::time::Duration;

use super::token::ClaimToken;
use super::transition::Transition;
use super::Cluster;
use crate::events::{Event, Published, Sink};

/// Hands each stamped transition to the cluster (non-blocking: a channel send), with its
/// number in the event log, which is its durable outbox.
pub(crate) struct ClusterSink {
    pub cluster: Cluster,
}

impl Sink for ClusterSink {
    fn publish(&mut self, published: &Published) {
        let event = published.event.clone();
        let quiet = published.muted;
        let transition = match (&published.stamp, &published.event) {
            (Some(stamp), Event::Online { .. }) => Transition::Online {
                event,
                token: ClaimToken::from_wire(&stamp.token),
                timeout: published.timeout.map_or(Duration::ZERO, |t| t.timeout),
                quiet,
            },
            (Some(stamp), Event::Offline { .. }) => Transition::Offline {
                event,
                token: ClaimToken::from_wire(&stamp.token),
                lost_node: stamp.lost_node.clone(),
                quiet,
            },
            // A muted verdict goes to the event log only, as in single-node mode.
            _ if quiet => return,
            _ => Transition::Note { event },
        };
        self.cluster.transition_logged(published.id, transition);
    }
}
