//! Shared fixtures for the integration tests.
//!
//! - [`TestServer`]: the real server, in process, on ephemeral ports, inside the test's actix
//!   System (`#[actix_rt::test]`). Stop it with `server.stop().await` at the end of every test:
//!   stopping is async and cannot happen in `Drop`, so dropping a server that was not stopped
//!   fails the test (unless the test is already panicking).
//! - [`Client`]: a protocol v1 client (newline-delimited JSON over TCP).
//! - [`http_get`], [`http_send`] and [`EventStream`]: HTTP requests and a server-sent-events
//!   reader, over awc. Tests about the bytes on the wire use raw sockets of their own.
//! - [`EventLog`]: an actix subscriber that collects [`Event`]s for assertions.
//! - [`BinServer`] and [`heartwatch_cmd`]: the built `heartwatch` binary as a child process.
//! - [`outside::outside_program`]: a program the test needs (promtool, ...), or a skip.
//! - [`pki::Pki`]: a CA and a server certificate made at run time (rcgen), for TLS.
//! - [`BeatProcess`]: `heartwatch beat --json -v` as a child process, its lines read live.
//!
//! Every wait is bounded: I/O waits at most [`IO_TIMEOUT`], polls go through [`eventually`].
//! The HTTP helpers use awc, which runs on actix's runtime: tests that use them are
//! `#[actix_rt::test]`.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod hook_recorder;
pub mod outside;
pub mod pki;
pub mod redis;

use std::future::Future;
use std::io::{BufRead, BufReader as StdBufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler, Recipient};
use heartwatch::config::ServerConfig;
use heartwatch::{Builder, Config, Event, Running};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// Longest wait for anything that should happen (a reply, an event, a connect).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between two checks in [`eventually`].
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Waits until `cond` holds, checking every 10 ms for at most `within`; panics naming `what`
/// if it never does.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `data` parsed as JSON, or a panic that shows it.
pub fn parse_json(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or_else(|e| panic!("not JSON ({e}): {data:?}"))
}

/// A heartbeat frame (without its newline).
pub fn heartbeat_frame(proj: &str) -> String {
    json!({"type": "heartbeat", "proj": proj}).to_string()
}

// ---------------------------------------------------------------------------------------------
// In-process server
// ---------------------------------------------------------------------------------------------

/// The server configuration tests start from: the defaults, both listeners on 127.0.0.1 port 0,
/// and no `late` verdicts (`server.late_ratio = 0`): most tests follow a client's `online` and
/// `offline` events, and the tests of late verdicts (`detection_*.rs`) turn them on.
pub fn test_config() -> ServerConfig {
    let mut config = Config::default().server;
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.http = "127.0.0.1:0".parse().expect("address");
    config.late_ratio = 0.0;
    config
}

/// `[flap]` with flap damping off, for tests that churn one client online and offline on
/// purpose and follow every event.
pub fn no_flap_damping() -> heartwatch::config::FlapConfig {
    heartwatch::config::FlapConfig {
        transitions: 0,
        window: Duration::from_secs(600),
    }
}

/// The HTTP API of a running server, in process or a child process (both deref to it).
pub struct Api {
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Api {
    /// `GET path` on the HTTP API.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path).await
    }

    /// `POST path` on the HTTP API with `body` (JSON) or none.
    pub async fn post(&self, path: &str, body: Option<Value>) -> HttpResponse {
        http_post(self.addr, path, body, &[]).await
    }

