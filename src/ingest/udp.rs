//! UDP heartbeats: one datagram is one frame of the protocol, for devices that speak only UDP
//! (`ingest.udp`).
//!
//! A datagram holds one `heartbeat` or `offline` frame (a trailing newline is allowed), with
//! its `token` when authentication is on: there is no connection for a `hello` to
//! authenticate. It is checked as a frame is over TCP (its source's budget first, then its
//! size, its fields, its token) and delivered through the same [`Heartbeats`].
//!
//! Answers (the ack, or the error frame) are sent only with `ingest.udp_ack`: a UDP source
//! address can be forged, and answering a forged address is a reflection attack. Even then, a
//! datagram over its source's budget is counted and never answered, so no address is sent
//! more than `session.max_frame_rate` answers a second, however many datagrams name it.
//!
//! One task on one session arbiter receives (reading, parsing and checking never block); each
//! delivery then runs on its client's session arbiter ([`Dispatcher`]), which sends the
//! answer itself through a clone of the socket (a non-blocking `send_to`: an answer that does
//! not fit in the socket's buffer is dropped, as UDP drops datagrams).
//!
//! [`Heartbeats`]: crate::supervision::Heartbeats

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::answers;
use super::dispatcher::Dispatcher;
use super::source_budgets::SourceBudgets;
use super::{Ingest, IngestConfig, IngestDeps};
use crate::auth::Authenticator;
use crate::clock;
use crate::config::SessionConfig;
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, Proj, Reply, Request, Token};
use crate::supervision::error_code;

/// Largest UDP payload (IPv4: 65,535 bytes less the IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// The receive buffer asked for: room for a burst of thousands of heartbeats (each small
/// datagram takes about 1 KiB of buffer in the kernel). Linux grants at most
/// `net.core.rmem_max` (often 208 KiB, a few hundred datagrams): raise it for larger bursts.
/// A datagram that finds the buffer full is dropped by the kernel (`RcvbufErrors` in
/// /proc/net/snmp), as UDP may.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Pause after a failed receive, so that a socket in a lasting error state cannot spin.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The UDP ingest, bound but not yet receiving: what can fail has been done.
pub(crate) struct BoundUdp {
    socket: UdpSocket,
    local: SocketAddr,
    /// A clone of the socket for the answers, with `ingest.udp_ack`.
    answers: Option<Arc<UdpSocket>>,
    max_sources: NonZeroUsize,
    route_cache: usize,
}

/// The running UDP ingest.
pub(crate) struct UdpIngest {
    local: SocketAddr,
    /// Dropped to stop the receiver.
    stop: oneshot::Sender<()>,
    /// Closed once the receiver has stopped (and closed its socket).
    stopped: oneshot::Receiver<()>,
}

/// Binds `addr` for the UDP ingest.
pub(crate) fn bind(addr: SocketAddr, config: &IngestConfig) -> io::Result<BoundUdp> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    let buffer = socket2::SockRef::from(&socket);
    if let Err(e) = buffer.set_recv_buffer_size(RECEIVE_BUFFER) {
        log::debug!("UDP ingest: receive buffer not enlarged: {e}");
    }
    log::debug!(
        "UDP ingest: receive buffer of {} bytes",
        buffer.recv_buffer_size().unwrap_or(0)
    );
    let local = socket.local_addr()?;
    let answers = match config.udp_ack {
        true => Some(Arc::new(socket.try_clone()?)),
        false => None,
    };
    Ok(BoundUdp {
        socket,
        local,
        answers,
        max_sources: NonZeroUsize::new(config.max_sources).unwrap_or(NonZeroUsize::MIN),
        route_cache: config.route_cache,
    })
}

impl BoundUdp {
    /// Where it listens.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts receiving, on the first session arbiter.
    pub(crate) fn run(self, deps: &IngestDeps) -> UdpIngest {
        let receiver = Receiver {
            dispatcher: Dispatcher::new(deps, self.route_cache),
            auth: deps.auth.clone(),
            metrics: deps.metrics.clone(),
            session: deps.session.clone(),
            max_frame_bytes: deps.max_frame_bytes,
            budgets: SourceBudgets::new(self.max_sources),
            answers: self.answers,
        };
        let (stop, stopping) = oneshot::channel();
        let (done, stopped) = oneshot::channel::<()>();
        let socket = self.socket;
        if let Some(home) = deps.arbiters.first() {
            home.spawn(async move {
                receiver.run(socket, stopping).await;
                drop(done);
            });
        }
        UdpIngest {
            local: self.local,
            stop,
            stopped,
        }
    }
}

impl UdpIngest {
    /// Where it listens.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops receiving; returns once the socket is closed.
    pub(crate) async fn stop(self) {
        drop(self.stop);
        let _ = self.stopped.await;
    }
}

/// The receiving task's state.
struct Receiver {
    dispatcher: Dispatcher,
    auth: Option<Arc<Authenticator>>,
    metrics: Arc<Metrics>,
    session: SessionConfig,
    max_frame_bytes: usize,
    budgets: SourceBudgets,
    answers: Option<Arc<UdpSocket>>,
}

