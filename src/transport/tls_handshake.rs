//! The server side of a TLS handshake, run on the session's arbiter before its session starts.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::close_reason::CloseReason;
use super::session::{Session, SessionServices, TlsAcceptor};

/// Completes the handshake within `tls.handshake_timeout`, then starts the session.
///
/// It runs as a task on the arbiter that will own the session, never in the accept loop, so a
/// slow or silent handshaker delays nobody but itself. A failure is a close like any other: the
/// socket is dropped, the connection no longer counts against `server.max_connections`, and
/// `heartwatch_sessions_closed_total{reason="tls_handshake"}` goes up by one.
pub(crate) async fn accept_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    services: Arc<SessionServices>,
) {
    let failure =
        match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => return Session::start_tls(stream, peer, services),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "not complete within {}",
                humantime::format_duration(tls.handshake_timeout)
            ),
        };
    services.open.fetch_sub(1, Ordering::Relaxed);
    services.metrics.session_closed(CloseReason::TlsHandshake);
    log::debug!("TLS handshake with {peer} failed: {failure}");
}
