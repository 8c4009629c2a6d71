//! The UDP ingest (`ingest.udp`): one datagram is one frame; answers only with
//! `ingest.udp_ack`; bad datagrams counted (and answered with their error when answers are
//! on) without affecting other clients; the token in the frame; the frame budget per source
//! address, over which nothing is answered; a client is one client whatever ingest it beats
//! over; the real binary configured from the environment.

mod common;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{event_kind, http_send, parse_json, test_config, BinServer, TestServer, IO_TIMEOUT};
use heartwatch::auth::Secret;
use heartwatch::config::{AuthConfig, IngestConfig, ServerConfig, SessionConfig};
use heartwatch::Builder;
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

const GLOBAL: &str = "global-0a7c5e3b1d9f8264";
const A_TOKEN: &str = "proj-a-3c8e1f5a7b9d2046";

fn ingest(answers: bool) -> IngestConfig {
    IngestConfig {
        udp: Some("127.0.0.1:0".parse().expect("address")),
        udp_ack: answers,
        ..IngestConfig::default()
    }
}

/// A server with the UDP ingest on (answering or not), and the ingest's address.
async fn start(builder: Builder, answers: bool) -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(builder.ingest(ingest(answers))).await;
    let udp = server
        .running()
        .udp_ingest_addr()
        .expect("the UDP ingest is on");
    (server, udp)
}

/// A UDP client on its own loopback address.
struct Peer {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Peer {
    async fn new(server: SocketAddr, last: u8) -> Self {
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::from([127, 0, 0, last]), 0))
            .await
            .expect("bind");
        Self { socket, server }
    }

    async fn send(&self, datagram: &[u8]) {
        self.socket
            .send_to(datagram, self.server)
            .await
            .expect("send");
    }

    async fn send_frame(&self, frame: Value) {
        self.send(frame.to_string().as_bytes()).await;
    }

    /// The next datagram received, as JSON; panics after the I/O timeout.
    async fn recv(&self) -> Value {
        let mut buffer = [0u8; 2048];
        let (len, from) = timeout(IO_TIMEOUT, self.socket.recv_from(&mut buffer))
            .await
            .expect("no answer within the I/O timeout")
            .expect("receive");
        assert_eq!(from, self.server, "answered from the ingest's address");
        let text = std::str::from_utf8(&buffer[..len]).expect("UTF-8");
        assert!(
            text.ends_with('\n'),
            "the reply line of the frame: {text:?}"
        );
        parse_json(text)
    }

    async fn request(&self, frame: Value) -> Value {
        self.send_frame(frame).await;
        self.recv().await
    }

    /// Whether a datagram is waiting, without waiting for one.
    fn has_answer(&self) -> bool {
        let mut buffer = [0u8; 2048];
        match self.socket.try_recv_from(&mut buffer) {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("receive: {e}"),
        }
    }
}

async fn metric(server: &TestServer, series: &str) -> f64 {
    server.metric(series).await
}

fn errors(code: &str) -> String {
    format!("heartwatch_ingest_errors_total{{ingest=\"udp\",code=\"{code}\"}}")
}

const RECEIVED: &str = "heartwatch_ingest_requests_total{ingest=\"udp\"}";

