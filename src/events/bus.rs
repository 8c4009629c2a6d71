//! Fan-out of [`Event`]s to subscribers.

use std::sync::{Arc, RwLock};

use actix::Recipient;

use super::event::Event;
use super::sink::{Published, Sink};

/// The actors of an embedding application that receive every [`Event`]: the sink that turns
/// transitions into actix messages.
///
/// Publishing is a `do_send` to each live recipient: it never blocks the registry and never
/// drops an event for a live subscriber (actix mailboxes take `do_send` past their capacity).
/// Subscribers whose actor has stopped are pruned on the next publish. Cloning shares the
/// list: a recipient subscribed through any clone receives every later event.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<RwLock<Vec<Recipient<Event>>>>,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber; it receives every event published from now on.
    pub fn subscribe(&self, subscriber: Recipient<Event>) {
        self.subscribers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(subscriber);
    }

    /// Delivers `event` to every live subscriber.
    pub(crate) fn deliver(&self, event: &Event) {
        let mut saw_dead = false;
        {
            let subscribers = self.subscribers.read().unwrap_or_else(|e| e.into_inner());
            for subscriber in subscribers.iter() {
                if subscriber.connected() {
                    subscriber.do_send(event.clone());
                } else {
                    saw_dead = true;
                }
            }
        }
        if saw_dead {
            self.subscribers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(Recipient::connected);
        }
    }

    /// How many subscribers are registered (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether nobody listens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Sink for EventBus {
    fn publish(&mut self, published: &Published) {
        if !published.muted {
            self.deliver(&published.event);
        }
    }
}
