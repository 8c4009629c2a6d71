//! The session: one actor per TCP connection, speaking protocol v1.

use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::io::{FramedWrite, WriteHandler};
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Running, SpawnHandle,
    StreamHandler, WrapFuture,
};
use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::close_reason::CloseReason;
use super::frame_budget::FrameBudget;
use super::tls_write::TlsWrite;
use crate::auth::{Authenticator, ConnectionAuth, Scope};
use crate::clock::{self, Instant};
use crate::config::SessionConfig;
use crate::extension::{CustomFrame, HandlerContext, Handlers};
use crate::metrics::Metrics;
use crate::protocol::{
    EncodeError, ErrorCode, FrameDecoder, FrameError, LineEncoder, Proj, Reply, Request, Token,
};
use crate::supervision::{Beat, BeatError, BeatRequest, Monitor, RegistryHandle};

/// Initial read buffer of a connection. tokio-util's default (8 KiB) would cost about 6 KiB of
/// RSS per idle client; heartbeats are under 100 bytes and the buffer grows when needed.
const INITIAL_READ_CAPACITY: usize = 128;

/// How long a closing session may take to flush its last replies before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What every session shares.
pub(crate) struct SessionServices {
    pub registry: RegistryHandle,
    pub handlers: Handlers,
    pub metrics: Arc<Metrics>,
    pub max_frame_bytes: usize,
    pub max_write_backlog: usize,
    pub session: SessionConfig,
    /// Connections accepted and not yet closed (for `server.max_connections`).
    pub open: AtomicUsize,
    pub max_connections: usize,
    /// The protocol tokens; `None` when authentication is off.
    pub auth: Option<Arc<Authenticator>>,
    /// Set when the heartbeat listener serves TLS.
    pub tls: Option<TlsAcceptor>,
}

/// A TLS session's write half: the TLS stream is split with a lock shared by both halves,
/// which only TLS connections pay for.
pub type TlsWriteHalf = TlsWrite;

/// What the accept side needs to run TLS handshakes.
#[derive(Clone)]
pub(crate) struct TlsAcceptor {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub handshake_timeout: Duration,
}

/// One connection. It answers every frame, in order: while a frame is being handled
/// (`ctx.wait`), the next one is not read, which also bounds the work one connection can queue.
/// It keeps the address of the monitor of the last `proj` it carried, so steady-state
/// heartbeats go straight to the monitor, on the same arbiter, without the registry.
///
/// Generic over the socket's write half (the read half is a stream of the context and needs
/// no type here), so that a plaintext session is exactly the code it was before TLS, with its
/// lock-free `OwnedWriteHalf`, and a TLS session is a second instance ([`TlsWriteHalf`]), not
/// a branch or an indirection on every read and write.
pub struct Session<W: AsyncWrite + Unpin + 'static = OwnedWriteHalf> {
    peer: SocketAddr,
    services: Arc<SessionServices>,
    writer: FramedWrite<Reply, W, LineEncoder>,
    monitor: Option<(Proj, Addr<Monitor>)>,
    /// When the last frame arrived: the base of the idle probe.
    last_read: Instant,
    /// The pending first-frame deadline, until the first frame arrives.
    first_frame: Option<SpawnHandle>,
    probe: Probe,
    /// Frames this connection may still send at once (`session.max_frame_rate`).
    budget: FrameBudget,
    /// Why the session is ending, once it is known (counted in metrics when it stops).
    close_reason: Option<CloseReason>,
    closing: bool,
    /// What this connection has proved, when authentication is on. Boxed: with it off, a
    /// session carries one null pointer more and no check runs.
    access: Option<Box<ConnectionAuth>>,
    /// Set on close, for a TLS session: its writer then ends the stream with `close_notify`
    /// (see [`TlsWrite`]).
    close_notify: Option<Rc<Cell<bool>>>,
}

/// The server-initiated heartbeat of one connection (`session.idle_ping`).
///
/// One timer at a time and no work per frame: a frame only records `last_read`; the timer,
/// when it fires, compares and re-arms itself for the remaining time. So a busy connection
/// costs one wake-up per `idle_ping`, and probing off costs nothing.
#[derive(Default)]
struct Probe {
    timer: Option<SpawnHandle>,
    /// Guards against a cancelled timer that still runs (actix#284), as in the monitor.
    generation: u64,
    /// The ping waiting for an answer, and how many went unanswered before it.
    waiting: Option<(u64, u32)>,
    next_seq: u64,
}

