//! The registry's `late` verdicts and their ends: a watchdog reached a client's late moment, or
//! a late client beat again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use actix::{Context, Handler};

use super::{Late, Recovered, Registry};
use crate::clock;
use crate::events::Event;
use crate::protocol::Proj;
use crate::supervision::client_record::ClientRecord;

impl Registry {
    /// Announces that a late client beat again: an `online` that is not a new session.
    pub(super) fn announce_recovered(
        &mut self,
        proj: &Proj,
        record: &ClientRecord,
        addr: SocketAddr,
        at: SystemTime,
    ) {
        self.deps.pipeline.publish(
            Event::Online {
                proj: proj.clone(),
                addr,
                at,
                recovered: true,
                outage: None,
            },
            Some(record.timeout()),
        );
    }
}

impl Handler<Late> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Late, _: &mut Context<Self>) {
        let Some(entry) = self.clients.get(&msg.proj) else {
            return;
        };
        // Judged only if no heartbeat came since the watchdog fired, and the client is not
        // paused or late already.
        if !Arc::ptr_eq(&entry.record, &msg.record) || !entry.record.mark_late(msg.generation) {
            return;
        }
        let evidence = entry.record.evidence(clock::now(), &self.deps.detection);
        let (last_seen, addr) = entry.record.last_seen();
        self.deps.pipeline.publish(
            Event::Late {
                proj: msg.proj,
                addr,
                last_seen,
                silent_ms: evidence.silent_ms,
                at: msg.at,
                evidence,
            },
            None,
        );
    }
}

impl Handler<Recovered> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Recovered, _: &mut Context<Self>) {
        let Some(entry) = self.clients.get(&msg.proj) else {
            return;
        };
        if !Arc::ptr_eq(&entry.record, &msg.record) {
            return;
        }
        let record = entry.record.clone();
        self.announce_recovered(&msg.proj, &record, msg.addr, msg.at);
    }
}
