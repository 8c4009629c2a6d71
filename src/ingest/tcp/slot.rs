//! A connection's place under `server.max_connections`, held by a guard.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::close_reason::CloseReason;
use super::services::TcpServices;

/// One connection's place in the count of open connections, from accept to drop.
///
/// Taken in the accept loop and carried by the socket through the hand-over, the TLS
/// handshake and the connection's whole life, wherever it is driven. Dropping it, on whatever
/// path and thread, gives the place back and counts the close with its reason: the count
/// cannot leak on an early return.
pub(crate) struct Slot {
    services: Arc<TcpServices>,
    reason: Option<CloseReason>,
}

impl Slot {
    /// A place for one more connection, unless `server.max_connections` are open.
    pub(crate) fn take(services: &Arc<TcpServices>) -> Option<Self> {
        let open = services.open.fetch_add(1, Ordering::Relaxed);
        if open >= services.max_connections {
            services.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        services.metrics.connection_opened();
        Some(Self {
            services: services.clone(),
            reason: None,
        })
    }

    /// What every connection shares.
    pub(crate) fn services(&self) -> &Arc<TcpServices> {
        &self.services
    }

    /// Records why the connection ends (the first reason given wins).
    pub(crate) fn close_reason(&mut self, reason: CloseReason) {
        self.reason.get_or_insert(reason);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.services.open.fetch_sub(1, Ordering::Relaxed);
        let reason = self.reason.unwrap_or(CloseReason::Eof);
        self.services.metrics.connection_closed();
        self.services.metrics.session_closed(reason);
        log::debug!("connection closed ({reason})");
    }
}
