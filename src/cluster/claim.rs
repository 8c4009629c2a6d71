//! What the registry keeps per client in cluster mode, and the stamp its transitions carry.

use super::token::ClaimToken;
use super::Cluster;
use crate::storage::ClusterStamp;

/// The claim a node holds a client under: its fencing token, and, for a client taken over
/// from a lost node that has not beaten here since, that node's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub token: ClaimToken,
    pub lost_node: Option<String>,
    /// The last heartbeat last checkpointed (long timeouts only), and when.
    pub checkpointed: Option<(std::time::SystemTime, crate::clock::Instant)>,
}

impl Claim {
    /// A fresh claim (a client came online here, or an adopted one beat here).
    pub fn new() -> Self {
        Self {
            token: ClaimToken::new(),
            lost_node: None,
            checkpointed: None,
        }
    }

    /// Whether the client is watched here without ever having beaten here (adopted).
    pub fn is_detached(&self) -> bool {
        self.lost_node.is_some()
    }
}

/// The stamp of a transition under `claim`: what the event log keeps and the cluster sink
/// reads. `None` in single-node mode.
pub(crate) fn stamp(cluster: Option<&Cluster>, claim: Option<&Claim>) -> Option<ClusterStamp> {
    let (cluster, claim) = (cluster?, claim?);
    Some(ClusterStamp {
        token: claim.token.to_string(),
        node: cluster.incarnation(),
        lost_node: claim.lost_node.clone(),
    })
}

/// A client says `offline` on a node that does not supervise it (in cluster mode it may be
/// online on another node, e.g. connected to two at once): the goodbye ends whatever claim
/// is in force, decided before it. An empty token in the stamp means "any owner".
pub(crate) fn goodbye(
    cluster: &Cluster,
    pipeline: &crate::events::Pipeline,
    proj: crate::protocol::Proj,
) {
    let now = crate::clock::wall_now();
    let stamp = ClusterStamp {
        token: String::new(),
        node: cluster.incarnation(),
        lost_node: None,
    };
    pipeline.publish_stamped(
        crate::events::Event::Offline {
            proj,
            reason: crate::events::OfflineReason::Offline,
            addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            last_seen: now,
            at: now,
            evidence: None,
            outage: None,
        },
        None,
        Some(stamp),
    );
}