impl Session {
    /// Starts a session for a plaintext `stream` on the current arbiter.
    pub(crate) fn start(stream: TcpStream, peer: SocketAddr, services: Arc<SessionServices>) {
        let (read, write) = stream.into_split();
        Session::launch(read, write, None, peer, services);
    }
}

impl Session<TlsWriteHalf> {
    /// Starts a session for an established TLS `stream` on the current arbiter.
    pub(crate) fn start_tls(
        stream: tokio_rustls::server::TlsStream<TcpStream>,
        peer: SocketAddr,
        services: Arc<SessionServices>,
    ) {
        let (read, write) = tokio::io::split(stream);
        let write = TlsWrite::new(write);
        let close_notify = Some(write.closer());
        Session::launch(read, write, close_notify, peer, services);
    }
}

impl<W: AsyncWrite + Unpin + 'static> Session<W> {
    fn launch<R: AsyncRead + Unpin + 'static>(
        read: R,
        write: W,
        close_notify: Option<Rc<Cell<bool>>>,
        peer: SocketAddr,
        services: Arc<SessionServices>,
    ) {
        Session::create(move |ctx| {
            ctx.add_stream(FramedRead::with_capacity(
                read,
                FrameDecoder::new(services.max_frame_bytes).with_read_space(INITIAL_READ_CAPACITY),
                INITIAL_READ_CAPACITY,
            ));
            let writer = FramedWrite::new(write, LineEncoder::new(services.max_write_backlog), ctx);
            let access = services
                .auth
                .clone()
                .map(|auth| Box::new(ConnectionAuth::new(auth)));
            Session {
                peer,
                budget: FrameBudget::full(&services.session, clock::now()),
                services,
                writer,
                monitor: None,
                last_read: clock::now(),
                first_frame: None,
                probe: Probe::default(),
                close_reason: None,
                closing: false,
                access,
                close_notify,
            }
        });
    }

    fn on_frame(&mut self, frame: Bytes, ctx: &mut Context<Self>) {
        if self.closing {
            // Refused as unauthorized: nothing read after that is acted on.
            return;
        }
        self.last_read = clock::now();
        // With authentication on, only an admitted frame meets the first-frame deadline
        // (`admit`), so that a peer without a token cannot hold a connection with blank lines.
        if self.access.is_none() {
            if let Some(deadline) = self.first_frame.take() {
                ctx.cancel_future(deadline);
            }
        }
        if self.probe.waiting.is_some() {
            // Any frame proves the peer alive, not only the pong.
            self.probe.waiting = None;
            let idle_ping = self.services.session.idle_ping;
            self.arm_probe(idle_ping, ctx);
        }
        // Liveness above counts every frame; the work below is what the budget limits.
        if !self.budget.take(&self.services.session, self.last_read) {
            let rate = self.services.session.max_frame_rate;
            return self.reply_error(
                ErrorCode::RateLimited,
                format!("more than {rate} frames per second; frame dropped"),
            );
        }
        let line = frame.trim_ascii();
        if line.is_empty() {
            return;
        }
        let (request, token) = match Request::parse_with_token(line) {
            Ok(parsed) => parsed,
            Err(e) => return self.reply_error(e.code, e.message),
        };
        match request {
            Request::Heartbeat {
                proj,
                seq,
                timeout_ms,
            } => {
                if self.admit(Scope::Proj(&proj), token.as_ref(), ctx) {
                    self.heartbeat(proj, seq, timeout_ms, ctx);
                }
            }
            Request::Offline { proj, seq } => {
                if self.admit(Scope::Proj(&proj), token.as_ref(), ctx) {
                    self.offline(proj, seq, ctx);
                }
            }
            Request::Hello { seq } => {
                if self.admit(Scope::Hello, token.as_ref(), ctx) {
                    let auth = self.access.is_some();
                    self.writer.write(Reply::Welcome { auth, seq });
                }
            }
            // Every frame counts as an answer to a ping (above); this one does nothing else.
            Request::Pong { .. } => {
                self.admit(Scope::Pong, token.as_ref(), ctx);
            }
            Request::Custom { kind, frame } => {
                if !self.admit(Scope::Custom, token.as_ref(), ctx) {
                    return;
                }
                // A handler gets the frame without its token: a handler that logs the frame
                // must not log a secret.
                let text = match token {
                    Some(_) => crate::protocol::without_token(frame),
                    None => frame.to_owned(),
                };
                let frame = CustomFrame {
                    kind: kind.into_owned(),
                    text,
                    peer: self.peer,
                };
                self.custom(frame, ctx);
            }
        }
    }

    /// Whether a frame may proceed: always with authentication off; otherwise if its token or
    /// the connection's covers `scope`. A refused frame gets `unauthorized` and the connection
    /// is closed once that reply is flushed.
    fn admit(
        &mut self,
        scope: Scope<'_>,
        token: Option<&Token<'_>>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some(access) = self.access.as_deref_mut() else {
            return true;
        };
        if access.admits(scope, token) {
            if let Some(deadline) = self.first_frame.take() {
                ctx.cancel_future(deadline);
            }
            return true;
        }
        log::info!(
            "refusing connection from {}: {}",
            self.peer,
            match scope {
                Scope::Proj(proj) => format!("no valid token for proj {:?}", proj.as_str()),
                Scope::Hello => "hello without a valid token".into(),
                Scope::Custom | Scope::Pong => "frame before any valid token".into(),
            }
        );
        self.reply_error(ErrorCode::Unauthorized, scope.refusal());
        self.close(CloseReason::Unauthorized, ctx);
        false
    }

    fn heartbeat(
        &mut self,
        proj: Proj,
        seq: Option<u64>,
        timeout_ms: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let Some((cached_proj, monitor)) = self.monitor.as_ref().filter(|(p, _)| *p == proj) else {
            return self.resolve(proj, seq, timeout_ms, ctx);
        };
        // The steady state: straight to the monitor, on this arbiter, without cloning its
        // address (a clone allocates) and without the registry. Keep the `proj` already
        // cached rather than the one just parsed: one allocation per client, not per beat.
        let proj = cached_proj.clone();
        let beat = Beat {
            addr: self.peer,
            timeout: timeout_ms.map(|ms| self.services.registry.policy().clamp_ms(ms)),
        };
        let request = monitor.send(beat);
        ctx.wait(
            request
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(Ok(ack)) => {
                        act.services.metrics.heartbeat();
                        act.ack(proj, seq, ack.timeout);
                    }
                    // Its client was removed, or it stopped: through the registry.
                    _ => act.resolve(proj, seq, timeout_ms, ctx),
                }),
        );
    }

    /// Delivers a heartbeat through the registry, which creates the client's monitor if it is
    /// not online, and caches that monitor for the next heartbeats.
    fn resolve(
        &mut self,
        proj: Proj,
        seq: Option<u64>,
        timeout_ms: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let registry = self.services.registry.clone();
        let beat = BeatRequest {
            proj: proj.clone(),
            addr: self.peer,
            timeout_ms,
        };
        let delivery = async move { registry.beat(beat, None).await };
        ctx.wait(
            delivery
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(delivered) => {
                        act.ack(proj.clone(), seq, delivered.timeout);
                        act.monitor = Some((proj, delivered.monitor));
                    }
                    Err(e @ BeatError::TooManyClients(_)) => {
                        act.reply_error(ErrorCode::TooManyClients, e.to_string())
                    }
                    Err(e @ BeatError::Unavailable(_)) => {
                        act.reply_error(ErrorCode::Unavailable, e.to_string())
                    }
                }),
        );
    }

    fn ack(&mut self, proj: Proj, seq: Option<u64>, timeout: Duration) {
        self.writer.write(Reply::Ack {
            proj,
            seq,
            timeout_ms: Some(clock::millis(timeout)),
        });
    }

    fn offline(&mut self, proj: Proj, seq: Option<u64>, ctx: &mut Context<Self>) {
        if self.monitor.as_ref().is_some_and(|(p, _)| *p == proj) {
            self.monitor = None;
        }
        let registry = self.services.registry.clone();
        let target = proj.clone();
        let removal = async move { registry.leave(target).await };
        ctx.wait(
            removal
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(_) => act.writer.write(Reply::Ack {
                        proj,
                        seq,
                        timeout_ms: None,
                    }),
                    Err(e) => act.reply_error(ErrorCode::Unavailable, e.to_string()),
                }),
        );
    }

    fn custom(&mut self, frame: CustomFrame, ctx: &mut Context<Self>) {
        let Some(handler) = self.services.handlers.get(&frame.kind) else {
            let message = format!("unknown frame type {:?}", frame.kind);
            return self.reply_error(ErrorCode::UnknownType, message);
        };
        let kind = frame.kind.clone();
        let handler_ctx = HandlerContext {
            registry: self.services.registry.clone(),
        };
        // A panicking user handler must not take down the arbiter and every session on it.
        let started =
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(frame, handler_ctx)));
        let Ok(future) = started else {
            return self.reply_error(ErrorCode::HandlerError, "handler panicked");
        };
        let guarded = AssertUnwindSafe(future).catch_unwind();
        ctx.wait(
            guarded
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(Ok(mut reply)) => {
                        reply.entry("type").or_insert_with(|| Value::String(kind));
                        act.writer.write(Reply::Custom(reply));
                    }
                    Ok(Err(e)) => act.reply_error(ErrorCode::HandlerError, e.message),
                    Err(_) => act.reply_error(ErrorCode::HandlerError, "handler panicked"),
                }),
        );
    }

    fn reply_error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.services.metrics.frame_error(code);
        self.writer.write(Reply::error(code, message));
    }

    /// Schedules the next probe step `after` from now.
    fn arm_probe(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if let Some(timer) = self.probe.timer.take() {
            ctx.cancel_future(timer);
        }
        self.probe.generation = self.probe.generation.wrapping_add(1);
        let generation = self.probe.generation;
        self.probe.timer = Some(ctx.run_later(after, move |act, ctx| {
            if act.probe.generation == generation {
                act.probe.timer = None;
                act.probe_due(ctx);
            }
        }));
    }

    fn probe_due(&mut self, ctx: &mut Context<Self>) {
        let config = &self.services.session;
        let (idle_ping, pong_timeout, retries) =
            (config.idle_ping, config.pong_timeout, config.ping_retries);
        let unanswered = match self.probe.waiting {
            Some((_, missed)) => missed + 1,
            None => {
                let silent = clock::now().saturating_duration_since(self.last_read);
                if silent < idle_ping {
                    return self.arm_probe(idle_ping - silent, ctx);
                }
                0
            }
        };
        if unanswered >= retries {
            log::info!(
                "closing connection from {}: {unanswered} pings unanswered",
                self.peer
            );
            return self.close(CloseReason::Idle, ctx);
        }
        let seq = self.probe.next_seq;
        self.probe.next_seq += 1;
        self.probe.waiting = Some((seq, unanswered));
        self.services.metrics.ping_sent();
        self.writer.write(Reply::Ping { seq });
        self.arm_probe(pong_timeout, ctx);
    }

    /// Flushes what is queued, then stops (or stops anyway after [`CLOSE_GRACE`]).
    fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        self.close_reason.get_or_insert(reason);
        if self.closing {
            return;
        }
        self.closing = true;
        if let Some(close_notify) = &self.close_notify {
            close_notify.set(true);
        }
        self.writer.close();
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }
}

