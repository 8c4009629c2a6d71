//! One heartbeat connection: its socket, framing, replies, limits, authentication gate and
//! timers, as a plain struct that a host drives.
//!
//! A connection is not an actor. Until it has delivered a heartbeat it is driven by a small
//! task ([`super::connection_task`]); once it carries a client, that client's actor drives it
//! ([`crate::supervision::Client`]), so that a client's reads, writes and watchdog live in one
//! actor. Both hosts call [`Connection::poll_frame`] for the next frame and
//! [`Connection::on_frame`] to turn it into a [`Step`]; everything the protocol says about a
//! connection (replies in order, limits, the idle probe, closing with a flush) is here, once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::Serialize;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::close_reason::CloseReason;
use super::frame_budget::FrameBudget;
use super::services::TcpServices;
use super::slot::Slot;
use crate::auth::{ConnectionAuth, Grant, Scope};
use crate::clock::{self, Instant};
use crate::extension::CustomFrame;
use crate::ingest::answers;
use crate::protocol::{ErrorCode, FrameDecoder, FrameError, Proj, ProjRef, Reply, Request};
use crate::supervision::{error_code, BeatError, Route};

/// Bytes read from the socket at a time, into a buffer on the stack. A read that holds exactly
/// one whole frame (a heartbeat: the common case) is handled from there; only the rest of a
/// read (a frame cut in two, frames sent back to back) is kept in the connection's buffer,
/// which an idle connection does not hold at all.
const READ_CHUNK: usize = 2048;

/// The reply buffer's first allocation: a heartbeat's ack is under 100 bytes.
const INITIAL_REPLY_CAPACITY: usize = 128;

/// How long a closing connection may take to flush its last replies before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Frames handled in one poll before the host yields, so that one busy connection cannot
/// starve the others on its thread.
pub(crate) const FRAMES_PER_POLL: usize = 32;

/// One frame, copied out of the read buffer: on the stack for any heartbeat, so that reading
/// a frame allocates nothing and the buffer is free for the next read at once.
pub(crate) type Frame = SmallVec<[u8; 256]>;

/// The socket, plaintext or TLS. TLS is boxed: its state is kilobytes anyway, and a plaintext
/// connection should not carry its size.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Io {
    /// Reads into `buf`. A read shorter than `buf` tells tokio the socket is drained, so the
    /// next poll does not try again only to get `EAGAIN`.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        let read = match self {
            Io::Plain(s) => Pin::new(s).poll_read(cx, &mut buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_read(cx, &mut buf),
        };
        read.map_ok(|()| buf.filled().len())
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Io::Plain(_) => Poll::Ready(Ok(())),
            Io::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    /// Ends the stream cleanly: `close_notify` for TLS, a FIN for TCP.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading frames.
    Open,
    /// The peer closed its side: the frames still buffered are answered, then it closes.
    Draining,
    /// Closing: nothing more is read or acted on; the replies queued are flushed, then the
    /// stream is shut down.
    Closing,
}

/// What one frame asks of its host, once the connection has parsed it, checked it against
/// the limits and the authentication gate, and answered what needs no registry (errors,
/// `hello`, `pong`, blank lines).
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// Nothing more to do.
    Done,
    /// A heartbeat to deliver, then ack.
    Heartbeat {
        /// Who beats.
        proj: ProjRef<'a>,
        /// Echoed in the ack.
        seq: Option<u64>,
        /// The client's own timeout, not yet clamped.
        timeout_ms: Option<u64>,
        /// When it was read.
        at: Instant,
    },
    /// An explicit offline, then ack.
    Offline {
        /// Who leaves.
        proj: Proj,
        /// Echoed in the ack.
        seq: Option<u64>,
    },
    /// A frame for a custom handler, with what the connection's tokens allow it.
    Custom(CustomFrame, Grant),
}

/// The answer to a frame that needed work elsewhere: a reply, or an error to count and send.
pub(crate) type Answer = Result<Reply, (ErrorCode, String)>;