    /// `GET path` on the HTTP API with the request headers `headers`.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_get_with(self.addr, path, headers).await
    }

    /// The HTTP status of `GET /api/v1/clients/{proj}`.
    pub async fn client_status(&self, proj: &str) -> u16 {
        self.get(&format!("/api/v1/clients/{proj}")).await.status
    }

    /// `GET /api/v1/clients/{proj}`, which must answer 200; the client's JSON record.
    pub async fn client_record(&self, proj: &str) -> Value {
        let response = self.get(&format!("/api/v1/clients/{proj}")).await;
        assert_eq!(response.status, 200, "GET client {proj}: {response:?}");
        response.json()
    }

    /// Clients the server knows now, whatever their state: the sum of the
    /// `heartwatch_clients{state=...}` series.
    pub async fn known_clients(&self) -> f64 {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics: {response:?}");
        metric_sum(&response.body, "heartwatch_clients")
            .unwrap_or_else(|| panic!("no heartwatch_clients in\n{}", response.body))
    }

    /// One series of `GET /metrics`, e.g. `heartwatch_connections` or
    /// `heartwatch_offline_total{reason="timeout"}`; panics if it is not exposed.
    pub async fn metric(&self, series: &str) -> f64 {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics: {response:?}");
        metric_value(&response.body, series)
            .unwrap_or_else(|| panic!("no series {series} in\n{}", response.body))
    }

    /// Asserts that `proj` is online at a moment before `online_until` (before which its
    /// watchdog cannot have fired), and returns its record. An answer of 200 is conclusive
    /// whenever it comes, and must be the record of an online `proj`; a 404 that comes before
    /// `online_until` fails the test; a 404 that comes later proves nothing either way, and
    /// is returned as [`TooLate`], which the test must not ignore: [`retry_when_late`] runs
    /// its scenario again with longer timeouts.
    pub async fn assert_online_until(
        &self,
        proj: &str,
        online_until: Instant,
    ) -> Result<Value, TooLate> {
        let response = self.get(&format!("/api/v1/clients/{proj}")).await;
        let answered = Instant::now();
        match response.status {
            200 => {
                let record = response.json();
                assert_eq!(record["proj"], proj, "{record}");
                assert_eq!(record["state"], "online", "{record}");
                Ok(record)
            }
            404 if answered >= online_until => Err(TooLate(format!(
                "{proj} was gone when the check was answered, {:?} after the moment it had to \
                 be online until",
                answered - online_until
            ))),
            404 => panic!(
                "{proj} is gone {:?} before the moment it had to be online until",
                online_until - answered
            ),
            _ => panic!("GET client {proj}: {response:?}"),
        }
    }
}

/// A "not yet" check answered too late to tell anything: the machine was too slow for the
/// timing the test chose. Not a pass: see [`retry_when_late`].
#[derive(Debug)]
#[must_use = "a check that came too late must be retried or fail the test"]
pub struct TooLate(pub String);

/// How much longer each try of [`retry_when_late`] makes the scenario's timeouts.
pub const TIMING_SCALES: [u32; 3] = [1, 4, 16];

/// Runs `scenario(scale)` (which multiplies its timeouts by `scale`, and stops what it
/// started before returning) with each of [`TIMING_SCALES`] until none of its checks came
/// [`TooLate`]; fails the test if even the last try was too late. So every passing run made
/// every check it means to make.
pub async fn retry_when_late<F, Fut>(mut scenario: F)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), TooLate>>,
{
    let mut late = Vec::new();
    for scale in TIMING_SCALES {
        match scenario(scale).await {
            Ok(()) => return,
            Err(TooLate(why)) => {
                eprintln!("note: timing x{scale} was too short for this machine: {why}");
                late.push(format!("x{scale}: {why}"));
            }
        }
    }
    panic!(
        "every try came too late, even with timeouts x{}: {late:#?}",
        TIMING_SCALES[TIMING_SCALES.len() - 1]
    );
}

/// The real server, started in the current actix System on ephemeral ports.
///
/// Call [`TestServer::stop`] at the end of the test: it stops accepting, closes every session
/// and joins the session threads. A server dropped without `stop` fails the test.
pub struct TestServer {
    running: Option<Running>,
    /// Where heartbeat clients connect.
    pub tcp: SocketAddr,
    /// Where the HTTP API listens.
    pub http: SocketAddr,
    api: Api,
}

/// `server.metric(..)`, `server.client_status(..)`, ...: see [`Api`].
impl std::ops::Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestServer {
    /// Starts a server with `config`, without event logging.
    pub async fn start(config: ServerConfig) -> Self {
        Self::start_with(Builder::new(config)).await
    }

    /// Starts a server with the default test configuration.
    pub async fn start_default() -> Self {
        Self::start(test_config()).await
    }

    /// Starts a server from a prepared builder (handlers, subscribers), without event logging.
    pub async fn start_with(builder: Builder) -> Self {
        let running = match builder.log_events(false).start().await {
            Ok(running) => running,
            Err(e) => panic!("server did not start: {e}"),
        };
        let tcp = running.tcp_addr();
        let http = running.http_addr().expect("the HTTP API is enabled");
        Self {
            running: Some(running),
            tcp,
            http,
            api: Api { addr: http },
        }
    }

    /// The running server (registry, metrics, event bus).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// A new protocol connection.
    pub async fn client(&self) -> Client {
        Client::connect(self.tcp).await
    }

