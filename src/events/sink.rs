//! The one interface through which transitions leave the registry.

use super::event::Event;
use crate::supervision::IntervalSummary;
use std::time::Duration;

/// A transition as every sink sees it: numbered, in the order the registry decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's place in this server's order: 1, 2, 3, ... across restarts when the event
    /// log is on. It is the event log's `seq`, the event stream's `id:` and the webhooks'
    /// delivery id.
    pub id: u64,
    /// What happened.
    pub event: Event,
    /// The client's watchdog timeout, for an `online` event (recovery needs it), and whether
    /// the client asked for it (a defaulted timeout follows the server's default after a
    /// restart).
    pub timeout: Option<ClientTimeout>,
    /// Recorded but not announced: a transition of a flapping client. The event log (and the
    /// history, and a sink that replicates state) keep it; the server log, the event stream,
    /// the subscribers and the webhooks leave it out.
    pub muted: bool,
    /// For an `offline` event, the client's recent heartbeat intervals, for the event log and
    /// the history (the public event carries only their mean, in its evidence).
    pub intervals: Option<IntervalSummary>,
    /// In cluster mode, the claim's fencing token (and the lost node of an adopted client):
    /// the event log keeps it, as the durable outbox of transitions on their way to Redis.
    pub stamp: Option<crate::storage::ClusterStamp>,
}

/// A client's watchdog timeout and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientTimeout {
    /// The timeout in force.
    pub timeout: Duration,
    /// Whether the client asked for it with `timeout_ms` (otherwise it is the server's
    /// default).
    pub requested: bool,
}

/// A consumer of transitions: the event log, the server log, the HTTP event stream, the
/// subscribers of an embedding application, and whatever comes next (a cluster publisher).
///
/// The registry calls every sink, in the order they were added, for every transition, inside
/// the handler that decided it: a sink sees the events of one client in the order they
/// happened, and a query made after a sink saw an event sees the state it announced. So a sink
/// must not block: queue the event (a channel, an actor's mailbox, a broadcast) and do slow
/// work elsewhere.
pub trait Sink: Send + 'static {
    /// Takes one transition.
    fn publish(&mut self, event: &Published);
}
