//! The ordered list of sinks every transition goes through, and the numbering of events.

use std::sync::{Arc, Mutex};

use super::event::Event;
use super::sink::{ClientTimeout, Published, Sink};

/// Numbers each transition and hands it to every sink, in order.
///
/// Shared by the registries that come and go (a registry stops when empty), so that numbering
/// continues; only one registry runs at a time, so the lock is never contended.
#[derive(Clone)]
pub(crate) struct Pipeline {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    last_id: u64,
    sinks: Vec<Box<dyn Sink>>,
}

impl Pipeline {
    /// A pipeline whose next event is numbered `last_id + 1` (the event log's last `seq`).
    pub(crate) fn new(last_id: u64, sinks: Vec<Box<dyn Sink>>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner { last_id, sinks })),
        }
    }

    /// Numbers `event` and gives it to every sink; returns its id.
    #[cfg(test)]
    pub(crate) fn publish(&self, event: Event, timeout: Option<ClientTimeout>) -> u64 {
        self.publish_stamped(event, timeout, None)
    }

    /// [`Pipeline::publish`] with a cluster stamp (cluster mode: the claim's token).
    pub(crate) fn publish_stamped(
        &self,
        event: Event,
        timeout: Option<ClientTimeout>,
        stamp: Option<crate::storage::ClusterStamp>,
    ) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.last_id += 1;
        let published = Published {
            id: inner.last_id,
            event,
            timeout,
            stamp,
        };
        for sink in &mut inner.sinks {
            sink.publish(&published);
        }
        published.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Proj;
    use std::sync::mpsc;

    struct Tap(&'static str, mpsc::Sender<(&'static str, u64)>);
    impl Sink for Tap {
        fn publish(&mut self, event: &Published) {
            self.1.send((self.0, event.id)).unwrap();
        }
    }

    #[test]
    fn every_sink_sees_every_event_in_order_and_numbering_continues() {
        let (tx, rx) = mpsc::channel();
        let pipeline = Pipeline::new(
            41,
            vec![Box::new(Tap("a", tx.clone())), Box::new(Tap("b", tx))],
        );
        let online = Event::Online {
            proj: Proj::new("P").unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
            at: std::time::SystemTime::UNIX_EPOCH,
        };
        assert_eq!(pipeline.publish(online.clone(), None), 42);
        assert_eq!(pipeline.publish(online, None), 43);
        let seen: Vec<_> = rx.try_iter().collect();
        assert_eq!(seen, [("a", 42), ("b", 42), ("a", 43), ("b", 43)]);
    }
}