    /// Subscribes a new [`EventLog`] to the server's event bus.
    pub fn event_log(&self) -> EventLog {
        let (recipient, log) = EventLog::new();
        self.running().events().subscribe(recipient);
        log
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.running.is_some() && !std::thread::panicking() {
            panic!("TestServer dropped without `stop().await`");
        }
    }
}

/// The sum of every labelled series of `family` (`family{...} value`), if it has any.
pub fn metric_sum(text: &str, family: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix(family)?.strip_prefix('{'))
        .filter_map(|rest| rest.rsplit_once(' '))
        .map(|(_, value)| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("metric {family}: {value:?}: {e}"))
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The value of one series in a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("metric {series}: {value:?}: {e}"))
        })
}

// ---------------------------------------------------------------------------------------------
// Protocol client
// ---------------------------------------------------------------------------------------------

/// How a connection ended, as seen by [`Client::read_until_closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Orderly end of stream.
    Eof,
    /// The server reset the connection.
    Reset,
}

/// A protocol v1 client over one TCP connection.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The client's own address (what the server reports as `addr`).
    pub local: SocketAddr,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect to {addr} timed out"))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self::from_stream(stream)
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> Self {
        let local = stream.local_addr().expect("local address");
        let (read, write) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer: write,
            local,
        }
    }

    /// Sends `line` and a newline.
    pub async fn send(&mut self, line: &str) {
        let mut frame = Vec::with_capacity(line.len() + 1);
        frame.extend_from_slice(line.as_bytes());
        frame.push(b'\n');
        self.send_raw(&frame).await;
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        timeout(IO_TIMEOUT, self.writer.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write failed");
    }

    /// Closes the sending direction (the server reads end of input).
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.expect("shutdown");
    }

    /// The next line, or `None` at end of stream; panics after [`IO_TIMEOUT`].
    pub async fn try_recv_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = timeout(IO_TIMEOUT, self.reader.read_line(&mut line))
            .await
            .expect("no reply within the I/O timeout")
            .expect("read failed");
        (n > 0).then(|| line.trim_end_matches('\n').to_owned())
    }

    /// The next line as sent (without its newline); panics at end of stream or after
    /// [`IO_TIMEOUT`].
    pub async fn recv_line(&mut self) -> String {
        self.try_recv_line()
            .await
            .expect("connection closed, a reply was expected")
    }

    /// The next reply, parsed.
    pub async fn recv(&mut self) -> Value {
        parse_json(&self.recv_line().await)
    }

    /// Sends `frame` (a JSON value) and returns the reply.
    pub async fn request(&mut self, frame: Value) -> Value {
        self.send(&frame.to_string()).await;
        self.recv().await
    }

    /// Sends a heartbeat for `proj`; its reply must be an ack for `proj`.
    pub async fn heartbeat(&mut self, proj: &str) -> Value {
        let reply = self
            .request(json!({"type": "heartbeat", "proj": proj}))
            .await;
        assert_ack(&reply, proj);
        reply
    }

    /// Sends a heartbeat for `proj` asking for `timeout_ms`; its reply must be an ack.
    pub async fn heartbeat_timeout(&mut self, proj: &str, timeout_ms: u64) -> Value {
        let frame = json!({"type": "heartbeat", "proj": proj, "timeout_ms": timeout_ms});
        let reply = self.request(frame).await;
        assert_ack(&reply, proj);
        reply
    }

    /// Sends an offline for `proj`; its reply must be an ack.
    pub async fn offline(&mut self, proj: &str) -> Value {
        let reply = self.request(json!({"type": "offline", "proj": proj})).await;
        assert_ack(&reply, proj);
        reply
    }

    /// Sends `frame` (raw bytes, newline included if wanted) and returns the error code of
    /// the reply, which must be an error.
    pub async fn error_code_for(&mut self, frame: &[u8]) -> String {
        self.send_raw(frame).await;
        let reply = self.recv().await;
        assert_eq!(reply["type"], "error", "an error reply expected: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {reply}"
        );
        reply["code"]
            .as_str()
            .unwrap_or_else(|| panic!("error without code: {reply}"))
            .to_owned()
    }

    /// Reads lines until the server closes the connection; the lines and how it ended.
    /// Panics if it stays open for [`IO_TIMEOUT`].
    pub async fn read_until_closed(&mut self) -> (Vec<String>, Closed) {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line))
                .await
                .expect("the server did not close the connection");
            match read {
                Ok(0) => return (lines, Closed::Eof),
                Ok(_) => lines.push(line.trim_end_matches('\n').to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return (lines, Closed::Reset)
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }
}

