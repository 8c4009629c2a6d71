//! The ordered list of sinks every transition goes through, the stage before them (flap
//! damping, outage grouping), and the numbering of events.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::event::Event;
use super::sink::{ClientTimeout, Published, Sink};
use super::stage::{Stage, Staged};
use crate::clock::{self, Instant};
use crate::protocol::Proj;
use crate::supervision::IntervalSummary;

/// Numbers each transition and hands it to every sink, in order, after the stage.
///
/// Shared by the registries that come and go (a registry stops when empty), so that numbering
/// continues and the stage keeps its memory; only one registry runs at a time, so the lock is
/// hardly ever contended (the stage's own timer, [`Pipeline::housekeeping`], takes it too).
#[derive(Clone)]
pub(crate) struct Pipeline {
    inner: Arc<Mutex<Inner>>,
    /// Wakes the housekeeping task when the stage has something due earlier than it planned.
    wake: Arc<Notify>,
}

struct Inner {
    last_id: u64,
    sinks: Vec<Box<dyn Sink>>,
    stage: Stage,
    /// When the housekeeping task plans to look at the stage next.
    planned: Option<Instant>,
}

impl Pipeline {
    /// A pipeline whose next event is numbered `last_id + 1` (the event log's last `seq`),
    /// with no stage.
    #[cfg(test)]
    pub(crate) fn new(last_id: u64, sinks: Vec<Box<dyn Sink>>) -> Self {
        Self::with_stage(last_id, sinks, Stage::default())
    }

    /// A pipeline with a stage (run [`Pipeline::housekeeping`] for its timers).
    pub(crate) fn with_stage(last_id: u64, sinks: Vec<Box<dyn Sink>>, stage: Stage) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                last_id,
                sinks,
                stage,
                planned: None,
            })),
            wake: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers `event` (and whatever the stage adds) and gives it to every sink; returns its
    /// id.
    pub(crate) fn publish(&self, event: Event, timeout: Option<ClientTimeout>) -> u64 {
        self.publish_with(event, timeout, None, None)
    }

    /// [`Pipeline::publish`] with a cluster stamp (cluster mode: the claim's token).
    pub(crate) fn publish_stamped(
        &self,
        event: Event,
        timeout: Option<ClientTimeout>,
        stamp: Option<crate::storage::ClusterStamp>,
    ) -> u64 {
        self.publish_with(event, timeout, None, stamp)
    }

    /// [`Pipeline::publish_stamped`] for an `offline`, with the client's interval statistics
    /// for the event log.
    pub(crate) fn publish_offline(
        &self,
        event: Event,
        intervals: Option<IntervalSummary>,
        stamp: Option<crate::storage::ClusterStamp>,
    ) -> u64 {
        self.publish_with(event, None, intervals, stamp)
    }

    fn publish_with(
        &self,
        event: Event,
        timeout: Option<ClientTimeout>,
        intervals: Option<IntervalSummary>,
        mut stamp: Option<crate::storage::ClusterStamp>,
    ) -> u64 {
        let mut inner = self.lock();
        let staged = if inner.stage.is_active() {
            let next = inner.last_id + 1;
            inner.stage.process(event, next, clock::now())
        } else {
            vec![Staged {
                event,
                muted: false,
                original: true,
            }]
        };
        let mut id = 0;
        for staged in staged {
            let original = staged.original;
            let published = inner.deliver(
                staged,
                original.then_some(timeout).flatten(),
                original.then_some(intervals).flatten(),
                if original { stamp.take() } else { None },
            );
            if original {
                id = published;
            }
        }
        self.plan(&mut inner);
        id
    }

    /// Wakes the housekeeping task if the stage now has something due before its plan.
    fn plan(&self, inner: &mut Inner) {
        let due = inner.stage.next_due();
        if let Some(due) = due {
            if inner.planned.is_none_or(|planned| due < planned) {
                inner.planned = Some(due);
                self.wake.notify_one();
            }
        }
    }

    /// Calls `f` with a test of flapping, under one lock (for listings).
    pub(crate) fn with_flapping<R>(&self, f: impl FnOnce(&dyn Fn(&Proj) -> bool) -> R) -> R {
        let inner = self.lock();
        if inner.stage.none_flapping() {
            return f(&|_| false);
        }
        f(&|p| inner.stage.is_flapping(p))
    }

    /// Runs the stage's timers (a flapping client that became stable, an outage that ran out)
    /// until the task is aborted. Spawn it on the server's arbiter.
    pub(crate) async fn housekeeping(self) {
        loop {
            let due = {
                let mut inner = self.lock();
                let due = inner.stage.next_due();
                inner.planned = due;
                due
            };
            match due {
                Some(due) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        () = self.wake.notified() => continue,
                    }
                }
                None => {
                    self.wake.notified().await;
                    continue;
                }
            }
            let mut inner = self.lock();
            for event in inner.stage.tick(clock::now()) {
                let staged = Staged {
                    event,
                    muted: false,
                    original: false,
                };
                inner.deliver(staged, None, None, None);
            }
        }
    }
}

impl Inner {
    fn deliver(
        &mut self,
        staged: Staged,
        timeout: Option<ClientTimeout>,
        intervals: Option<IntervalSummary>,
        stamp: Option<crate::storage::ClusterStamp>,
    ) -> u64 {
        self.last_id += 1;
        let published = Published {
            id: self.last_id,
            event: staged.event,
            timeout,
            muted: staged.muted,
            intervals,
            stamp,
        };
        for sink in &mut self.sinks {
            sink.publish(&published);
        }
        published.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            recovered: false,
            outage: None,
        };
        assert_eq!(pipeline.publish(online.clone(), None), 42);
        assert_eq!(pipeline.publish(online, None), 43);
        let seen: Vec<_> = rx.try_iter().collect();
        assert_eq!(seen, [("a", 42), ("b", 42), ("a", 43), ("b", 43)]);
    }
}
