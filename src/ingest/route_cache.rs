//! The actors of the clients an ingest without connections has delivered to recently.
//!
//! A TCP connection remembers the actor of the client it beats for ([`Route`]), so that its
//! next heartbeats go straight to that actor instead of through the registry. An HTTP request
//! or a UDP datagram has no connection to remember it in, so the ingest keeps the routes of
//! its recent clients here, bounded (`ingest.route_cache`, the least recently used forgotten
//! first). A forgotten or stale route costs nothing but a trip through the registry:
//! [`crate::supervision::Heartbeats::deliver`] falls back to it when the actor refuses.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::protocol::Proj;
use crate::supervision::Route;

/// Routes by `proj`. A route is taken out for the length of one delivery and put back after
/// it (a second delivery for the same client meanwhile goes through the registry), so the
/// cache holds each route in one place and a hit allocates nothing.
pub(crate) struct RouteCache {
    routes: LruCache<Proj, Option<Box<Route>>>,
}

impl RouteCache {
    /// Room for `capacity` clients.
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            routes: LruCache::new(capacity),
        }
    }

    /// The route to `proj`'s actor, if one is known and not in use.
    pub(crate) fn take(&mut self, proj: &Proj) -> Option<Box<Route>> {
        self.routes.get_mut(proj).and_then(Option::take)
    }

    /// Remembers the route a delivery for `proj` returned; `None` forgets it.
    pub(crate) fn keep(&mut self, proj: Proj, route: Option<Box<Route>>) {
        match route {
            Some(route) => match self.routes.get_mut(&proj) {
                Some(slot) => *slot = Some(route),
                None => {
                    self.routes.put(proj, Some(route));
                }
            },
            None => {
                self.routes.pop(&proj);
            }
        }
    }

    /// Forgets `proj`'s route (it went offline).
    pub(crate) fn forget(&mut self, proj: &Proj) {
        self.routes.pop(proj);
    }

    /// Whether a route to `proj` is remembered (and not in use).
    #[cfg(test)]
    pub(crate) fn knows(&self, proj: &Proj) -> bool {
        self.routes.peek(proj).is_some_and(Option::is_some)
    }
}
