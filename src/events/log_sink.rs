//! The subscriber that writes each transition to the log.

use actix::{Actor, Context, Handler};

use super::event::Event;

/// Logs every transition at info level, under the `heartwatch::events` target.
#[derive(Debug, Default)]
pub struct LogSink;

impl Actor for LogSink {
    type Context = Context<Self>;
}

impl Handler<Event> for LogSink {
    type Result = ();

    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        match event {
            Event::Online { proj, addr, .. } => {
                log::info!(target: "heartwatch::events", "online proj={proj} addr={addr}");
            }
            Event::Offline {
                proj,
                reason,
                addr,
                last_seen,
                ..
            } => {
                log::info!(
                    target: "heartwatch::events",
                    "offline proj={proj} reason={reason} addr={addr} last_seen={}",
                    crate::clock::rfc3339(last_seen)
                );
            }
        }
    }
}
