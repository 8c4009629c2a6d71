//! The cluster's place in the pipeline of sinks: after the event log, every transition with a
//! cluster stamp is handed to the cluster task.

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
        let Some(stamp) = &published.stamp else {
            return;
        };
        let token = ClaimToken::from_wire(&stamp.token);
        let transition = match &published.event {
            Event::Online { .. } => Transition::Online {
                event: published.event.clone(),
                token,
                timeout: published.timeout.map_or(Duration::ZERO, |t| t.timeout),
            },
            Event::Offline { .. } => Transition::Offline {
                event: published.event.clone(),
                token,
                lost_node: stamp.lost_node.clone(),
            },
        };
        self.cluster.transition_logged(published.id, transition);
    }
}
