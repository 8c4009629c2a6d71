//! The heartbeat client actor: beats, notices when the server is gone, reconnects.

use std::net::SocketAddr;
use std::time::Duration;

use actix::io::{FramedWrite, WriteHandler};
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    ResponseFuture, Running, SpawnHandle, StreamHandler, WrapFuture,
};
use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

use super::backoff::Backoff;
use super::config::ClientConfig;
use super::event::{ClientEvent, DownReason};
use crate::clock::{self, Instant};
use crate::protocol::{
    ClientFrame, EncodeError, ErrorCode, FrameDecoder, FrameError, LineEncoder, Reply,
    MAX_PROJ_BYTES,
};
use crate::tls::ClientTls;

/// Longest frame the client accepts from a server (acks and pings are under 200 bytes).
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Leave: send `offline`, wait up to `offline_wait` for its ack, stop. Answers once stopped.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// The write half of a plaintext or a TLS connection. A client writes one heartbeat every few
/// seconds, so one indirection per write buys a single code path for both.
type BoxedWrite = Box<dyn AsyncWrite + Unpin>;

struct Connection {
    writer: FramedWrite<ClientFrame, BoxedWrite, LineEncoder>,
    reader: SpawnHandle,
}

/// A connected socket, before it is split into the reader and the writer.
enum Link {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A failed connect attempt, reported as the server being down.
type ConnectFailure = (DownReason, String);

/// The heartbeat being waited for.
struct Outstanding {
    seq: u64,
    sent: Instant,
}

/// Keeps one connection to a heartwatch server and beats on it.
///
/// Every `interval` (± jitter) it sends a heartbeat with a rising `seq` and waits `ack_timeout`
/// for its ack. A missed ack is retried at once; after `retries` misses in a row, or at once on
/// a refused, reset or closed connection, it reports the server down, drops the connection and
/// reconnects after an exponential backoff with full jitter. It answers server pings. One timer
/// at a time: the next beat, or the ack deadline, or the reconnect delay.
pub struct HeartbeatClient {
    config: ClientConfig,
    events: Recipient<ClientEvent>,
    connection: Option<Connection>,
    connecting: Option<SpawnHandle>,
    backoff: Backoff,
    next_seq: u64,
    outstanding: Option<Outstanding>,
    misses: u32,
    /// The interval the server suggested in its last ack.
    suggested: Option<Duration>,
    timer: Option<SpawnHandle>,
    /// Guards against a cancelled timer that still runs (actix#284).
    generation: u64,
    leaving: Option<Leaving>,
}

/// Set once [`Shutdown`] is received.
struct Leaving {
    /// The `seq` of the `offline` sent, if a connection was up.
    seq: Option<u64>,
    acked: bool,
    done: Option<oneshot::Sender<()>>,
}

impl HeartbeatClient {
    /// A client that reports to `events`. Start it with `Actor::start`.
    pub fn new(config: ClientConfig, events: Recipient<ClientEvent>) -> Self {
        let backoff = Backoff::new(config.backoff_initial, config.backoff_max);
        debug_assert!(config.proj.as_str().len() <= MAX_PROJ_BYTES);
        Self {
            config,
            events,
            connection: None,
            connecting: None,
            backoff,
            next_seq: 1,
            outstanding: None,
            misses: 0,
            suggested: None,
            timer: None,
            generation: 0,
            leaving: None,
        }
    }

    fn emit(&self, event: ClientEvent) {
        self.events.do_send(event);
    }

    /// Runs `f` after `delay`, replacing the pending timer.
    fn schedule(
        &mut self,
        delay: Duration,
        ctx: &mut Context<Self>,
        f: fn(&mut Self, &mut Context<Self>),
    ) {
        self.cancel_timer(ctx);
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        self.timer = Some(ctx.run_later(delay, move |act, ctx| {
            if act.generation == generation {
                act.timer = None;
                f(act, ctx);
            }
        }));
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.generation = self.generation.wrapping_add(1);
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let server = self.config.server.clone();
        let limit = self.config.connect_timeout;
        let tls = self.config.tls.clone();
        let attempt = async move { tokio::time::timeout(limit, open(server, tls)).await };
        self.connecting = Some(ctx.spawn(attempt.into_actor(self).map(|result, act, ctx| {
            act.connecting = None;
            match result {
                Ok(Ok((server, link))) => act.connected(server, link, ctx),
                Ok(Err((reason, detail))) => act.down(reason, detail, ctx),
                Err(_) => act.down(
                    DownReason::ConnectTimeout,
                    format!(
                        "no connection within {}",
                        humantime::format_duration(act.config.connect_timeout)
                    ),
                    ctx,
                ),
            }
        })));
    }