/// The timers of a connection, present only while one is needed: the first-frame deadline,
/// the idle probe (`session.idle_ping`), the grace of a closing connection. A connection of a
/// persistent client with probing off has none, and pays one null pointer for them.
struct Timers {
    sleep: Pin<Box<Sleep>>,
    /// When the first frame is due (cleared by the first frame, or the first admitted frame
    /// with authentication on).
    first_frame: Option<Instant>,
    /// When the idle probe next looks at the connection.
    probe: Option<Instant>,
    /// When a closing connection is dropped even if its replies are not flushed.
    grace: Option<Instant>,
}

impl Timers {
    fn next(&self) -> Option<Instant> {
        [self.first_frame, self.probe, self.grace]
            .into_iter()
            .flatten()
            .min()
    }
}

/// One accepted connection. See the module documentation.
pub struct Connection {
    io: Io,
    peer: SocketAddr,
    inbuf: BytesMut,
    decoder: FrameDecoder,
    /// Replies not yet written (empty, without an allocation, while the connection is idle).
    out: Vec<u8>,
    budget: FrameBudget,
    /// What this connection has proved, when authentication is on.
    access: Option<Box<ConnectionAuth>>,
    timers: Option<Box<Timers>>,
    /// When the last frame arrived: the base of the idle probe.
    last_read: Instant,
    /// While a ping waits for an answer: how many went unanswered before it.
    waiting: Option<u32>,
    pings: u64,
    phase: Phase,
    /// The actor of the last client this connection delivered a heartbeat to without hosting
    /// it (a gateway carrying several clients, or a second connection of one client).
    pub(crate) route: Option<Box<Route>>,
    /// Holds the connection's place under `server.max_connections`; records why it closed.
    slot: Slot,
}

impl Connection {
    /// A plaintext connection.
    pub(crate) fn plain(stream: TcpStream, peer: SocketAddr, slot: Slot) -> Self {
        Self::new(Io::Plain(stream), peer, slot)
    }

    /// An established TLS connection.
    pub(crate) fn tls(
        stream: tokio_rustls::server::TlsStream<TcpStream>,
        peer: SocketAddr,
        slot: Slot,
    ) -> Self {
        Self::new(Io::Tls(Box::new(stream)), peer, slot)
    }

