//! TLS (`[tls]`, `heartwatch beat --tls --ca`): heartbeats and the HTTP API over TLS, what
//! happens to peers that do not complete a handshake, a client that does not trust the
//! server, and the real binaries. Every certificate is made at run time with rcgen.

mod common;

use std::net::SocketAddr;

use std::time::Duration;

use actix::Actor;
use common::pki::{path_str, Pki};
use common::ClientEvents as Events;
use common::{
    assert_ack, eventually, heartwatch_cmd, http_send, metric_value, parse_json, run_to_exit,
    test_config, BeatProcess, BinServer, HttpResponse, TestServer, IO_TIMEOUT,
};
use heartwatch::client::{ClientConfig, ClientEvent, DownReason, HeartbeatClient};
use heartwatch::config::{ServerConfig, SessionConfig};
use heartwatch::protocol::Proj;
use heartwatch::tls::{ClientTls, ServerTls};
use heartwatch::Builder;
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_rustls::client::TlsStream;

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// A TLS client for the protocol and the API
// ---------------------------------------------------------------------------------------------

/// A TLS connection to `addr`, verified against `tls`.
async fn tls_connect(addr: SocketAddr, tls: &ClientTls) -> std::io::Result<TlsStream<TcpStream>> {
    let stream = timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")?;
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let name: ServerName<'static> = tls.server_name.clone();
    timeout(IO_TIMEOUT, connector.connect(name, stream))
        .await
        .expect("TLS handshake timed out")
}

/// `GET path` over TLS, with awc verifying the server against `tls`.
async fn https_get(addr: SocketAddr, tls: &ClientTls, path: &str) -> HttpResponse {
    let connector = awc::Connector::new().rustls_0_23(tls.config.clone());
    let client = awc::Client::builder().connector(connector).finish();
    let url = format!("https://{}:{}{path}", tls.server_name.to_str(), addr.port());
    http_send(client.get(url).address(addr)).await
}

/// One series of `/metrics`, over TLS.
async fn https_metric(addr: SocketAddr, tls: &ClientTls, series: &str) -> f64 {
    let response = https_get(addr, tls, "/metrics").await;
    assert_eq!(response.status, 200, "GET /metrics: {response:?}");
    metric_value(&response.body, series)
        .unwrap_or_else(|| panic!("no series {series} in\n{}", response.body))
}

const TLS_HANDSHAKE_CLOSES: &str = "heartwatch_sessions_closed_total{reason=\"tls_handshake\"}";

/// A protocol v1 client over TLS.
struct TlsClient {
    stream: BufReader<TlsStream<TcpStream>>,
}

impl TlsClient {
    async fn connect(addr: SocketAddr, tls: &ClientTls) -> Self {
        let stream = tls_connect(addr, tls)
            .await
            .unwrap_or_else(|e| panic!("TLS connect to {addr}: {e}"));
        Self {
            stream: BufReader::new(stream),
        }
    }

    async fn request(&mut self, frame: Value) -> Value {
        let mut line = frame.to_string();
        line.push('\n');
        timeout(IO_TIMEOUT, self.stream.get_mut().write_all(line.as_bytes()))
            .await
            .expect("write timed out")
            .expect("write failed");
        let mut reply = String::new();
        let n = timeout(IO_TIMEOUT, self.stream.read_line(&mut reply))
            .await
            .expect("no reply within the I/O timeout")
            .expect("read failed");
        assert!(n > 0, "connection closed, a reply was expected");
        parse_json(&reply)
    }

    async fn heartbeat(&mut self, proj: &str) -> Value {
        let reply = self
            .request(json!({"type": "heartbeat", "proj": proj}))
            .await;
        assert_ack(&reply, proj);
        reply
    }
}