    fn connected(&mut self, server: SocketAddr, link: Link, ctx: &mut Context<Self>) {
        let decoder = || FrameDecoder::new(MAX_REPLY_BYTES);
        let (reader, write): (SpawnHandle, BoxedWrite) = match link {
            Link::Plain(stream) => {
                let (read, write) = stream.into_split();
                let reader = ctx.add_stream(FramedRead::new(read, decoder()));
                (reader, Box::new(write))
            }
            Link::Tls(stream) => {
                let (read, write) = tokio::io::split(*stream);
                let reader = ctx.add_stream(FramedRead::new(read, decoder()));
                (reader, Box::new(write))
            }
        };
        let mut writer = FramedWrite::new(write, LineEncoder::new(MAX_REPLY_BYTES), ctx);
        // Before the first heartbeat; the server answers in order, so there is no need to
        // wait for the welcome: a refused token comes back as `unauthorized` instead of an ack.
        if let Some(token) = &self.config.token {
            writer.write(ClientFrame::Hello {
                token: token.clone(),
                seq: None,
            });
        }
        self.connection = Some(Connection { writer, reader });
        self.backoff.reset();
        self.misses = 0;
        self.emit(ClientEvent::Up { server });
        self.beat(ctx);
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        connection.writer.write(ClientFrame::Heartbeat {
            proj: self.config.proj.clone(),
            seq: Some(seq),
            timeout_ms: self.config.server_timeout.map(crate::clock::millis),
        });
        self.outstanding = Some(Outstanding {
            seq,
            sent: clock::now(),
        });
        let ack_timeout = self.config.ack_timeout;
        self.schedule(ack_timeout, ctx, Self::ack_missed);
    }

    fn ack_missed(&mut self, ctx: &mut Context<Self>) {
        self.outstanding = None;
        self.misses += 1;
        if self.misses >= self.config.retries.max(1) {
            let detail = format!(
                "{} heartbeats in a row unacknowledged after {} each",
                self.misses,
                humantime::format_duration(self.config.ack_timeout)
            );
            return self.down(DownReason::AckTimeout, detail, ctx);
        }
        log::debug!(
            "no ack within the ack timeout ({} missed), retrying",
            self.misses
        );
        self.beat(ctx);
    }

    fn acked(
        &mut self,
        seq: Option<u64>,
        timeout_ms: Option<u64>,
        interval_ms: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(leaving) = &mut self.leaving {
            if seq.is_some() && seq == leaving.seq {
                leaving.acked = true;
                ctx.stop();
            }
            return;
        }
        let Some(outstanding) = self.outstanding.as_ref().filter(|o| Some(o.seq) == seq) else {
            log::debug!("late or unexpected ack {seq:?} ignored");
            return;
        };
        let rtt = outstanding.sent.elapsed();
        let interval = interval_ms.filter(|&ms| ms > 0).map(Duration::from_millis);
        self.emit(ClientEvent::Acked {
            seq: outstanding.seq,
            rtt,
            timeout: Duration::from_millis(timeout_ms.unwrap_or(0)),
            interval,
        });
        if interval.is_some() {
            self.suggested = interval;
        }
        self.outstanding = None;
        self.misses = 0;
        let spread = self.config.jitter.clamp(0.0, 1.0) * (2.0 * fastrand::f64() - 1.0);
        let next = self.interval().mul_f64(1.0 + spread);
        self.schedule(next, ctx, Self::beat);
    }

    /// The time between heartbeats: the server's suggestion, if it is followed and known.
    fn interval(&self) -> Duration {
        match self.suggested {
            Some(suggested) if self.config.follow_server_interval => suggested,
            _ => self.config.interval,
        }
    }

    /// The server asked to wait `after` (overloaded, starting or stopping): the heartbeat
    /// waiting for its answer got one, and the next comes after that delay.
    fn retry_later(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if self.leaving.is_some() || self.outstanding.take().is_none() {
            return;
        }
        self.misses = 0;
        self.schedule(after, ctx, Self::beat);
    }

    /// Drops the connection, reports why, and schedules a reconnect.
    fn down(&mut self, reason: DownReason, detail: String, ctx: &mut Context<Self>) {
        self.drop_connection(ctx);
        self.outstanding = None;
        if self.leaving.is_some() {
            return ctx.stop();
        }
        self.emit(ClientEvent::Down { reason, detail });
        let delay = self.backoff.next_delay();
        self.emit(ClientEvent::Reconnecting { delay });
        self.schedule(delay, ctx, Self::connect);
    }