    fn new(io: Io, peer: SocketAddr, slot: Slot) -> Self {
        let services = slot.services().clone();
        let now = clock::now();
        let session = &services.session;
        let mut timers = None;
        let first_frame =
            (!session.first_frame_timeout.is_zero()).then(|| now + session.first_frame_timeout);
        let probe = (!session.idle_ping.is_zero()).then(|| now + session.idle_ping);
        if first_frame.is_some() || probe.is_some() {
            let at = [first_frame, probe]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now);
            timers = Some(Box::new(Timers {
                sleep: Box::pin(tokio::time::sleep_until(at)),
                first_frame,
                probe,
                grace: None,
            }));
        }
        log::debug!("connection from {peer}");
        Self {
            io,
            peer,
            inbuf: BytesMut::new(),
            // The space for each read is reserved by `Io::poll_read`, not the decoder.
            decoder: FrameDecoder::new(services.max_frame_bytes).with_read_space(0),
            out: Vec::new(),
            budget: FrameBudget::full(session, now),
            access: services
                .auth
                .clone()
                .map(|auth| Box::new(ConnectionAuth::new(auth))),
            timers,
            last_read: now,
            waiting: None,
            pings: 0,
            phase: Phase::Open,
            route: None,
            slot,
        }
    }

    /// The peer's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// What every connection shares.
    pub(crate) fn services(&self) -> &Arc<TcpServices> {
        self.slot.services()
    }

    /// Drives the connection: writes queued replies, runs its timers, and reads. Returns the
    /// next frame to handle, `Ready(None)` once the connection is finished (closed and flushed,
    /// or failed: drop it), or `Pending`.
    pub(crate) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        self.poll_timers(cx);
        if let Err(reason) = self.poll_write_out(cx) {
            return self.finish(reason);
        }
        match self.phase {
            Phase::Closing => return self.poll_close(cx),
            Phase::Draining => {
                return match self.decoder.last_frame_len(&mut self.inbuf) {
                    Ok(Some(len)) => Poll::Ready(Some(self.take_frame(len))),
                    Ok(None) => {
                        self.close(CloseReason::Eof);
                        self.poll_close(cx)
                    }
                    Err(e) => self.frame_error(e, cx),
                };
            }
            Phase::Open => {}
        }
        loop {
            match self.decoder.next_frame_len(&mut self.inbuf) {
                Ok(Some(len)) => return Poll::Ready(Some(self.take_frame(len))),
                Ok(None) => {}
                Err(e) => return self.frame_error(e, cx),
            }
            let mut chunk = [0u8; READ_CHUNK];
            match self.io.poll_read(cx, &mut chunk) {
                Poll::Pending => {
                    if self.inbuf.is_empty() {
                        // An idle connection holds no read buffer.
                        self.inbuf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    // End of input: answer what was read, then close. Not an offline: only
                    // the watchdog or an explicit offline takes a client offline.
                    self.phase = Phase::Draining;
                    return self.poll_frame(cx);
                }
                Poll::Ready(Ok(n)) => {
                    let read = &chunk[..n];
                    if self.inbuf.is_empty() {
                        if let Some(frame) = self.decoder.whole_frame(read) {
                            return Poll::Ready(Some(Frame::from_slice(frame)));
                        }
                    }
                    self.inbuf.extend_from_slice(read);
                }
                Poll::Ready(Err(e)) => {
                    log::debug!("read from {} failed: {e}", self.peer);
                    return self.finish(CloseReason::ReadError);
                }
            }
        }
    }

    /// Copies the frame of `len` bytes at the front of the read buffer out, and consumes it
    /// with its newline (if it has one: the last frame at end of input may not).
    fn take_frame(&mut self, len: usize) -> Frame {
        let frame = Frame::from_slice(&self.inbuf[..len]);
        self.inbuf.advance((len + 1).min(self.inbuf.len()));
        frame
    }

    fn frame_error(&mut self, e: FrameError, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        match e {
            FrameError::TooLarge { max } => {
                self.error(
                    ErrorCode::FrameTooLarge,
                    format!("frame longer than {max} bytes; closing the connection"),
                );
                self.close(CloseReason::FrameTooLarge);
                self.poll_frame(cx)
            }
            FrameError::Io(e) => {
                log::debug!("read from {} failed: {e}", self.peer);
                self.finish(CloseReason::ReadError)
            }
        }
    }

    /// Checks one frame against the limits and the authentication gate, answers it if it
    /// needs nothing more, and says what else it asks for.
    pub(crate) fn on_frame<'f>(&mut self, frame: &'f [u8]) -> Step<'f> {
        if self.phase == Phase::Closing {
            // Refused as unauthorized, or too large: nothing read after that is acted on.
            return Step::Done;
        }
        let now = clock::now();
        self.last_read = now;
        // Any frame proves the peer alive, not only the pong.
        self.waiting = None;
        // With authentication on, only an admitted frame meets the first-frame deadline
        // (`admit`), so that a peer without a token cannot hold a connection with blank lines.
        if self.access.is_none() {
            self.first_frame_arrived();
        }
        // Liveness above counts every frame; the work below is what the budget limits.
        let services = self.slot.services().clone();
        if !self.budget.take(&services.session, now) {
            let rate = services.session.max_frame_rate;
            self.error(
                ErrorCode::RateLimited,
                format!("more than {rate} frames per second; frame dropped"),
            );
            return Step::Done;
        }
        let line = frame.trim_ascii();
        if line.is_empty() {
            return Step::Done;
        }
        let (request, token) = match Request::parse_with_token(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.error(e.code, e.message);
                return Step::Done;
            }
        };
        match request {
            Request::Heartbeat {
                proj,
                seq,
                timeout_ms,
            } => {
                if !self.admit(Scope::Proj(proj.as_str()), token.as_ref()) {
                    return Step::Done;
                }
                Step::Heartbeat {
                    proj,
                    seq,
                    timeout_ms,
                    at: now,
                }
            }
            Request::Offline { proj, seq } => {
                if !self.admit(Scope::Proj(proj.as_str()), token.as_ref()) {
                    return Step::Done;
                }
                Step::Offline {
                    proj: proj.to_proj(),
                    seq,
                }
            }
            Request::Hello { seq } => {
                if self.admit(Scope::Hello, token.as_ref()) {
                    let auth = self.access.is_some();
                    self.reply(&Reply::Welcome { auth, seq });
                }
                Step::Done
            }
            // Every frame counts as an answer to a ping (above); this one does nothing else.
            Request::Pong { .. } => {
                self.admit(Scope::Pong, token.as_ref());
                Step::Done
            }
            Request::Custom { kind, frame } => {
                if !self.admit(Scope::Custom, token.as_ref()) {
                    return Step::Done;
                }
                let grant = match &self.access {
                    Some(access) => access.grant(token.as_ref()),
                    None => Grant::all(),
                };
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
                Step::Custom(frame, grant)
            }
        }
    }

    /// Whether a frame may proceed: always with authentication off; otherwise if its token or
    /// the connection's covers `scope`. A refused frame gets `unauthorized` and the connection
    /// closes once that reply is flushed.
    fn admit(&mut self, scope: Scope<'_>, token: Option<&crate::protocol::Token<'_>>) -> bool {
        let Some(access) = self.access.as_deref_mut() else {
            return true;
        };
        if access.admits(scope, token) {
            self.first_frame_arrived();
            return true;
        }
        log::info!(
            "refusing connection from {}: {}",
            self.peer,
            match scope {
                Scope::Proj(proj) => format!("no valid token for proj {proj:?}"),
                Scope::Hello => "hello without a valid token".into(),
                Scope::Custom | Scope::Pong => "frame before any valid token".into(),
            }
        );
        self.error(ErrorCode::Unauthorized, scope.refusal());
        self.close(CloseReason::Unauthorized);
        false
    }

    fn first_frame_arrived(&mut self) {
        if let Some(timers) = &mut self.timers {
            timers.first_frame = None;
            if timers.next().is_none() {
                self.timers = None;
            }
        }
    }

    /// Queues the ack of a heartbeat, with the client's timeout and the interval it should
    /// beat at.
    pub(crate) fn ack(&mut self, proj: Proj, seq: Option<u64>, timeout: Duration) {
        let ack = answers::ack(&self.slot.services().heartbeats, proj, seq, timeout);
        self.reply(&ack);
    }

    /// Queues the refusal of a heartbeat that was not delivered (with when to retry, if the
    /// server is overloaded or stopping), and counts it.
    pub(crate) fn refuse(&mut self, e: &BeatError) {
        self.slot.services().metrics.frame_error(error_code(e));
        self.reply(&answers::refusal(e));
    }

    /// Queues the answer to a frame.
    pub(crate) fn answer(&mut self, answer: Answer) {
        match answer {
            Ok(reply) => self.reply(&reply),
            Err((code, message)) => self.error(code, message),
        }
    }

    /// Queues an error reply and counts it.
    pub(crate) fn error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.slot.services().metrics.frame_error(code);
        self.reply(&Reply::error(code, message));
    }

    /// Queues a reply; it is written at the next poll. A peer that lets more than
    /// `server.max_write_backlog` bytes pile up is not reading: its connection is closed.
    pub(crate) fn reply(&mut self, reply: &impl Serialize) {
        let cap = self.slot.services().max_write_backlog;
        if self.out.len() > cap {
            log::debug!(
                "closing connection from {}: peer is not reading ({} bytes queued, the cap is {cap})",
                self.peer,
                self.out.len()
            );
            self.slot.close_reason(CloseReason::WriteBacklog);
            self.phase = Phase::Closing;
            self.out.clear();
            return;
        }
        if self.out.capacity() == 0 {
            self.out.reserve(INITIAL_REPLY_CAPACITY);
        }
        // Replies are plain data: serializing into a Vec cannot fail.
        if serde_json::to_writer(&mut self.out, reply).is_ok() {
            self.out.push(b'\n');
        }
    }

    /// Starts closing: nothing more is read; queued replies are flushed (for at most
    /// [`CLOSE_GRACE`]), then the stream is shut down.
    pub(crate) fn close(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closing {
            return;
        }
        self.slot.close_reason(reason);
        self.phase = Phase::Closing;
        let grace = clock::now() + CLOSE_GRACE;
        match &mut self.timers {
            Some(timers) => {
                timers.first_frame = None;
                timers.probe = None;
                timers.grace = Some(grace);
            }
            None => {
                self.timers = Some(Box::new(Timers {
                    sleep: Box::pin(tokio::time::sleep_until(grace)),
                    first_frame: None,
                    probe: None,
                    grace: Some(grace),
                }))
            }
        }
    }

    /// Writes what is queued; `Err` once the socket has failed.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Result<(), CloseReason> {
        let mut written = 0;
        while written < self.out.len() {
            match self.io.poll_write(cx, &self.out[written..]) {
                Poll::Ready(Ok(0)) => {
                    log::debug!("write to {} failed: wrote nothing", self.peer);
                    return Err(CloseReason::WriteError);
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => {
                    log::debug!("write to {} failed: {e}", self.peer);
                    return Err(CloseReason::WriteError);
                }
                Poll::Pending => break,
            }
        }
        self.out.drain(..written);
        if self.out.is_empty() {
            // An idle connection holds no reply buffer either.
            self.out = Vec::new();
        }
        if let Poll::Ready(Err(e)) = self.io.poll_flush(cx) {
            log::debug!("flush to {} failed: {e}", self.peer);
            return Err(CloseReason::WriteError);
        }
        Ok(())
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        if self.timers.as_ref().and_then(|t| t.grace).is_none() {
            // The grace ran out.
            return Poll::Ready(None);
        }
        if !self.out.is_empty() {
            return Poll::Pending;
        }
        match self.io.poll_shutdown(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(None),
        }
    }

    fn finish(&mut self, reason: CloseReason) -> Poll<Option<Frame>> {
        self.slot.close_reason(reason);
        self.phase = Phase::Closing;
        Poll::Ready(None)
    }

    /// Runs the timers that are due, and leaves the sleep armed for the next one.
    fn poll_timers(&mut self, cx: &mut Context<'_>) {
        loop {
            let Some(timers) = self.timers.as_mut() else {
                return;
            };
            let Some(next) = timers.next() else {
                self.timers = None;
                return;
            };
            if timers.sleep.deadline() != next {
                timers.sleep.as_mut().reset(next);
            }
            if timers.sleep.as_mut().poll(cx).is_pending() {
                return;
            }
            let now = clock::now();
            if timers.grace.is_some_and(|at| at <= now) {
                log::debug!("connection from {}: replies not flushed in time", self.peer);
                timers.grace = None;
                return;
            }
            if timers.first_frame.is_some_and(|at| at <= now) {
                log::debug!("closing connection from {}: no frame in time", self.peer);
                self.close(CloseReason::FirstFrame);
                continue;
            }
            if timers.probe.is_some_and(|at| at <= now) {
                self.probe_due(now);
            }
        }
    }

    /// The idle probe's timer is due: ping a silent connection, or give up on it.
    fn probe_due(&mut self, now: Instant) {
        let config = &self.slot.services().session;
        let (idle_ping, pong_timeout, retries) =
            (config.idle_ping, config.pong_timeout, config.ping_retries);
        let unanswered = match self.waiting {
            Some(missed) => missed + 1,
            None => {
                let silent = now.saturating_duration_since(self.last_read);
                if silent < idle_ping {
                    self.set_probe(now + (idle_ping - silent));
                    return;
                }
                0
            }
        };
        if unanswered >= retries {
            log::info!(
                "closing connection from {}: {unanswered} pings unanswered",
                self.peer
            );
            return self.close(CloseReason::Idle);
        }
        let seq = self.pings;
        self.pings += 1;
        self.waiting = Some(unanswered);
        self.slot.services().metrics.ping_sent();
        self.reply(&Reply::Ping { seq });
        self.set_probe(now + pong_timeout);
    }

    fn set_probe(&mut self, at: Instant) {
        if let Some(timers) = &mut self.timers {
            timers.probe = Some(at);
        }
    }
}