/// Waits until the ingest has received `count` datagrams in all.
async fn received(server: &TestServer, count: f64) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while metric(server, RECEIVED).await < count {
        assert!(Instant::now() < deadline, "{count} datagrams not received");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn with_answers_on_a_datagram_gets_the_reply_of_its_frame() {
    let (server, udp) = start(Builder::new(test_config()), true).await;
    let mut events = server.event_log();
    let peer = Peer::new(udp, 2).await;

    let ack = peer
        .request(json!({"type":"heartbeat","proj":"U-1","seq":1,"timeout_ms":3000}))
        .await;
    assert_eq!(
        ack,
        json!({"type":"ack","proj":"U-1","seq":1,"timeout_ms":3000,"interval_ms":1000})
    );
    // With a trailing newline, as a line of the TCP protocol.
    peer.send(b"{\"type\":\"heartbeat\",\"proj\":\"U-1\",\"seq\":2}\n")
        .await;
    assert_eq!(
        peer.recv().await,
        json!({"type":"ack","proj":"U-1","seq":2,"timeout_ms":3000,"interval_ms":1000})
    );
    let record = server.client_record("U-1").await;
    assert_eq!(record["heartbeats"], 2, "{record}");
    let addr: SocketAddr = record["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(addr, peer.socket.local_addr().unwrap());
    assert_eq!(event_kind(&events.next().await), "online");

    let left = peer
        .request(json!({"type":"offline","proj":"U-1","seq":3}))
        .await;
    assert_eq!(left, json!({"type":"ack","proj":"U-1","seq":3}));
    assert_eq!(event_kind(&events.next().await), "offline(offline)");

    // A UDP client has a watchdog like any other.
    let ack = peer
        .request(json!({"type":"heartbeat","proj":"U-2","timeout_ms":200}))
        .await;
    assert_eq!(ack["timeout_ms"], 200);
    assert_eq!(event_kind(&events.next().await), "online");
    assert_eq!(event_kind(&events.next().await), "offline(timeout)");
    server.stop().await;
}

#[actix_rt::test]
async fn with_answers_off_nothing_is_sent_back() {
    let (server, udp) = start(Builder::new(test_config()), false).await;
    let mut events = server.event_log();
    let peer = Peer::new(udp, 3).await;
    peer.send_frame(json!({"type":"heartbeat","proj":"Q-1","seq":1}))
        .await;
    assert_eq!(event_kind(&events.next().await), "online");
    peer.send(b"{not json").await;
    // An error is counted after its answer is sent (when answers are on): once it is
    // counted, any answer would already be waiting in this socket (loopback delivers at once).
    let deadline = Instant::now() + IO_TIMEOUT;
    while metric(&server, &errors("bad_json")).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the bad datagram was not counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // (The heartbeat's ack, had it been sent, would be sent when its delivery returned: by
    // now in practice, though not as surely as the error's.)
    assert!(!peer.has_answer(), "answers are off");
    assert_eq!(server.client_record("Q-1").await["heartbeats"], 1);
    server.stop().await;
}

#[actix_rt::test]
async fn bad_datagrams_are_counted_and_answered_with_their_error() {
    let config = ServerConfig {
        max_frame_bytes: 128,
        ..test_config()
    };
    let (server, udp) = start(Builder::new(config), true).await;
    let peer = Peer::new(udp, 4).await;
    let long = format!(r#"{{"type":"heartbeat","proj":"{}"}}"#, "L".repeat(200));
    let cases: [(&[u8], &str); 9] = [
        (b"{oops", "bad_json"),
        (b"", "bad_json"),
        (b"\xff\xfe", "bad_utf8"),
        (br#"{"proj":"X"}"#, "bad_type"),
        (br#"{"type":"heartbeat"}"#, "bad_proj"),
        (
            br#"{"type":"heartbeat","proj":"X","timeout_ms":0}"#,
            "bad_timeout",
        ),
        (br#"{"type":"offline","proj":"X","seq":"one"}"#, "bad_seq"),
        (br#"{"type":"hello","token":"t"}"#, "unknown_type"),
        (long.as_bytes(), "frame_too_large"),
    ];
    for (datagram, code) in cases {
        peer.send(datagram).await;
        let reply = peer.recv().await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(
            reply["code"],
            code,
            "{:?}: {reply}",
            String::from_utf8_lossy(datagram)
        );
    }
    for (code, times) in [
        ("bad_json", 2.0),
        ("bad_utf8", 1.0),
        ("bad_type", 1.0),
        ("bad_proj", 1.0),
        ("bad_timeout", 1.0),
        ("bad_seq", 1.0),
        ("unknown_type", 1.0),
        ("frame_too_large", 1.0),
    ] {
        assert_eq!(metric(&server, &errors(code)).await, times, "{code}");
    }
    assert_eq!(metric(&server, RECEIVED).await, 9.0);
    assert_eq!(server.get("/api/v1/clients").await.json(), json!([]));
    server.stop().await;
}

#[actix_rt::test]
async fn with_protocol_auth_each_frame_carries_a_token_valid_for_its_proj() {
    let auth = AuthConfig {
        token: Secret::from(GLOBAL),
        proj_tokens: [("A-*".to_string(), Secret::from(A_TOKEN))].into(),
        ..AuthConfig::default()
    };
    let (server, udp) = start(Builder::new(test_config()).auth(auth), true).await;
    let peer = Peer::new(udp, 5).await;
    let cases = [
        (json!({"type":"heartbeat","proj":"A-1"}), "unauthorized"),
        (
            json!({"type":"heartbeat","proj":"A-1","token":"nope"}),
            "unauthorized",
        ),
        (
            json!({"type":"heartbeat","proj":"A-1","token":7}),
            "unauthorized",
        ),
        (
            json!({"type":"heartbeat","proj":"A-1","token":A_TOKEN}),
            "ack",
        ),
        (
            json!({"type":"heartbeat","proj":"B-1","token":A_TOKEN}),
            "unauthorized",
        ),
        (
            json!({"type":"heartbeat","proj":"B-1","token":GLOBAL}),
            "ack",
        ),
        (
            json!({"type":"offline","proj":"B-1","token":A_TOKEN}),
            "unauthorized",
        ),
        (json!({"type":"offline","proj":"B-1","token":GLOBAL}), "ack"),
    ];
    for (frame, expected) in cases {
        let reply = peer.request(frame.clone()).await;
        if expected == "ack" {
            assert_eq!(reply["type"], "ack", "{frame}: {reply}");
            continue;
        }
        assert_eq!(reply["code"], expected, "{frame}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(
            !message.contains(GLOBAL) && !message.contains(A_TOKEN),
            "{message}"
        );
    }
    assert_eq!(metric(&server, &errors("unauthorized")).await, 5.0);
    assert_eq!(server.client_status("A-1").await, 200);
    assert_eq!(server.client_status("B-1").await, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn datagrams_over_their_source_budget_are_counted_and_never_answered() {
    let session = SessionConfig {
        max_frame_rate: 1,
        frame_burst: 2,
        ..SessionConfig::default()
    };
    let (server, udp) = start(Builder::new(test_config()).session(session), true).await;
    let peer = Peer::new(udp, 6).await;
    const SENT: usize = 6;
    for seq in 0..SENT {
        peer.send_frame(json!({"type":"heartbeat","proj":"RL","seq":seq}))
            .await;
    }
    received(&server, SENT as f64).await;
    let refused = metric(&server, &errors("rate_limited")).await as usize;
    // Two at once, then one a second: only a machine that took seconds to send six datagrams
    // could have refused fewer than four.
    assert!((1..=SENT - 2).contains(&refused), "{refused} refused");
    let mut acked = Vec::new();
    for _ in 0..SENT - refused {
        let ack = peer.recv().await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push(ack["seq"].as_u64().unwrap());
    }
    acked.sort_unstable();
    assert_eq!(&acked[..2], [0, 1], "the burst");
    assert_eq!(
        server.client_record("RL").await["heartbeats"],
        SENT - refused
    );
    // Once the budget has refilled, a bad datagram is answered: the next datagram this peer
    // receives is its error, not an answer to a refused one (those would have been sent
    // before it, from the same task).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    peer.send(b"{sentinel").await;
    let next = peer.recv().await;
    assert_eq!(next["code"], "bad_json", "{next}");
    // Another source has its own budget.
    let other = Peer::new(udp, 7).await;
    let ack = other
        .request(json!({"type":"heartbeat","proj":"RL-other"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_that_beats_over_udp_http_then_tcp_is_one_client() {
    let ingest = IngestConfig {
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..ingest(true)
    };
    let server = TestServer::start_with(Builder::new(test_config()).ingest(ingest)).await;
    let udp = server.running().udp_ingest_addr().unwrap();
    let ping = server.running().http_ingest_addr().unwrap();
    let mut events = server.event_log();
    let peer = Peer::new(udp, 8).await;

    let ack = peer
        .request(json!({"type":"heartbeat","proj":"ONE","timeout_ms":5000}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(event_kind(&events.next().await), "online");
    let response = http_send(awc::Client::new().post(format!("http://{ping}/ping/ONE"))).await;
    assert_eq!(response.json()["timeout_ms"], 5000, "{response:?}");
    let mut tcp = server.client().await;
    let ack = tcp.heartbeat("ONE").await;
    assert_eq!(
        ack["timeout_ms"], 5000,
        "the timeout it asked for over UDP: {ack}"
    );
    let record = server.client_record("ONE").await;
    assert_eq!(record["heartbeats"], 3, "{record}");
    let addr: SocketAddr = record["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(addr, tcp.local, "the last heartbeat's address");
    // Back to UDP, then an offline over TCP: the next event is that offline, not a second
    // online.
    let ack = peer.request(json!({"type":"heartbeat","proj":"ONE"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    tcp.offline("ONE").await;
    assert_eq!(event_kind(&events.next().await), "offline(offline)");
    assert_eq!(server.known_clients().await, 0.0);
    server.stop().await;
}

#[actix_rt::test]
async fn malformed_datagrams_do_not_affect_other_clients() {
    let (server, udp) = start(Builder::new(test_config()), true).await;
    let good = Peer::new(udp, 9).await;
    let bad = Peer::new(udp, 10).await;
    let mut tcp = server.client().await;
    let garbage: [&[u8]; 5] = [
        b"{oops",
        b"\xff\xff\xff",
        br#"{"type":"heartbeat","proj":""}"#,
        br#"{"type":"pong","seq":1}"#,
        b"[1,2,3]",
    ];
    const ROUNDS: u64 = 40;
    for seq in 0..ROUNDS {
        for datagram in garbage {
            bad.send(datagram).await;
        }
        let ack = good
            .request(json!({"type":"heartbeat","proj":"GOOD","seq":seq}))
            .await;
        assert_eq!(ack["seq"], seq, "{ack}");
        tcp.heartbeat("GOOD-TCP").await;
    }
    let record = server.client_record("GOOD").await;
    assert_eq!(record["heartbeats"], ROUNDS, "{record}");
    received(&server, (ROUNDS * 6) as f64).await;
    let mut counted = 0.0;
    for code in ["bad_json", "bad_utf8", "bad_proj", "unknown_type"] {
        counted += metric(&server, &errors(code)).await;
    }
    assert_eq!(counted, (ROUNDS * 5) as f64);
    // Every one of them was answered with its error, in order.
    for _ in 0..ROUNDS * 5 {
        assert_eq!(bad.recv().await["type"], "error");
    }
    assert_eq!(server.known_clients().await, 2.0);
    server.stop().await;
}

/// The address the binary logged for the UDP ingest.
fn logged_udp_addr(startup: &[String]) -> SocketAddr {
    startup
        .iter()
        .find_map(|line| {
            let rest = line.split("UDP ingest: heartbeats on ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no UDP ingest line in {startup:#?}"))
}

#[actix_rt::test]
async fn the_binary_turns_the_udp_ingest_on_from_the_environment() {
    let server = BinServer::spawn_with(
        "127.0.0.1:0",
        &[
            ("HEARTWATCH__INGEST__UDP", "127.0.0.1:0"),
            ("HEARTWATCH__INGEST__UDP_ACK", "true"),
        ],
        &[],
    );
    let udp = logged_udp_addr(&server.startup);
    let peer = Peer::new(udp, 11).await;
    let ack = peer
        .request(json!({"type":"heartbeat","proj":"BIN-U","seq":3,"timeout_ms":30000}))
        .await;
    assert_eq!(
        ack,
        json!({"type":"ack","proj":"BIN-U","seq":3,"timeout_ms":30000,"interval_ms":10000})
    );
    assert_eq!(server.client_record("BIN-U").await["timeout_ms"], 30000);
}