/// Reads what the server sends until it closes the connection; panics if it stays open for
/// [`IO_TIMEOUT`]. A reset counts as closed.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .expect("the server did not close the connection");
        match read {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

async fn start_tls_server(config: ServerConfig, tls: ServerTls) -> TestServer {
    TestServer::start_with(Builder::new(config).tls(tls)).await
}

// ---------------------------------------------------------------------------------------------
// In process
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_heartbeat_over_tls_is_acked_and_the_https_api_shows_the_client_online() {
    let pki = Pki::new("ack");
    let server = start_tls_server(test_config(), pki.server_tls()).await;
    let tls = pki.client_tls();

    let mut client = TlsClient::connect(server.tcp, &tls).await;
    let ack = client.heartbeat("TLS-1").await;
    assert_eq!(ack["timeout_ms"], 20000, "{ack}");

    let record = https_get(server.http, &tls, "/api/v1/clients/TLS-1").await;
    assert_eq!(record.status, 200, "{record:?}");
    assert_eq!(record.json()["state"], "online", "{record:?}");
    assert_eq!(record.json()["heartbeats"], 1, "{record:?}");
    assert_eq!(
        https_metric(server.http, &tls, "heartwatch_heartbeats_total").await,
        1.0
    );

    // The API is TLS only: a plaintext request gets no HTTP answer. (Raw bytes, not awc: the
    // test is about what comes back on the wire, which an HTTP client would not show.)
    let mut plain = TcpStream::connect(server.http).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut plain).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plaintext HTTP answered on the TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_plaintext_client_on_the_tls_port_is_closed_and_a_tls_client_keeps_working() {
    let pki = Pki::new("plain");
    let server = start_tls_server(test_config(), pki.server_tls()).await;
    let tls = pki.client_tls();
    let mut good = TlsClient::connect(server.tcp, &tls).await;
    good.heartbeat("GOOD").await;

    let mut plain = TcpStream::connect(server.tcp).await.expect("connect");
    plain
        .write_all(format!("{}\n", json!({"type": "heartbeat", "proj": "PLAIN"})).as_bytes())
        .await
        .expect("write");
    let answer = read_until_closed(&mut plain).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("\"ack\""),
        "a plaintext heartbeat was acked: {answer:?}"
    );

    good.heartbeat("GOOD").await;
    let tcp_handshakes =
        || async { https_metric(server.http, &tls, TLS_HANDSHAKE_CLOSES).await == 1.0 };
    eventually(
        IO_TIMEOUT,
        "the failed handshake is counted",
        tcp_handshakes,
    )
    .await;
    let plain_record = https_get(server.http, &tls, "/api/v1/clients/PLAIN").await;
    assert_eq!(plain_record.status, 404, "{plain_record:?}");
    let good_record = https_get(server.http, &tls, "/api/v1/clients/GOOD").await;
    assert_eq!(good_record.json()["heartbeats"], 2, "{good_record:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_silent_handshaker_is_closed_at_the_handshake_deadline_and_frees_its_slot() {
    let pki = Pki::new("silent");
    let mut config = test_config();
    // One connection at most: the next client gets in only if the silent one's slot is freed.
    config.max_connections = 1;
    let mut tls_config = pki.tls_config();
    tls_config.handshake_timeout = Duration::from_millis(300);
    let server = start_tls_server(config, pki.server_tls_with(tls_config)).await;
    let tls = pki.client_tls();

    let connected = Instant::now();
    let mut silent = TcpStream::connect(server.tcp).await.expect("connect");
    let answer = read_until_closed(&mut silent).await;
    let held = connected.elapsed();
    assert!(answer.is_empty(), "the server sent {answer:?}");
    assert!(
        held >= Duration::from_millis(250),
        "closed after {held:?}, before the 300 ms handshake deadline"
    );
    eventually(IO_TIMEOUT, "the timed-out handshake is counted", || async {
        https_metric(server.http, &tls, TLS_HANDSHAKE_CLOSES).await == 1.0
    })
    .await;

    let mut client = TlsClient::connect(server.tcp, &tls).await;
    client.heartbeat("AFTER-SILENT").await;
    server.stop().await;
}

#[actix_rt::test]
async fn the_idle_probe_and_the_first_frame_deadline_work_over_tls() {
    let pki = Pki::new("liveness");
    let session = SessionConfig {
        idle_ping: Duration::from_millis(200),
        first_frame_timeout: Duration::from_millis(300),
        ..SessionConfig::default()
    };
    let builder = Builder::new(test_config())
        .session(session)
        .tls(pki.server_tls());
    let server = TestServer::start_with(builder).await;
    let tls = pki.client_tls();

    // A client that beats once and then goes quiet is pinged, over TLS.
    let mut quiet = TlsClient::connect(server.tcp, &tls).await;
    quiet.heartbeat("QUIET").await;
    let mut line = String::new();
    timeout(IO_TIMEOUT, quiet.stream.read_line(&mut line))
        .await
        .expect("no ping within the I/O timeout")
        .expect("read");
    assert_eq!(parse_json(&line)["type"], "ping", "{line:?}");

    // A client that completes the handshake and never sends a frame is closed at the
    // first-frame deadline, as over plaintext, and cleanly: the session flushes, then ends its
    // TLS stream with close_notify, so the client reads an orderly end, not a truncation.
    let mut mute = TlsClient::connect(server.tcp, &tls).await;
    let mut rest = Vec::new();
    timeout(IO_TIMEOUT, mute.stream.read_to_end(&mut rest))
        .await
        .expect("the mute TLS client was not closed")
        .expect("an orderly TLS end (close_notify), not an unexpected EOF");
    // Nothing but the idle probe's pings (idle_ping is shorter than the deadline).
    let rest = String::from_utf8(rest).expect("UTF-8");
    for line in rest.lines() {
        assert_eq!(parse_json(line)["type"], "ping", "{rest:?}");
    }
    eventually(IO_TIMEOUT, "the first-frame close is counted", || async {
        let closed = "heartwatch_sessions_closed_total{reason=\"first_frame\"}";
        https_metric(server.http, &tls, closed).await == 1.0
    })
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn past_max_connections_a_tls_port_closes_without_a_plaintext_reply() {
    let pki = Pki::new("full");
    let mut config = test_config();
    config.max_connections = 1;
    let server = start_tls_server(config, pki.server_tls()).await;
    let tls = pki.client_tls();
    let mut holder = TlsClient::connect(server.tcp, &tls).await;
    holder.heartbeat("HOLDER").await;

    let mut refused = TcpStream::connect(server.tcp).await.expect("connect");
    let answer = read_until_closed(&mut refused).await;
    assert!(
        answer.is_empty(),
        "no plaintext line on a TLS port: {answer:?}"
    );
    let refusals = "heartwatch_frame_errors_total{code=\"too_many_connections\"}";
    assert_eq!(https_metric(server.http, &tls, refusals).await, 1.0);
    holder.heartbeat("HOLDER").await;
    server.stop().await;
}

/// Starts a `HeartbeatClient` of `server` with `tls`; its events.
fn start_client(
    server: SocketAddr,
    proj: &str,
    tls: ClientTls,
) -> mpsc::UnboundedReceiver<ClientEvent> {
    let mut config = ClientConfig::new(server.to_string(), Proj::new(proj).expect("proj"));
    config.interval = Duration::from_millis(100);
    config.tls = Some(tls);
    let (sender, events) = mpsc::unbounded_channel();
    let recipient = Events(sender).start().recipient();
    HeartbeatClient::new(config, recipient).start();
    events
}

/// The next event that is not `Reconnecting`; panics after [`IO_TIMEOUT`].
async fn next_state(events: &mut mpsc::UnboundedReceiver<ClientEvent>) -> ClientEvent {
    loop {
        let event = timeout(IO_TIMEOUT, events.recv())
            .await
            .expect("no client event in time")
            .expect("client events open");
        if !matches!(event, ClientEvent::Reconnecting { .. }) {
            return event;
        }
    }
}

#[actix_rt::test]
async fn the_client_actor_beats_over_tls_and_a_wrong_ca_is_a_tls_handshake_down() {
    let pki = Pki::new("client");
    let other = Pki::new("client-other");
    let server = start_tls_server(test_config(), pki.server_tls()).await;
    let tls = pki.client_tls();

    let mut trusting = start_client(server.tcp, "TRUSTS", pki.client_tls());
    assert!(
        matches!(next_state(&mut trusting).await, ClientEvent::Up { .. }),
        "the client trusting the right CA connects"
    );
    let acked = next_state(&mut trusting).await;
    assert!(matches!(acked, ClientEvent::Acked { .. }), "{acked:?}");

    let mut wrong = start_client(server.tcp, "WRONG-CA", other.client_tls());
    match next_state(&mut wrong).await {
        ClientEvent::Down { reason, detail } => {
            assert_eq!(reason, DownReason::TlsHandshake, "{detail}");
            assert!(detail.contains("certificate"), "a clear reason: {detail}");
        }
        event => panic!("a wrong CA must not connect: {event:?}"),
    }
    // The server saw the refused handshake, and the good client is still beating.
    eventually(IO_TIMEOUT, "the refused handshake is counted", || async {
        https_metric(server.http, &tls, TLS_HANDSHAKE_CLOSES).await >= 1.0
    })
    .await;
    let before = https_get(server.http, &tls, "/api/v1/clients/TRUSTS").await;
    let beats = before.json()["heartbeats"].as_u64().expect("count");
    eventually(IO_TIMEOUT, "the trusting client keeps beating", || async {
        let now = https_get(server.http, &tls, "/api/v1/clients/TRUSTS").await;
        now.json()["heartbeats"].as_u64().unwrap_or(0) > beats
    })
    .await;
    let refused = https_get(server.http, &tls, "/api/v1/clients/WRONG-CA").await;
    assert_eq!(refused.status, 404, "{refused:?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The binaries
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn serve_with_tls_and_beat_with_tls_work_end_to_end() {
    let pki = Pki::new("binary");
    let env = pki.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = BinServer::spawn_with("127.0.0.1:0", &env, &[]);
    let tls = pki.client_tls();
    let ca = path_str(&pki.ca);

    let mut beat = BeatProcess::spawn(
        server.tcp,
        "BIN-TLS",
        &["--interval", "200ms", "--tls", "--ca", &ca],
    );
    beat.expect_state("up", IO_TIMEOUT).await;
    beat.expect_state("acked", IO_TIMEOUT).await;
    let record = https_get(server.http, &tls, "/api/v1/clients/BIN-TLS").await;
    assert_eq!(record.status, 200, "{record:?}");
    assert_eq!(record.json()["state"], "online");

    beat.signal("TERM");
    let stopped = beat.expect_state("stopped", IO_TIMEOUT).await;
    assert_eq!(stopped.value["offline_acked"], true, "{}", stopped.value);
    let gone = https_get(server.http, &tls, "/api/v1/clients/BIN-TLS").await;
    assert_eq!(gone.status, 404, "offline over TLS takes effect: {gone:?}");
}

/// Everything of issue 5 at once, as a production server would run: TLS, a protocol token,
/// the event log. The client's `hello` goes over TLS; a client without the token is refused.
#[actix_rt::test]
async fn tls_with_a_token_and_the_event_log_work_together() {
    let pki = Pki::new("binary-all");
    let data = tempfile::tempdir().unwrap();
    let mut env = pki.env().to_vec();
    env.push((
        "HEARTWATCH__AUTH__TOKEN",
        "tls-and-token-0123456789".to_owned(),
    ));
    env.push((
        "HEARTWATCH__STORAGE__PATH",
        data.path().display().to_string(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = BinServer::spawn_with("127.0.0.1:0", &env, &[]);
    let tls = pki.client_tls();
    let ca = path_str(&pki.ca);

    let mut beat = BeatProcess::spawn_with(
        server.tcp,
        "ALL-1",
        &[("HEARTWATCH_TOKEN", "tls-and-token-0123456789")],
        &["--interval", "200ms", "--tls", "--ca", &ca],
    );
    beat.expect_state("acked", IO_TIMEOUT).await;
    let record = https_get(server.http, &tls, "/api/v1/clients/ALL-1").await;
    assert_eq!(record.status, 200, "{record:?}");

    let mut stranger = BeatProcess::spawn(server.tcp, "ALL-2", &["--tls", "--ca", &ca]);
    let down = stranger.expect_state("down", IO_TIMEOUT).await;
    assert_eq!(down.value["reason"], "unauthorized", "{}", down.value);
    let refused = https_get(server.http, &tls, "/api/v1/clients/ALL-2").await;
    assert_eq!(refused.status, 404);

    // The online event is in the log (written by its own thread: poll).
    eventually(IO_TIMEOUT, "ALL-1's online in the event log", || async {
        std::fs::read_dir(data.path())
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .any(|text| text.contains(r#""event":"online""#) && text.contains("ALL-1"))
    })
    .await;
}

#[actix_rt::test]
async fn beat_with_the_wrong_ca_reports_tls_handshake_down() {
    let pki = Pki::new("binary-wrong");
    let other = Pki::new("binary-other");
    let env = pki.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = BinServer::spawn_with("127.0.0.1:0", &env, &[]);
    let ca = path_str(&other.ca);

    let mut beat = BeatProcess::spawn(server.tcp, "BIN-WRONG", &["--tls", "--ca", &ca]);
    let down = beat.expect_state("down", IO_TIMEOUT).await;
    assert_eq!(down.value["reason"], "tls_handshake", "{}", down.value);
    let detail = down.value["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("UnknownIssuer") && detail.contains("not signed by a trusted CA"),
        "a clear reason: {detail}"
    );
}

/// `heartwatch serve` with `HEARTWATCH__TLS__*` = `env`: exit code 2 and one stderr line that
/// contains every needle.
fn assert_tls_config_error(env: &[(&str, String)], needles: &[&str]) {
    let mut cmd = heartwatch_cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{env:?}: stderr {stderr:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{env:?}: one line, got {stderr:?}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in {:?}",
            lines[0]
        );
    }
}

#[test]
fn an_unusable_certificate_or_key_exits_2_with_one_line_naming_it() {
    let pki = Pki::new("bad-files");
    let other = Pki::new("bad-files-other");
    let missing = pki.dir.join("missing.pem");
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let (cert, key) = (path_str(&pki.cert), path_str(&pki.key));
    let (missing, garbage) = (path_str(&missing), path_str(&garbage));
    let other_key = path_str(&other.key);
    let cases: [(&str, &str, &[&str]); 5] = [
        (&missing, &key, &["tls.cert", &missing, "cannot read"]),
        (&cert, &missing, &["tls.key", &missing, "cannot read"]),
        (
            &garbage,
            &key,
            &["tls.cert", &garbage, "no valid certificate"],
        ),
        (
            &cert,
            &garbage,
            &["tls.key", &garbage, "no valid private key"],
        ),
        // A key that is not the certificate's.
        (
            &cert,
            &other_key,
            &["tls.key", &other_key, "is not the private key"],
        ),
    ];
    for (cert, key, needles) in cases {
        let env = [
            ("HEARTWATCH__TLS__CERT", cert.to_owned()),
            ("HEARTWATCH__TLS__KEY", key.to_owned()),
        ];
        assert_tls_config_error(&env, needles);
    }
    // Half a configuration is refused before any file is read.
    assert_tls_config_error(
        &[("HEARTWATCH__TLS__CERT", cert)],
        &["tls.key", "must be set"],
    );
}

#[test]
fn beat_with_an_unreadable_ca_exits_2_naming_it() {
    let mut cmd = heartwatch_cmd();
    cmd.args([
        "beat",
        "--proj",
        "X",
        "--tls",
        "--ca",
        "/nonexistent/heartwatch-ca.pem",
    ]);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "stderr {stderr:?}");
    assert!(
        stderr.contains("--ca") && stderr.contains("/nonexistent/heartwatch-ca.pem"),
        "{stderr:?}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr:?}");
}

/// A renewed certificate is served after SIGHUP, without a restart; a broken one is refused
/// and the current certificate stays.
#[actix_rt::test]
async fn sighup_reloads_the_certificate_and_keeps_it_when_broken() {
    let old = Pki::new("reload-old");
    let new = Pki::new("reload-new");
    let env = old.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = BinServer::spawn_with("127.0.0.1:0", &env, &[]);
    let (old_ca, new_ca) = (old.client_tls(), new.client_tls());
    assert!(tls_connect(server.tcp, &old_ca).await.is_ok());
    assert!(tls_connect(server.tcp, &new_ca).await.is_err());
    // An established session is not disturbed by the reload.
    let mut established = TlsClient::connect(server.tcp, &old_ca).await;

    // The renewal: the same paths, another certificate and key.
    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    server.signal("HUP");
    eventually(IO_TIMEOUT, "the new certificate served", || async {
        tls_connect(server.tcp, &new_ca).await.is_ok()
    })
    .await;
    assert!(tls_connect(server.tcp, &old_ca).await.is_err());
    assert_ack(&established.heartbeat("ESTABLISHED").await, "ESTABLISHED");
    let reloads = "heartwatch_tls_reloads_total{result=\"ok\"}";
    assert_eq!(https_metric(server.http, &new_ca, reloads).await, 1.0);

    // A renewal caught half-written: refused, and the current certificate stays.
    std::fs::write(&old.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    server.signal("HUP");
    let failed = "heartwatch_tls_reloads_total{result=\"failed\"}";
    eventually(IO_TIMEOUT, "the failed reload counted", || async {
        https_metric(server.http, &new_ca, failed).await == 1.0
    })
    .await;
    assert!(tls_connect(server.tcp, &new_ca).await.is_ok());
    assert!(
        server
            .stderr_so_far()
            .iter()
            .any(|l| l.contains("tls.cert")),
        "the error names the setting"
    );
}