impl<W: AsyncWrite + Unpin + 'static> Actor for Session<W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.services.metrics.connection_opened();
        log::debug!("connection from {}", self.peer);
        let config = &self.services.session;
        if !config.first_frame_timeout.is_zero() {
            self.first_frame = Some(ctx.run_later(config.first_frame_timeout, |act, ctx| {
                log::debug!("closing connection from {}: no frame in time", act.peer);
                act.close(CloseReason::FirstFrame, ctx);
            }));
        }
        if !config.idle_ping.is_zero() {
            let idle_ping = config.idle_ping;
            self.arm_probe(idle_ping, ctx);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.services.open.fetch_sub(1, Ordering::Relaxed);
        let reason = self.close_reason.unwrap_or(CloseReason::Eof);
        self.services.metrics.connection_closed();
        self.services.metrics.session_closed(reason);
        log::debug!("connection from {} closed ({reason})", self.peer);
    }
}

impl<W: AsyncWrite + Unpin + 'static> StreamHandler<Result<Bytes, FrameError>> for Session<W> {
    fn handle(&mut self, item: Result<Bytes, FrameError>, ctx: &mut Context<Self>) {
        match item {
            Ok(frame) => self.on_frame(frame, ctx),
            Err(FrameError::TooLarge { max }) => {
                self.reply_error(
                    ErrorCode::FrameTooLarge,
                    format!("frame longer than {max} bytes; closing the connection"),
                );
                self.close(CloseReason::FrameTooLarge, ctx);
            }
            Err(FrameError::Io(e)) => {
                log::debug!("read from {} failed: {e}", self.peer);
                self.close_reason.get_or_insert(CloseReason::ReadError);
                ctx.stop();
            }
        }
    }

    /// End of input: answer what was read, then close. Not an offline: the watchdog decides.
    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.close(CloseReason::Eof, ctx);
    }
}

impl<W: AsyncWrite + Unpin + 'static> WriteHandler<EncodeError> for Session<W> {
    fn error(&mut self, err: EncodeError, _: &mut Context<Self>) -> Running {
        let reason = match err {
            EncodeError::Backlog { .. } => CloseReason::WriteBacklog,
            _ => CloseReason::WriteError,
        };
        log::debug!("closing connection from {}: {err}", self.peer);
        self.close_reason.get_or_insert(reason);
        Running::Stop
    }
}