/// Asserts that `reply` is an ack for `proj`.
pub fn assert_ack(reply: &Value, proj: &str) {
    assert_eq!(reply["type"], "ack", "an ack expected: {reply}");
    assert_eq!(reply["proj"], proj, "the ack names its proj: {reply}");
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// A whole HTTP response, as awc received it (de-chunked).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body; empty for an event stream, whose body never ends.
    pub body: String,
}

impl HttpResponse {
    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        parse_json(&self.body)
    }

    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` on the plaintext HTTP API at `addr`.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_get_with(addr, path, &[]).await
}

/// `GET path` on the plaintext HTTP API at `addr`, with the request headers `headers`.
pub async fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut request = awc::Client::new().get(format!("http://{addr}{path}"));
    for &header in headers {
        request = request.insert_header(header);
    }
    http_send(request).await
}

/// `POST path` with `body` as JSON (or no body) and the request headers `headers`.
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut request = awc::Client::new().post(format!("http://{addr}{path}"));
    for &header in headers {
        request = request.insert_header(header);
    }
    match body {
        Some(body) => {
            let request = request.insert_header(("content-type", "application/json"));
            exchange(request, Some(body.to_string())).await
        }
        None => exchange(request, None).await,
    }
}

/// Sends `request` (built on any awc client: plaintext, TLS, ...) and reads the whole
/// response, except an event stream's body, which never ends; panics after [`IO_TIMEOUT`].
pub async fn http_send(request: awc::ClientRequest) -> HttpResponse {
    exchange(request, None).await
}

/// Sends `request` with `body` (or none) and reads the response (see [`http_send`]).
async fn exchange(request: awc::ClientRequest, body: Option<String>) -> HttpResponse {
    let what = format!("{} {}", request.get_method(), request.get_uri());
    let exchange = async {
        let sent = match body {
            Some(body) => request.send_body(body).await,
            None => request.send().await,
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{what}: {e}"));
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                let value = v.to_str().unwrap_or_else(|_| panic!("{what}: header {n}"));
                (n.as_str().to_owned(), value.to_owned())
            })
            .collect();
        let streaming = headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream"));
        let body = if streaming {
            Vec::new()
        } else {
            let bytes = response
                .body()
                .limit(16 << 20)
                .await
                .unwrap_or_else(|e| panic!("{what}: body: {e}"));
            bytes.to_vec()
        };
        HttpResponse {
            status: response.status().as_u16(),
            headers,
            body: String::from_utf8(body).unwrap_or_else(|e| panic!("{what}: body: {e}")),
        }
    };
    timeout(IO_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

/// An open `GET /api/v1/events` stream, read with awc.
pub struct EventStream {
    body: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>>>,
    >,
    /// Decoded body bytes not yet returned as lines.
    pending: Vec<u8>,
    /// How long one read may wait.
    wait: Duration,
}

impl EventStream {
    /// Opens the stream and waits for the server's greeting comment, after which every event
    /// is delivered to this stream.
    pub async fn open(addr: SocketAddr) -> Self {
        Self::open_after(addr, None).await
    }

    /// [`EventStream::open`] with a `Last-Event-ID` header (resume after that event).
    pub async fn open_after(addr: SocketAddr, last_event_id: Option<&str>) -> Self {
        let mut request = awc::Client::new()
            .get(format!("http://{addr}/api/v1/events"))
            .insert_header(("accept", "text/event-stream"));
        if let Some(id) = last_event_id {
            request = request.insert_header(("last-event-id", id));
        }
        let response = timeout(IO_TIMEOUT, request.send())
            .await
            .expect("event stream: no answer within the I/O timeout")
            .unwrap_or_else(|e| panic!("event stream: {e}"));
        assert_eq!(
            response.status().as_u16(),
            200,
            "event stream: {response:?}"
        );
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream"),
            "{response:?}"
        );
        let mut events = Self {
            body: Box::pin(response),
            pending: Vec::new(),
            wait: IO_TIMEOUT,
        };
        let greeting = events.line().await;
        assert!(greeting.starts_with(':'), "a comment first: {greeting:?}");
        events
    }

    /// The next event: its `id:` line (if any) and its `data:` payload, parsed; panics after
    /// [`IO_TIMEOUT`].
    pub async fn next_event(&mut self) -> (Option<String>, Value) {
        let mut id = None;
        loop {
            let line = self.line().await;
            if let Some(value) = line.strip_prefix("id: ") {
                id = Some(value.to_string());
            } else if let Some(data) = line.strip_prefix("data: ") {
                return (id, parse_json(data));
            }
        }
    }

    /// [`EventStream::next_event`], waiting up to `within` instead of [`IO_TIMEOUT`].
    pub async fn next_event_within(&mut self, within: Duration) -> (Option<String>, Value) {
        self.wait = within;
        let event = self.next_event().await;
        self.wait = IO_TIMEOUT;
        event
    }

    /// The next `data:` payload, parsed; panics after [`IO_TIMEOUT`].
    pub async fn next_data(&mut self) -> Value {
        loop {
            let line = self.line().await;
            if let Some(data) = line.strip_prefix("data: ") {
                return parse_json(data);
            }
        }
    }

    /// The next line of the body.
    async fn line(&mut self) -> String {
        use futures_util::StreamExt;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return String::from_utf8(line)
                    .expect("UTF-8 event stream")
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
            }
            let chunk = timeout(self.wait, self.body.next())
                .await
                .expect("event stream: nothing within the I/O timeout")
                .expect("event stream ended")
                .unwrap_or_else(|e| panic!("event stream: {e}"));
            self.pending.extend_from_slice(&chunk);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Collects the events delivered to one subscriber, in order.
pub struct EventLog {
    receiver: mpsc::UnboundedReceiver<Event>,
}

/// The subscriber actor behind an [`EventLog`].
struct Forward(mpsc::UnboundedSender<Event>);

impl Actor for Forward {
    type Context = Context<Self>;
}

impl Handler<Event> for Forward {
    type Result = ();

    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

impl EventLog {
    /// A log and the recipient to subscribe (e.g. with `Builder::subscribe`). Must be called
    /// inside the actix System.
    pub fn new() -> (Recipient<Event>, Self) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Forward(sender).start().recipient(), Self { receiver })
    }

    /// The next event; panics after [`IO_TIMEOUT`].
    pub async fn next(&mut self) -> Event {
        self.next_within(IO_TIMEOUT)
            .await
            .expect("no event within the I/O timeout")
    }

    /// The next event if one arrives within `wait`. (`None` proves nothing: a "no event"
    /// check is made by a later event that must come next instead.)
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        match timeout(wait, self.receiver.recv()).await {
            Ok(event) => Some(event.expect("event log closed")),
            Err(_) => None,
        }
    }
}

/// `"online"`, `"offline(reason)"`, `"late"`, ... for compact assertions.
pub fn event_kind(event: &Event) -> String {
    match event {
        Event::Offline { reason, .. } => format!("offline({reason})"),
        other => other.kind().into(),
    }
}

/// The proj of a client's event (an outage event has none: a panic).
pub fn event_proj(event: &Event) -> &str {
    event
        .proj()
        .unwrap_or_else(|| panic!("not a client's event: {event:?}"))
        .as_str()
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// `heartwatch` with console logging only (no log4rs file, no `log/` directory), run in the
/// temporary directory, with no `HEARTWATCH__*` variable (nor `HEARTWATCH_TOKEN`,
/// `HEARTWATCH_HTTP_TOKEN`) inherited from the caller, and no `late` verdicts (as
/// [`test_config`]; a test's own `HEARTWATCH__SERVER__LATE_RATIO` overrides it).
pub fn heartwatch_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heartwatch"));
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("HEARTWATCH__")
            || name_text == "HEARTWATCH_TOKEN"
            || name_text == "HEARTWATCH_HTTP_TOKEN"
        {
            cmd.env_remove(name);
        }
    }
    // No event log unless a test asks for one (parallel servers cannot share a directory).
    cmd.env("HEARTWATCH__LOG__CONFIG", "/nonexistent")
        .env("HEARTWATCH__STORAGE__PATH", "")
        .env("HEARTWATCH__SERVER__LATE_RATIO", "0")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end (at most [`IO_TIMEOUT`]); its exit code and stderr.
pub fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd.spawn().expect("spawn heartwatch");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("heartwatch did not exit within {IO_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_EVERY);
    };
    (status.code(), reader.join().expect("stderr reader"))
}

/// Sends `signal` (e.g. `"STOP"`) to process `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A `heartwatch serve` child process on ephemeral ports, killed (after a SIGCONT if it was
/// stopped) when dropped.
pub struct BinServer {
    child: Child,
    /// Where heartbeat clients connect.
    pub tcp: SocketAddr,
    /// Where the HTTP API listens.
    pub http: SocketAddr,
    /// Every stderr line after the start-up line, as the server writes them.
    pub stderr: std_mpsc::Receiver<String>,
    /// The stderr lines before the start-up line (recovery warnings, ...).
    pub startup: Vec<String>,
    /// Whether the last job-control signal sent was SIGSTOP.
    stopped: AtomicBool,
    api: Api,
}

/// `server.metric(..)`, `server.client_status(..)`, ...: see [`Api`].
impl std::ops::Deref for BinServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl BinServer {
    /// Starts `heartwatch serve --listen 127.0.0.1:0 --http 127.0.0.1:0 <extra>` and waits for
    /// its start-up line to learn the ports.
    pub fn spawn(extra: &[&str]) -> Self {
        Self::spawn_with("127.0.0.1:0", &[], extra)
    }

    /// Starts `heartwatch serve --listen <listen> --http 127.0.0.1:0 <extra>` with the
    /// environment variables `env` (e.g. `("HEARTWATCH__SESSION__IDLE_PING", "300ms")`), and
    /// waits for its start-up line to learn the ports. `listen` may name a fixed port, to
    /// restart a server where its clients expect it.
    pub fn spawn_with(listen: &str, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let mut cmd = heartwatch_cmd();
        cmd.args(["serve", "--listen", listen, "--http", "127.0.0.1:0"])
            .args(extra);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().expect("spawn heartwatch");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, lines) = std_mpsc::channel();
        // Drains stderr for the child's whole life: a full pipe would block its logging.
        std::thread::spawn(move || {
            for line in StdBufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    // Nobody reads any more, but keep draining.
                    continue;
                }
            }
        });
        let mut server = Self {
            child,
            tcp: "0.0.0.0:0".parse().expect("address"),
            http: "0.0.0.0:0".parse().expect("address"),
            stderr: lines,
            startup: Vec::new(),
            stopped: AtomicBool::new(false),
            api: Api {
                addr: "0.0.0.0:0".parse().expect("address"),
            },
        };
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = server.stderr.recv_timeout(left).unwrap_or_else(|e| {
                panic!("no start-up line ({e}); stderr so far: {seen:#?}");
            });
            if let Some((tcp, http)) = parse_listening_line(&line) {
                server.tcp = tcp;
                server.http = http;
                server.api.addr = http;
                server.startup = seen;
                return server;
            }
            seen.push(line);
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `"TERM"`) with kill(1).
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
        match signal {
            "STOP" => self.stopped.store(true, Ordering::SeqCst),
            "CONT" => self.stopped.store(false, Ordering::SeqCst),
            _ => {}
        }
    }

    /// Waits up to `within` for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every stderr line received so far.
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        kill_child(&mut self.child, self.stopped.load(Ordering::SeqCst));
    }
}