impl Receiver {
    async fn run(mut self, socket: UdpSocket, mut stop: oneshot::Receiver<()>) {
        let socket = match tokio::net::UdpSocket::from_std(socket) {
            Ok(socket) => socket,
            Err(e) => {
                log::error!("UDP ingest: cannot receive: {e}");
                return;
            }
        };
        // One byte more than a frame may have, to tell a frame that is too long from one
        // that just fits.
        let mut buf = vec![0u8; (self.max_frame_bytes + 1).min(MAX_DATAGRAM)];
        loop {
            let received = tokio::select! {
                biased;
                _ = &mut stop => return,
                received = socket.recv_from(&mut buf) => received,
            };
            match received {
                Ok((len, from)) => self.on_datagram(&buf[..len], from),
                Err(e) => {
                    log::debug!("UDP ingest: receive failed: {e}");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                }
            }
        }
    }

    /// One datagram: checked, then delivered or refused.
    fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        self.metrics.ingest_request(Ingest::Udp);
        if !self.budgets.take(from.ip(), &self.session, clock::now()) {
            // Counted, never answered: see the module documentation.
            self.metrics
                .ingest_error(Ingest::Udp, ErrorCode::RateLimited);
            return;
        }
        if datagram.len() > self.max_frame_bytes {
            let max = self.max_frame_bytes;
            let message = format!("datagram longer than {max} bytes");
            return self.refuse(from, ErrorCode::FrameTooLarge, message);
        }
        let (request, token) = match Request::parse_with_token(datagram.trim_ascii()) {
            Ok(parsed) => parsed,
            Err(e) => return self.refuse(from, e.code, e.message),
        };
        let delivered = match request {
            Request::Heartbeat {
                proj,
                seq,
                timeout_ms,
            } => {
                let proj = proj.to_proj();
                if let Err(message) = self.authorize(&proj, token.as_ref()) {
                    return self.refuse(from, ErrorCode::Unauthorized, message);
                }
                let answer = self.answer_to(from);
                self.dispatcher
                    .beat(proj, from, timeout_ms, seq, move |result| match result {
                        Ok(ack) => answer.send_reply(ack, None),
                        Err(e) => answer.send_reply(answers::refusal(&e), Some(error_code(&e))),
                    })
            }
            Request::Offline { proj, seq } => {
                let proj = proj.to_proj();
                if let Err(message) = self.authorize(&proj, token.as_ref()) {
                    return self.refuse(from, ErrorCode::Unauthorized, message);
                }
                let answer = self.answer_to(from);
                let ack_proj = proj.clone();
                self.dispatcher.offline(proj, move |result| {
                    answer.send(match result {
                        Ok(_) => Ok(answers::offline_ack(ack_proj, seq)),
                        Err(e) => Err((ErrorCode::Unavailable, e.to_string())),
                    })
                })
            }
            Request::Hello { .. } | Request::Pong { .. } | Request::Custom { .. } => {
                let message = "over UDP a datagram is one heartbeat or offline frame \
                               (with its token, when authentication is on)";
                return self.refuse(from, ErrorCode::UnknownType, message.to_owned());
            }
        };
        if delivered.is_err() {
            let message = "too many heartbeats in flight; retry shortly".to_owned();
            self.refuse(from, ErrorCode::Unavailable, message);
        }
    }

    /// With authentication on: whether the frame's token may act for `proj`.
    fn authorize(&self, proj: &Proj, token: Option<&Token<'_>>) -> Result<(), String> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let token = token.map_or(&b""[..], Token::as_bytes);
        if auth.current().authorize(token, proj.as_str()) {
            return Ok(());
        }
        Err(format!(
            "no valid token for proj {:?} (over UDP each frame carries its token)",
            proj.as_str()
        ))
    }

    fn answer_to(&self, to: SocketAddr) -> Answer {
        Answer {
            socket: self.answers.clone(),
            to,
            metrics: self.metrics.clone(),
        }
    }

    /// Counts a refused datagram and answers it (with `ingest.udp_ack`).
    fn refuse(&self, to: SocketAddr, code: ErrorCode, message: String) {
        self.answer_to(to).send(Err((code, message)));
    }
}

/// Where the answer to one datagram goes, if anywhere.
struct Answer {
    socket: Option<Arc<UdpSocket>>,
    to: SocketAddr,
    metrics: Arc<Metrics>,
}

impl Answer {
    /// Counts an error, and sends the reply (with `ingest.udp_ack`): the JSON line the frame
    /// would get over TCP. The error is counted after the send, so that a test that sees the
    /// count knows an answer, if any, is already on its way.
    fn send(self, reply: Result<Reply, (ErrorCode, String)>) {
        match reply {
            Ok(reply) => self.send_reply(reply, None),
            Err((code, message)) => self.send_reply(Reply::error(code, message), Some(code)),
        }
    }

    /// Sends `reply` (with `ingest.udp_ack`), and counts `error` if it is one.
    fn send_reply(self, reply: Reply, error: Option<ErrorCode>) {
        if let Some(socket) = &self.socket {
            // Replies are plain data: serializing cannot fail.
            let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
            bytes.push(b'\n');
            if let Err(e) = socket.send_to(&bytes, self.to) {
                log::debug!("UDP ingest: answer to {} not sent: {e}", self.to);
            }
        }
        if let Some(code) = error {
            self.metrics.ingest_error(Ingest::Udp, code);
        }
    }
}
