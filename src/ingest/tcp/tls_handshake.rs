//! The server side of a TLS handshake, run on the connection's arbiter before it is served.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::close_reason::CloseReason;
use super::connection::Connection;
use super::connection_task::serve;
use super::services::TlsAcceptor;
use super::slot::Slot;

/// Completes the handshake within `tls.handshake_timeout`, then serves the connection.
///
/// It runs as a task on the arbiter that will own the connection, never in the accept loop,
/// so a slow or silent handshaker delays nobody but itself. A failure is a close like any
/// other: the socket and its slot are dropped, and
/// `heartwatch_sessions_closed_total{reason="tls_handshake"}` goes up by one.
pub(crate) async fn accept_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    mut slot: Slot,
) {
    let failure =
        match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                actix_rt::spawn(serve(Connection::tls(stream, peer, slot)));
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "not complete within {}",
                humantime::format_duration(tls.handshake_timeout)
            ),
        };
    slot.close_reason(CloseReason::TlsHandshake);
    log::debug!("TLS handshake with {peer} failed: {failure}");
}
