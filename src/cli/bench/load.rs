//! The load: one task per client, each a persistent connection beating every interval,
//! over plaintext or TLS, with or without a `hello` token.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::config::BenchConfig;
use heartwatch::auth::Secret;
use heartwatch::protocol::ClientFrame;

/// Longest a client's connect (and TLS handshake) may take before it counts as failed.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// When the measured window is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// What every client task reports into.
pub(crate) struct Tally {
    /// Ack latency in microseconds, for heartbeats sent in the window.
    pub latency_us: Mutex<Histogram<u64>>,
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub offered: AtomicU64,
    pub acked: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// The clients that went silent, by `proj`.
    pub silenced: Mutex<Vec<String>>,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
            ),
            established: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            offered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            silenced: Mutex::new(Vec::new()),
        }
    }

    fn error(&self, kind: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind.to_string()).or_insert(0) += 1;
    }
}

/// One client's part in the run.
pub(crate) struct Client {
    pub index: usize,
    pub config: Arc<BenchConfig>,
    pub tally: Arc<Tally>,
    pub window: Window,
    /// When this client goes silent, if it is one of the hung ones.
    pub silence_at: Option<Instant>,
    pub stop: watch::Receiver<bool>,
}

impl Client {
    fn proj(&self) -> String {
        format!("{}{}", self.config.proj_prefix, self.index)
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let server = self.config.server;
        let socket = if server.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if server.ip().is_loopback() && server.is_ipv4() && self.config.sources > 0 {
            // 127.0.0.2, 127.0.0.3, ...: each source address has its own ephemeral ports.
            let host = 2 + (self.index % usize::from(self.config.sources)) as u8;
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// A connection that did not become ready to beat: counted as failed, with its reason.
    fn failed(&self, kind: &str) {
        self.tally.failed.fetch_add(1, Ordering::Relaxed);
        self.tally.error(kind);
    }

    /// Connects (and shakes hands, with TLS), then beats on the connection. The connect and
    /// the handshake share one deadline. Each client is its own task, so a slow handshake
    /// delays only its client, never the ramp.
    pub async fn run(self) {
        let deadline = Instant::now() + CONNECT_LIMIT;
        let stream = match timeout_at(deadline, self.connect()).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return self.failed(&format!("connect: {}", e.kind())),
            Err(_) => return self.failed("connect: timed out"),
        };
        match self.config.tls.clone() {
            None => {
                // Plaintext: the tokio halves, as before TLS existed in the bench.
                let (read, write) = stream.into_split();
                self.beat(read, write).await;
            }
            Some(tls) => {
                let handshake = tls.connector().connect(tls.server_name.clone(), stream);
                match timeout_at(deadline, handshake).await {
                    Ok(Ok(stream)) => {
                        let (read, write) = tokio::io::split(stream);
                        self.beat(read, write).await;
                    }
                    Ok(Err(e)) => self.failed(&handshake_error(&e)),
                    Err(_) => self.failed("tls handshake: timed out"),
                }
            }
        }
    }

    /// Says `hello` if the run has a token, beats until told to stop, then leaves with
    /// `offline` (unless it hung). Generic rather than boxed, so that the plaintext path is
    /// the same code as before TLS.
    async fn beat<R, W>(mut self, read: R, mut write: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut reader = BufReader::with_capacity(512, read);
        let mut line = String::with_capacity(256);
        if let Some(token) = &self.config.token {
            if let Err(kind) = self.hello(token, &mut reader, &mut write, &mut line).await {
                return self.failed(&format!("hello: {kind}"));
            }
        }
        self.tally.established.fetch_add(1, Ordering::Relaxed);
        let proj = self.proj();
        let timeout_ms = self.config.timeout.as_millis();
        let mut frame = String::with_capacity(128);
        let mut seq = 0u64;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = sleep_until(next) => {}
                _ = self.stop.changed() => break,
            }
            if self.silence_at.is_some_and(|at| Instant::now() >= at) {
                // Hung: the socket stays open, nothing more is sent.
                self.tally
                    .silenced
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(proj);
                let _ = self.stop.changed().await;
                return;
            }
            seq += 1;
            frame.clear();
            // Into the reused buffer: the load generator allocates nothing per heartbeat.
            let _ = writeln!(
                frame,
                r#"{{"type":"heartbeat","proj":"{proj}","seq":{seq},"timeout_ms":{timeout_ms}}}"#
            );
            let sent = Instant::now();
            let measured = self.window.contains(sent);
            if measured {
                self.tally.offered.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = send(&mut write, frame.as_bytes()).await {
                self.tally.error(&format!("write: {}", e.kind()));
                return;
            }
            match self.answer(&mut reader, &mut write, &mut line).await {
                Ok(()) => {
                    if measured {
                        let us = sent.elapsed().as_micros() as u64;
                        self.tally.acked.fetch_add(1, Ordering::Relaxed);
                        let mut histogram = self
                            .tally
                            .latency_us
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        let _ = histogram.record(us.max(1));
                    }
                }
                Err(kind) => {
                    self.tally.error(&kind);
                    if kind == "eof" || kind.starts_with("read") {
                        return;
                    }
                }
            }
            let jitter = 1.0 + 0.1 * (2.0 * fastrand::f64() - 1.0);
            next += self.config.interval.mul_f64(jitter);
            let now = Instant::now();
            if next < now {
                next = now;
            }
        }
        let offline = format!("{{\"type\":\"offline\",\"proj\":\"{proj}\"}}\n");
        let _ = send(&mut write, offline.as_bytes()).await;
        // Over TLS, a `close_notify`: without it the server ends the session as a read error.
        let _ = write.shutdown().await;
    }

