//! Accepting connections and spreading them over the session arbiters.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::ArbiterHandle;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::connection::Connection;
use super::connection_task::serve;
use super::services::TcpServices;
use super::slot::Slot;
use super::tls_handshake::accept_tls;
use crate::config::SessionConfig;
use crate::protocol::{ErrorCode, Reply};

/// How long to pause accepting after an error such as "too many open files", so that a full
/// file table turns into a slower accept rate instead of a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// At most one accept-error warning per this period: a full file table would otherwise log
/// twenty lines a second.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Binds `addr` with a listen backlog of `backlog`. tokio's `TcpListener::bind` uses 128, which
/// overflows when thousands of clients connect at once (they then wait seconds for a SYN retry).
/// With `reuse_port` (`server.reuse_port`), SO_REUSEPORT lets several processes bind the same
/// port, and the kernel spreads new connections over them: several cluster nodes on one machine
/// behind one address.
pub(crate) fn bind(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts forever, handing each connection to the next arbiter in turn. Runs until its task
/// is aborted (which drops the listener and closes the port).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    arbiters: Vec<ArbiterHandle>,
    services: Arc<TcpServices>,
) {
    let mut next = 0usize;
    let mut warned: Option<(crate::clock::Instant, u64)> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(slot) = Slot::take(&services) else {
                    refuse(stream, peer, &services);
                    continue;
                };
                let arbiter = &arbiters[next % arbiters.len()];
                next = next.wrapping_add(1);
                hand_over(stream, peer, arbiter, slot);
            }
            // The peer gave up before we accepted: nothing to do.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                let now = crate::clock::now();
                match &mut warned {
                    Some((since, suppressed)) if now.duration_since(*since) < ACCEPT_WARN_EVERY => {
                        *suppressed += 1;
                    }
                    _ => {
                        let suppressed = warned.map_or(0, |(_, n)| n);
                        log::warn!(
                            "accept failed: {e} (pausing accepts {}ms; {suppressed} similar errors not logged)",
                            ACCEPT_ERROR_PAUSE.as_millis()
                        );
                        warned = Some((now, 0));
                    }
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Past `server.max_connections`: one error line, if the socket takes it at once, and close.
/// With TLS on, only the close: a plaintext line would reach a TLS client as a corrupt
/// handshake, and a handshake to say "full" would spend on the peer what the limit saves.
fn refuse(stream: TcpStream, peer: SocketAddr, services: &TcpServices) {
    let reply = Reply::error(
        ErrorCode::TooManyConnections,
        format!(
            "the server holds its maximum of {} connections",
            services.max_connections
        ),
    );
    let plaintext = services.tls.is_none();
    if let Some(mut line) = serde_json::to_vec(&reply).ok().filter(|_| plaintext) {
        line.push(b'\n');
        // A fresh socket's send buffer takes a short line whole; if not, closing says enough.
        let _ = stream.try_write(&line);
    }
    services.metrics.frame_error(ErrorCode::TooManyConnections);
    log::debug!("refused connection from {peer}: too many connections");
}

/// TCP keepalive and `TCP_USER_TIMEOUT`: the kernel's own dead-peer detection, under the
/// application heartbeat (see `[session]` in config/default.toml for why it is not enough).
fn tune(stream: &TcpStream, config: &SessionConfig) -> io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    if !config.keepalive.is_zero() {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(config.keepalive)
            .with_interval(config.keepalive_interval)
            .with_retries(config.keepalive_retries);
        socket.set_tcp_keepalive(&keepalive)?;
    }
    #[cfg(target_os = "linux")]
    if !config.user_timeout.is_zero() {
        socket.set_tcp_user_timeout(Some(config.user_timeout))?;
    }
    Ok(())
}

/// Moves an accepted socket to `arbiter`'s thread: a tokio socket is bound to the reactor of
/// the thread that registered it, so it travels as a std socket and is registered again there,
/// with its slot. A TLS connection is tuned here like any other (the options belong to the
/// TCP socket) and does its handshake on that thread. Whatever goes wrong, dropping the slot
/// gives its place back.
fn hand_over(stream: TcpStream, peer: SocketAddr, arbiter: &ArbiterHandle, slot: Slot) {
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("set_nodelay for {peer}: {e}");
    }
    if let Err(e) = tune(&stream, &slot.services().session) {
        log::debug!("socket options for {peer}: {e}");
    }
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("could not hand over connection from {peer}: {e}");
            return;
        }
    };
    let spawned = arbiter.spawn(async move {
        match TcpStream::from_std(std_stream) {
            Ok(stream) => match slot.services().tls.clone() {
                // Served by a task of this arbiter (custom handlers' futures are not `Send`).
                None => drop(actix_rt::spawn(serve(Connection::plain(
                    stream, peer, slot,
                )))),
                Some(tls) => accept_tls(stream, peer, tls, slot).await,
            },
            Err(e) => log::warn!("could not register connection from {peer}: {e}"),
        }
    });
    if !spawned {
        // The arbiter is stopping (shutdown): the task, its socket and its slot were dropped.
        log::debug!("connection from {peer} dropped: shutting down");
    }
}