/// Kills `child` with SIGKILL and reaps it, after a SIGCONT if it is `stopped`, so that no
/// process outlives its test, not even a frozen one.
fn kill_child(child: &mut Child, stopped: bool) {
    if stopped && matches!(child.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-CONT".to_owned(), child.id().to_string()])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Forwards a `HeartbeatClient`'s events to the test.
pub struct ClientEvents(pub mpsc::UnboundedSender<heartwatch::client::ClientEvent>);

impl Actor for ClientEvents {
    type Context = Context<Self>;
}

impl Handler<heartwatch::client::ClientEvent> for ClientEvents {
    type Result = ();
    fn handle(&mut self, event: heartwatch::client::ClientEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

/// Parses `... heartwatch listening for heartbeats on A, HTTP API on http://B` (or `https://B`
/// with TLS).
fn parse_listening_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.split("listening for heartbeats on ").nth(1)?;
    let (tcp, http) = rest.split_once(", HTTP API on ")?;
    let http = http
        .strip_prefix("http://")
        .or_else(|| http.strip_prefix("https://"))?;
    Some((tcp.trim().parse().ok()?, http.trim().parse().ok()?))
}

/// One line printed by `heartwatch beat --json`.
#[derive(Debug, Clone)]
pub struct BeatLine {
    /// The line, parsed (`state`, `reason`, `seq`, `at`, ...).
    pub value: Value,
    /// When the test read it (after the client printed it).
    pub received: Instant,
}

impl BeatLine {
    /// The line's `state`.
    pub fn state(&self) -> &str {
        self.value["state"].as_str().unwrap_or_default()
    }

    /// The line's `at`, the client's wall clock when it printed the line.
    pub fn at(&self) -> std::time::SystemTime {
        let at = self.value["at"].as_str().expect("every line has `at`");
        humantime::parse_rfc3339(at).unwrap_or_else(|e| panic!("`at` {at:?}: {e}"))
    }
}

/// A `heartwatch beat --server <server> --proj <proj> <extra> --json -v` child process. Its
/// stdout is read line by line on a thread of its own, so nothing it prints is lost or blocks
/// it; it is killed (after a SIGCONT if it was stopped) when dropped.
pub struct BeatProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<BeatLine>,
    /// Every line taken from `lines` so far, for failure messages.
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    stopped: bool,
}

impl BeatProcess {
    /// Starts the client.
    pub fn spawn(server: SocketAddr, proj: &str, extra: &[&str]) -> Self {
        Self::spawn_with(server, proj, &[], extra)
    }

    /// Starts the client with the environment variables `env` (e.g. `HEARTWATCH_TOKEN`).
    pub fn spawn_with(
        server: SocketAddr,
        proj: &str,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Self {
        let mut cmd = heartwatch_cmd();
        cmd.args(["beat", "--server", &server.to_string(), "--proj", proj])
            .args(extra)
            .args(["--json", "-v"])
            .stdout(Stdio::piped());
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().expect("spawn heartwatch beat");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in StdBufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let received = Instant::from_std(std::time::Instant::now());
                let value = parse_json(&line);
                // Keep draining even when nobody reads any more.
                let _ = sender.send(BeatLine { value, received });
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let text = stderr.clone();
        std::thread::spawn(move || {
            for line in StdBufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = text.lock().expect("stderr text");
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stopped: false,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `"STOP"`, `"CONT"`, `"TERM"`) with kill(1).
    pub fn signal(&mut self, signal: &str) {
        send_signal(self.pid(), signal);
        match signal {
            "STOP" => self.stopped = true,
            "CONT" => self.stopped = false,
            _ => {}
        }
    }

    /// The next line if one comes within `within`.
    pub async fn next_line(&mut self, within: Duration) -> Option<BeatLine> {
        let line = timeout(within, self.lines.recv()).await.ok().flatten()?;
        self.seen.push(line.value.clone());
        Some(line)
    }

    /// Skips lines until one with `"state": state`, which it returns; panics, showing every
    /// line read so far, if none comes within `within`.
    pub async fn expect_state(&mut self, state: &str, within: Duration) -> BeatLine {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left).await {
                Some(line) if line.state() == state => return line,
                Some(_) => {}
                None => panic!(
                    "heartwatch beat printed no {state:?} line within {within:?}; {}",
                    self.so_far()
                ),
            }
        }
    }

    /// Every line printed and not yet taken, without waiting.
    pub fn drain(&mut self) -> Vec<BeatLine> {
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line.value.clone());
            lines.push(line);
        }
        lines
    }

    /// The lines taken so far and what the child wrote to stderr, for failure messages.
    pub fn so_far(&self) -> String {
        let lines: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        format!("lines so far:\n{}\nstderr: {stderr:?}", lines.join("\n"))
    }
}

impl Drop for BeatProcess {
    fn drop(&mut self) {
        kill_child(&mut self.child, self.stopped);
    }
}

// ---------------------------------------------------------------------------------------------
// Outside programs
// ---------------------------------------------------------------------------------------------

/// The path of `program` on `PATH`, if it is installed.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The paths of `programs`, or, if one is missing: a panic saying how to install it when the
/// environment variable `CI` is set (CI must run every test), else `None` after printing the
/// same message (the test is skipped on a developer's machine without it).
pub fn require_programs(programs: &[&str], install: &str) -> Option<Vec<std::path::PathBuf>> {
    let found: Vec<_> = programs.iter().map(|p| find_program(p)).collect();
    if found.iter().all(Option::is_some) {
        return Some(found.into_iter().flatten().collect());
    }
    let missing: Vec<&str> = programs
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(p, _)| *p)
        .collect();
    let message = format!("{} not found; install with: {install}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
    None
}