    /// Sends `{"type":"hello","token":..}` and waits for the `welcome`. Once per connection,
    /// so it may allocate.
    async fn hello<R, W>(
        &self,
        token: &Secret,
        reader: &mut BufReader<R>,
        write: &mut W,
        line: &mut String,
    ) -> Result<(), String>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let hello = ClientFrame::Hello {
            token: token.clone(),
            seq: None,
        };
        let mut frame = serde_json::to_string(&hello).map_err(|e| format!("encode: {e}"))?;
        frame.push('\n');
        send(write, frame.as_bytes())
            .await
            .map_err(|e| format!("write: {}", e.kind()))?;
        self.answer(reader, write, line).await?;
        if line.contains(r#""type":"welcome""#) {
            Ok(())
        } else {
            Err("no welcome".into())
        }
    }

    /// Reads until the answer to the heartbeat just sent; answers pings on the way.
    async fn answer<R, W>(
        &self,
        reader: &mut BufReader<R>,
        write: &mut W,
        line: &mut String,
    ) -> Result<(), String>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            line.clear();
            match timeout(self.config.ack_timeout, reader.read_line(line)).await {
                Err(_) => return Err("ack_timeout".into()),
                Ok(Err(e)) => return Err(format!("read: {}", e.kind())),
                Ok(Ok(0)) => return Err("eof".into()),
                Ok(Ok(_)) => {}
            }
            if line.contains(r#""type":"ping""#) {
                let seq = line
                    .split("\"seq\":")
                    .nth(1)
                    .and_then(|s| {
                        s.trim_end_matches(|c: char| !c.is_ascii_digit())
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0);
                let pong = format!("{{\"type\":\"pong\",\"seq\":{seq}}}\n");
                send(write, pong.as_bytes())
                    .await
                    .map_err(|e| format!("write: {}", e.kind()))?;
                continue;
            }
            if line.contains(r#""type":"error""#) {
                let code = line
                    .split(r#""code":""#)
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("unknown");
                return Err(format!("error: {code}"));
            }
            // An ack, or any line from a server that does not speak the protocol (the echo
            // floor answers with the heartbeat itself).
            return Ok(());
        }
    }
}

/// Writes `bytes` and flushes them. Over plaintext the flush does nothing; over TLS it makes
/// sure the record has left rustls' buffer for the socket.
async fn send<W: AsyncWrite + Unpin>(write: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

/// The error kind of a failed handshake: rustls' reason (e.g. `invalid peer certificate:
/// UnknownIssuer`), or the I/O error's kind (a reset, an end of file).
fn handshake_error(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("tls handshake: {tls}"),
        None => format!("tls handshake: {}", e.kind()),
    }
}
