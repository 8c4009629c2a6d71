//! The session: one actor per TCP connection, speaking protocol v1.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::io::{FramedWrite, WriteHandler};
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Running, StreamHandler,
    WrapFuture,
};
use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::extension::{CustomFrame, HandlerContext, Handlers};
use crate::metrics::Metrics;
use crate::protocol::{
    EncodeError, ErrorCode, FrameDecoder, FrameError, Proj, Reply, ReplyEncoder, Request,
};
use crate::supervision::{BeatRequest, Monitor, RegistryHandle};

/// Initial read buffer of a connection. tokio-util's default (8 KiB) would cost about 6 KiB of
/// RSS per idle client; heartbeats are under 100 bytes and the buffer grows when needed.
const INITIAL_READ_CAPACITY: usize = 256;

/// How long a closing session may take to flush its last replies before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What every session shares.
pub(crate) struct SessionServices {
    pub registry: RegistryHandle,
    pub handlers: Handlers,
    pub metrics: Arc<Metrics>,
    pub max_frame_bytes: usize,
    pub max_write_backlog: usize,
}

/// One connection. It answers every frame, in order: while a frame is being handled
/// (`ctx.wait`), the next one is not read, which also bounds the work one connection can queue.
/// It keeps the address of the monitor of the last `proj` it carried, so steady-state
/// heartbeats go straight to the monitor, on the same arbiter, without the registry.
pub struct Session {
    peer: SocketAddr,
    services: Arc<SessionServices>,
    writer: FramedWrite<Reply, OwnedWriteHalf, ReplyEncoder>,
    monitor: Option<(Proj, Addr<Monitor>)>,
    closing: bool,
}

impl Session {
    /// Starts a session for `stream` on the current arbiter.
    pub(crate) fn start(stream: TcpStream, peer: SocketAddr, services: Arc<SessionServices>) {
        let (read, write) = stream.into_split();
        Session::create(move |ctx| {
            ctx.add_stream(FramedRead::with_capacity(
                read,
                FrameDecoder::new(services.max_frame_bytes),
                INITIAL_READ_CAPACITY,
            ));
            let writer =
                FramedWrite::new(write, ReplyEncoder::new(services.max_write_backlog), ctx);
            Session {
                peer,
                services,
                writer,
                monitor: None,
                closing: false,
            }
        });
    }

    fn on_frame(&mut self, frame: Bytes, ctx: &mut Context<Self>) {
        let line = frame.trim_ascii();
        if line.is_empty() {
            return;
        }
        match Request::parse(line) {
            Err(e) => self.reply_error(e.code, e.message),
            Ok(Request::Heartbeat {
                proj,
                seq,
                timeout_ms,
            }) => self.heartbeat(proj, seq, timeout_ms, ctx),
            Ok(Request::Offline { proj, seq }) => self.offline(proj, seq, ctx),
            Ok(Request::Custom { kind, frame }) => {
                let frame = CustomFrame {
                    kind: kind.into_owned(),
                    text: frame.to_owned(),
                    peer: self.peer,
                };
                self.custom(frame, ctx);
            }
        }
    }

    fn heartbeat(
        &mut self,
        proj: Proj,
        seq: Option<u64>,
        timeout_ms: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let cached = self
            .monitor
            .as_ref()
            .filter(|(p, _)| *p == proj)
            .map(|(_, m)| m.clone());
        let registry = self.services.registry.clone();
        let beat = BeatRequest {
            proj: proj.clone(),
            addr: self.peer,
            timeout_ms,
        };
        let delivery = async move { registry.beat(beat, cached).await };
        ctx.wait(
            delivery
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(delivered) => {
                        act.writer.write(Reply::Ack {
                            proj: proj.clone(),
                            seq,
                            timeout_ms: Some(
                                u64::try_from(delivered.timeout.as_millis()).unwrap_or(u64::MAX),
                            ),
                        });
                        act.monitor = Some((proj, delivered.monitor));
                    }
                    Err(e) => act.reply_error(ErrorCode::Unavailable, e.to_string()),
                }),
        );
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

    /// Flushes what is queued, then stops (or stops anyway after [`CLOSE_GRACE`]).
    fn close(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.writer.close();
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.services.metrics.connection_opened();
        log::debug!("connection from {}", self.peer);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.services.metrics.connection_closed();
        log::debug!("connection from {} closed", self.peer);
    }
}

impl StreamHandler<Result<Bytes, FrameError>> for Session {
    fn handle(&mut self, item: Result<Bytes, FrameError>, ctx: &mut Context<Self>) {
        match item {
            Ok(frame) => self.on_frame(frame, ctx),
            Err(FrameError::TooLarge { max }) => {
                self.reply_error(
                    ErrorCode::FrameTooLarge,
                    format!("frame longer than {max} bytes; closing the connection"),
                );
                self.close(ctx);
            }
            Err(FrameError::Io(e)) => {
                log::debug!("read from {} failed: {e}", self.peer);
                ctx.stop();
            }
        }
    }

    /// End of input: answer what was read, then close. Not an offline: the watchdog decides.
    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.close(ctx);
    }
}

impl WriteHandler<EncodeError> for Session {
    fn error(&mut self, err: EncodeError, _: &mut Context<Self>) -> Running {
        log::debug!("write to {} failed: {err}", self.peer);
        Running::Stop
    }
}
