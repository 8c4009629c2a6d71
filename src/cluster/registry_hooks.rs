//! What the cluster asks of the local registry ([`Command`]s), as registry messages, and the
//! task that carries them over.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::{Context, Handler, Message};
use tokio::sync::mpsc;

use super::claim::Claim;
use super::token::ClaimToken;
use super::transition::Command;
use crate::events::ClientTimeout;
use crate::protocol::Proj;
use crate::supervision::registry::{Close, Registry};
use crate::supervision::{ClientRecord, RegistryHandle};

/// Stop supervising `proj` without an event, if it is still held under `token`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Evict {
    pub proj: Proj,
    pub token: ClaimToken,
}

/// Watch a client taken over from a lost node until its capped deadline.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Adopt {
    pub proj: Proj,
    pub deadline: SystemTime,
    pub last_seen: SystemTime,
    pub timeout: Duration,
    pub lost_node: String,
    pub token: ClaimToken,
    pub addr: Option<std::net::SocketAddr>,
}

/// Close the registry (as [`Close`]) and answer every client's claim and exact last
/// heartbeat, in one handler: nothing beats in between, so the checkpoints of a clean leave
/// are exact.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<(Proj, ClaimToken, SystemTime)>")]
pub(crate) struct CloseForLeave;

impl Handler<Evict> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Evict, ctx: &mut Context<Self>) {
        let held = self
            .entry(&msg.proj)
            .is_some_and(|e| e.claim.as_ref().is_some_and(|c| c.token == msg.token));
        if !held {
            return;
        }
        if let Some(entry) = self.entry(&msg.proj) {
            entry.record.remove();
        }
        self.take_out(&msg.proj, ctx);
        log::debug!("client {} moved to another node", msg.proj);
    }
}

impl Handler<Adopt> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Adopt, ctx: &mut Context<Self>) {
        if self.entry(&msg.proj).is_some() {
            // It beats here already: this node's own claim, queued, takes it over.
            return;
        }
        let due_in = msg
            .deadline
            .duration_since(crate::clock::wall_now())
            .unwrap_or(Duration::ZERO);
        let record = Arc::new(ClientRecord::adopted(
            msg.proj.clone(),
            msg.addr
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            ClientTimeout {
                timeout: msg.timeout,
                requested: true,
            },
            msg.last_seen,
            due_in,
            self.detection(),
        ));
        let client = self.spawn(&record, &actix::Arbiter::current(), ctx);
        let claim = Claim {
            token: msg.token,
            lost_node: Some(msg.lost_node),
            checkpointed: None,
        };
        self.insert(msg.proj, Registry::adopted_entry(client, record, claim));
    }
}

impl Handler<CloseForLeave> for Registry {
    type Result = actix::MessageResult<CloseForLeave>;

    fn handle(&mut self, _: CloseForLeave, ctx: &mut Context<Self>) -> Self::Result {
        let claims = self
            .claims()
            .into_iter()
            .filter(|(_, claim, _)| !claim.is_detached())
            .map(|(proj, claim, seen)| (proj, claim.token.clone(), seen))
            .collect();
        let _ = <Self as Handler<Close>>::handle(self, Close, ctx);
        actix::MessageResult(claims)
    }
}

/// Checkpoint the last heartbeat of clients with long timeouts that beat since their last
/// checkpoint at least a quarter of their timeout ago (less one sweep period and one renewal,
/// so that the cluster's copy is never more than a quarter of the timeout behind).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct CheckpointSweep;

/// How often [`CheckpointSweep`] runs.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl Handler<CheckpointSweep> for Registry {
    type Result = ();

    fn handle(&mut self, _: CheckpointSweep, _: &mut Context<Self>) {
        let Some(cluster) = self.cluster().cloned() else {
            return;
        };
        let now = crate::clock::now();
        let slack = SWEEP_EVERY + Duration::from_secs(1);
        for (proj, entry) in self.entries_mut() {
            let Some(claim) = entry.claim.as_mut() else {
                continue;
            };
            let timeout = entry.record.timeout().timeout;
            let Some(every) = super::checkpoint_every(timeout) else {
                continue;
            };
            if claim.is_detached() {
                continue;
            }
            let (seen, _) = entry.record.last_seen();
            let due = match claim.checkpointed {
                None => true,
                Some((done, at)) => seen > done && now.duration_since(at) + slack >= every,
            };
            if due {
                claim.checkpointed = Some((seen, now));
                cluster.checkpoint(proj.clone(), claim.token.clone(), seen);
            }
        }
    }
}

/// Sends [`CheckpointSweep`] every [`SWEEP_EVERY`] while the server runs (a registry that is
/// not running has no client to checkpoint).
pub(crate) async fn sweep(registry: RegistryHandle) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        if registry.call(CheckpointSweep, false).await.is_err() {
            return;
        }
    }
}

/// Carries the cluster's commands to the registry, in order, until the feed closes.
pub(crate) async fn forward(
    mut commands: mpsc::UnboundedReceiver<Command>,
    registry: RegistryHandle,
) {
    while let Some(command) = commands.recv().await {
        let sent = match command {
            Command::Evict { proj, token } => {
                registry.call(Evict { proj, token }, false).await.map(drop)
            }
            Command::Adopt {
                proj,
                deadline,
                last_seen,
                timeout,
                lost_node,
                token,
                addr,
            } => registry
                .call(
                    Adopt {
                        proj,
                        deadline,
                        last_seen,
                        timeout,
                        lost_node,
                        token,
                        addr,
                    },
                    true,
                )
                .await
                .map(drop),
        };
        if sent.is_err() {
            // The registry is closed: the server is stopping.
            return;
        }
    }
}