    fn drop_connection(&mut self, ctx: &mut Context<Self>) {
        if let Some(connection) = self.connection.take() {
            ctx.cancel_future(connection.reader);
            ctx.cancel_future(connection.writer.handle());
        }
    }
}

/// Connects to `server`, then does the TLS handshake if `tls` is set.
async fn open(
    server: String,
    tls: Option<ClientTls>,
) -> Result<(SocketAddr, Link), ConnectFailure> {
    let stream = TcpStream::connect(server)
        .await
        .map_err(|e| (DownReason::ConnectFailed, e.to_string()))?;
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok((peer, Link::Plain(stream)));
    };
    match tls
        .connector()
        .connect(tls.server_name.clone(), stream)
        .await
    {
        Ok(stream) => Ok((peer, Link::Tls(Box::new(stream)))),
        Err(e) => Err((
            DownReason::TlsHandshake,
            format!(
                "TLS handshake with {peer} as {} failed: {e}{}",
                tls.server_name.to_str(),
                crate::tls::hint(&e).map_or(String::new(), |h| format!(" ({h})"))
            ),
        )),
    }
}

impl Actor for HeartbeatClient {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let offline_acked = self.leaving.as_ref().is_some_and(|l| l.acked);
        self.emit(ClientEvent::Stopped { offline_acked });
        if let Some(done) = self.leaving.as_mut().and_then(|l| l.done.take()) {
            let _ = done.send(());
        }
    }
}

impl StreamHandler<Result<Bytes, FrameError>> for HeartbeatClient {
    fn handle(&mut self, item: Result<Bytes, FrameError>, ctx: &mut Context<Self>) {
        let frame = match item {
            Ok(frame) => frame,
            Err(e) => return self.down(DownReason::ReadError, e.to_string(), ctx),
        };
        let line = frame.trim_ascii();
        if line.is_empty() {
            return;
        }
        match serde_json::from_slice::<Reply>(line) {
            Ok(Reply::Ack {
                seq,
                timeout_ms,
                interval_ms,
                ..
            }) => self.acked(seq, timeout_ms, interval_ms, ctx),
            Ok(Reply::Ping { seq }) => {
                if let Some(connection) = self.connection.as_mut() {
                    connection.writer.write(ClientFrame::Pong { seq });
                }
            }
            Ok(Reply::Error {
                code: ErrorCode::Unauthorized,
                message,
                ..
            }) => {
                // The server closes the connection after it: report why, not just the close.
                self.emit(ClientEvent::Rejected {
                    code: ErrorCode::Unauthorized,
                    message: message.clone(),
                    retry_after: None,
                });
                self.down(DownReason::Unauthorized, message, ctx);
            }
            Ok(Reply::Error {
                code,
                message,
                retry_after_ms,
            }) => {
                let retry_after = retry_after_ms.map(Duration::from_millis);
                self.emit(ClientEvent::Rejected {
                    code,
                    message,
                    retry_after,
                });
                if let Some(after) = retry_after {
                    self.retry_later(after, ctx);
                }
            }
            Ok(Reply::Welcome { auth, .. }) => {
                log::debug!(
                    "welcome (server authentication {})",
                    if auth { "on" } else { "off" }
                );
            }
            Ok(Reply::Custom(_)) | Err(_) => {
                log::debug!(
                    "ignoring unexpected frame from the server: {}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.down(
            DownReason::ConnectionClosed,
            "the server closed the connection".into(),
            ctx,
        );
    }
}

impl WriteHandler<EncodeError> for HeartbeatClient {
    fn error(&mut self, err: EncodeError, ctx: &mut Context<Self>) -> Running {
        self.down(DownReason::WriteError, err.to_string(), ctx);
        // The actor lives on: it reconnects.
        Running::Continue
    }

    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Shutdown> for HeartbeatClient {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (done, stopped) = oneshot::channel();
        if self.leaving.is_some() {
            // Already leaving: answer when that is done.
            drop(done);
            return Box::pin(async {});
        }
        self.cancel_timer(ctx);
        if let Some(attempt) = self.connecting.take() {
            ctx.cancel_future(attempt);
        }
        let seq = self.connection.as_mut().map(|connection| {
            let seq = self.next_seq;
            connection.writer.write(ClientFrame::Offline {
                proj: self.config.proj.clone(),
                seq: Some(seq),
            });
            seq
        });
        self.next_seq += 1;
        self.leaving = Some(Leaving {
            seq,
            acked: false,
            done: Some(done),
        });
        if seq.is_some() {
            let wait = self.config.offline_wait;
            ctx.run_later(wait, |_, ctx| {
                log::debug!("no ack for offline, leaving anyway");
                ctx.stop();
            });
        } else {
            ctx.stop();
        }
        Box::pin(async move {
            let _ = stopped.await;
        })
    }
}
