//! The sink that writes each transition to the server log.

use super::event::Event;
use super::sink::{Published, Sink};

/// Logs every transition at info level, under the `heartwatch::events` target.
#[derive(Debug, Default)]
pub struct LogSink;

impl Sink for LogSink {
    fn publish(&mut self, published: &Published) {
        match &published.event {
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
                    crate::clock::rfc3339(*last_seen)
                );
            }
        }
    }
}
