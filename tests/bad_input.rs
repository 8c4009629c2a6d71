//! Bad input: every malformed frame gets its error code and leaves the connection usable;
//! oversized frames and peers that do not read are cut off; nothing a peer sends can take the
//! server down.

mod common;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use common::{
    assert_ack, eventually, heartbeat_frame, parse_json, test_config, Closed, TestServer,
    IO_TIMEOUT,
};
use futures_util::FutureExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

/// What happens to the connection after the error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// It stays usable: a heartbeat on it is acked.
    Open,
    /// The server closes it, with nothing after the error.
    Closed,
}

/// The largest frame of the table's server: the long-proj rows fit in it, the oversized rows
/// do not.
const TABLE_FRAME_BYTES: usize = 1024;

/// Each malformed input (sent as is on a connection of its own), the error code it gets, and
/// what happens to the connection then.
#[rustfmt::skip]
fn bad_inputs() -> Vec<(&'static str, Vec<u8>, &'static str, Then)> {
    use Then::{Closed, Open};
    let line = |frame: &[u8]| [frame, b"\n"].concat();
    let heartbeat_for =
        |proj: &str| line(format!(r#"{{"type":"heartbeat","proj":"{proj}"}}"#).as_bytes());
    vec![
        ("unparsable", line(b"{not json"), "bad_json", Open),
        ("unterminated object", line(br#"{"type":"heartbeat","proj":"a""#), "bad_json", Open),
        ("trailing text", line(br#"{"type":"heartbeat","proj":"a"} trailing"#), "bad_json", Open),
        ("a lone brace", line(b"}"), "bad_json", Open),
        ("a bare word", line(b"hello"), "bad_json", Open),
        ("an array", line(br#"["heartbeat","P-1"]"#), "bad_json", Open),
        ("an array of numbers", line(b"[1,2]"), "bad_json", Open),
        ("a string", line(br#""heartbeat""#), "bad_json", Open),
        ("a number", line(b"42"), "bad_json", Open),
        ("null", line(b"null"), "bad_json", Open),
        ("an invalid byte in a proj", line(b"{\"type\":\"heartbeat\",\"proj\":\"\xff\"}"), "bad_utf8", Open),
        ("binary", line(b"\xfe\xff\x00\x01"), "bad_utf8", Open),
        ("a truncated multi-byte sequence", line(b"{\"type\":\"heartbeat\",\"proj\":\"\xc3\"}"), "bad_utf8", Open),
        ("no proj", line(br#"{"type":"heartbeat"}"#), "bad_proj", Open),
        ("an empty proj", line(br#"{"type":"heartbeat","proj":""}"#), "bad_proj", Open),
        ("a numeric proj", line(br#"{"type":"heartbeat","proj":12}"#), "bad_proj", Open),
        ("a null proj", line(br#"{"type":"heartbeat","proj":null}"#), "bad_proj", Open),
        ("an array proj", line(br#"{"type":"heartbeat","proj":["a"]}"#), "bad_proj", Open),
        ("an object proj", line(br#"{"type":"heartbeat","proj":{"id":"a"}}"#), "bad_proj", Open),
        ("a proj of 257 bytes", heartbeat_for(&"x".repeat(257)), "bad_proj", Open),
        // 129 two-byte characters: 258 bytes, though only 129 characters.
        ("a proj of 258 bytes in 129 characters", heartbeat_for(&"é".repeat(129)), "bad_proj", Open),
        ("a control character in a proj", line(br#"{"type":"heartbeat","proj":"a\u0001b"}"#), "bad_proj", Open),
        ("a tab in a proj", line(br#"{"type":"heartbeat","proj":"tab\there"}"#), "bad_proj", Open),
        ("DEL in a proj", line(br#"{"type":"heartbeat","proj":"del\u007f"}"#), "bad_proj", Open),
        ("an offline without proj", line(br#"{"type":"offline"}"#), "bad_proj", Open),
        ("an offline with an empty proj", line(br#"{"type":"offline","proj":""}"#), "bad_proj", Open),
        ("no type", line(br#"{"proj":"a"}"#), "bad_type", Open),
        ("an empty object", line(b"{}"), "bad_type", Open),
        ("a numeric type", line(br#"{"type":7,"proj":"a"}"#), "bad_type", Open),
        ("a null type", line(br#"{"type":null,"proj":"a"}"#), "bad_type", Open),
        ("an array type", line(br#"{"type":["heartbeat"],"proj":"a"}"#), "bad_type", Open),
        ("an unknown type", line(br#"{"type":"reboot","proj":"a"}"#), "unknown_type", Open),
        ("a type in the wrong case", line(br#"{"type":"Heartbeat","proj":"a"}"#), "unknown_type", Open),
        ("an empty type", line(br#"{"type":"","proj":"a"}"#), "unknown_type", Open),
        ("a zero timeout", line(br#"{"type":"heartbeat","proj":"t","timeout_ms":0}"#), "bad_timeout", Open),
        ("a negative timeout", line(br#"{"type":"heartbeat","proj":"t","timeout_ms":-1}"#), "bad_timeout", Open),
        ("a fractional timeout", line(br#"{"type":"heartbeat","proj":"t","timeout_ms":1.5}"#), "bad_timeout", Open),
        ("a string timeout", line(br#"{"type":"heartbeat","proj":"t","timeout_ms":"100"}"#), "bad_timeout", Open),
        ("a null timeout", line(br#"{"type":"heartbeat","proj":"t","timeout_ms":null}"#), "bad_timeout", Open),
        ("a boolean timeout", line(br#"{"type":"heartbeat","proj":"t","timeout_ms":true}"#), "bad_timeout", Open),
        ("a negative seq", line(br#"{"type":"heartbeat","proj":"s","seq":-1}"#), "bad_seq", Open),
        ("a fractional seq", line(br#"{"type":"heartbeat","proj":"s","seq":1.5}"#), "bad_seq", Open),
        ("a string seq", line(br#"{"type":"heartbeat","proj":"s","seq":"7"}"#), "bad_seq", Open),
        ("a null seq", line(br#"{"type":"heartbeat","proj":"s","seq":null}"#), "bad_seq", Open),
        ("an offline with a negative seq", line(br#"{"type":"offline","proj":"s","seq":-1}"#), "bad_seq", Open),
        ("a line one byte too long", line(&[b'y'; TABLE_FRAME_BYTES + 1]), "frame_too_large", Closed),
        ("too many bytes and no newline", vec![b'z'; 4 * TABLE_FRAME_BYTES], "frame_too_large", Closed),
    ]
}

/// Sends `input` on a new connection and checks the reply and what follows.
async fn check_bad_input(server: &TestServer, name: &str, input: &[u8], code: &str, then: Then) {
    let mut client = server.client().await;
    client.send_raw(input).await;
    let reply = client.recv().await;
    assert_eq!(reply["type"], "error", "an error reply expected: {reply}");
    assert_eq!(reply["code"], code, "{reply}");
    assert!(
        reply["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error has a message: {reply}"
    );
    match then {
        Then::Open => {
            client.heartbeat(&format!("after {name}")).await;
        }
        Then::Closed => {
            let (lines, _) = client.read_until_closed().await;
            assert!(lines.is_empty(), "nothing after the error: {lines:?}");
        }
    }
}

#[actix_rt::test]
async fn each_malformed_frame_gets_its_error_code_and_the_connection_its_fate() {
    let mut config = test_config();
    config.max_frame_bytes = TABLE_FRAME_BYTES;
    let server = TestServer::start(config).await;
    let cases = bad_inputs();
    let mut failures = Vec::new();
    for (name, input, code, then) in &cases {
        let row = AssertUnwindSafe(check_bad_input(&server, name, input, code, *then));
        if let Err(panic) = row.catch_unwind().await {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            failures.push(format!(
                "row {name:?} ({:?} -> {code}, {then:?}): {why}",
                String::from_utf8_lossy(&input[..input.len().min(80)])
            ));
        }
    }
    // A rejected frame has no effect: only the heartbeats sent after the errors are online.
    let listed = server.get("/api/v1/clients").await.json();
    let strays: Vec<&str> = listed
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|c| c["proj"].as_str())
        .filter(|p| !p.starts_with("after "))
        .collect();
    if !strays.is_empty() {
        failures.push(format!(
            "rejected frames brought clients online: {strays:?}"
        ));
    }
    // Each error is counted under its code.
    let mut codes: Vec<&str> = cases.iter().map(|(_, _, code, _)| *code).collect();
    codes.sort_unstable();
    codes.dedup();
    for code in codes {
        let rows = cases.iter().filter(|(_, _, c, _)| *c == code).count() as f64;
        let counted = server
            .metric(&format!("heartwatch_frame_errors_total{{code=\"{code}\"}}"))
            .await;
        if counted != rows {
            failures.push(format!("{code}: {counted} counted for {rows} rows"));
        }
    }
    server.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[actix_rt::test]
async fn a_proj_of_exactly_256_bytes_is_accepted() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    // The limit itself is accepted: 256 bytes, in ASCII or not.
    client.heartbeat(&"x".repeat(256)).await;
    client.heartbeat(&"é".repeat(128)).await;
    assert_eq!(
        server.client_record(&"x".repeat(256)).await["heartbeats"],
        1
    );
    server.stop().await;
}

#[actix_rt::test]
async fn blank_lines_get_no_reply() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    client.send_raw(b"\n\r\n   \n\t\r\n").await;
    client.send_raw(b"\n\n").await;
    // The next reply is the heartbeat's: the blank lines produced none, and counted as no
    // error.
    client.heartbeat("after-blanks").await;
    assert_eq!(
        server
            .metric("heartwatch_frame_errors_total{code=\"bad_json\"}")
            .await,
        0.0
    );
    server.stop().await;
}

#[actix_rt::test]
async fn crlf_line_endings_are_accepted() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    client
        .send_raw(b"{\"type\":\"heartbeat\",\"proj\":\"crlf\",\"seq\":1}\r\n")
        .await;
    let reply = client.recv().await;
    assert_ack(&reply, "crlf");
    assert_eq!(reply["seq"], 1);
    client
        .send_raw(b"{\"type\":\"offline\",\"proj\":\"crlf\"}\r\n")
        .await;
    assert_ack(&client.recv().await, "crlf");
    server.stop().await;
}

/// A server whose frames may be at most 256 bytes.
async fn small_frame_server() -> TestServer {
    let mut config = test_config();
    config.max_frame_bytes = 256;
    TestServer::start(config).await
}

/// A heartbeat padded with an ignored field to exactly `len` bytes.
fn padded_heartbeat(proj: &str, len: usize) -> String {
    let bare = json!({"type":"heartbeat","proj":proj,"pad":""}).to_string();
    assert!(bare.len() <= len);
    let frame =
        json!({"type":"heartbeat","proj":proj,"pad":"p".repeat(len - bare.len())}).to_string();
    assert_eq!(frame.len(), len);
    frame
}

#[actix_rt::test]
async fn an_oversized_frame_gets_frame_too_large_and_the_connection_is_closed() {
    let server = small_frame_server().await;

    // Exactly the limit is fine.
    let mut client = server.client().await;
    client.send(&padded_heartbeat("edge", 256)).await;
    assert_ack(&client.recv().await, "edge");

    // One byte more is not.
    client.send(&padded_heartbeat("edge", 257)).await;
    let (lines, _) = client.read_until_closed().await;
    assert_eq!(lines.len(), 1, "one reply, then the close: {lines:?}");
    let reply = parse_json(&lines[0]);
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "frame_too_large");

    // Frames before the oversized one in the same write are still answered.
    let mut client = server.client().await;
    let mut batch = format!("{}\n", heartbeat_frame("before"));
    batch.push_str(&"y".repeat(1000));
    batch.push('\n');
    client.send_raw(batch.as_bytes()).await;
    let (lines, _) = client.read_until_closed().await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_ack(&parse_json(&lines[0]), "before");
    assert_eq!(parse_json(&lines[1])["code"], "frame_too_large");

    // Other clients are unaffected.
    server.client().await.heartbeat("other").await;
    server.stop().await;
}

#[actix_rt::test]
async fn an_oversized_frame_without_any_newline_is_refused_too() {
    let server = small_frame_server().await;
    let mut client = server.client().await;

    client.send_raw(&[b'z'; 4096]).await;
    let (lines, how) = client.read_until_closed().await;
    assert_eq!(
        lines.len(),
        1,
        "one reply, then the close ({how:?}): {lines:?}"
    );
    assert_eq!(parse_json(&lines[0])["code"], "frame_too_large");

    server.client().await.heartbeat("other").await;
    eventually(IO_TIMEOUT, "the refused session is gone", || async {
        server.running().metrics().connections() == 0
    })
    .await;
    assert_eq!(
        server
            .metric("heartwatch_sessions_closed_total{reason=\"frame_too_large\"}")
            .await,
        1.0
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_half_frame_then_end_of_input_gets_bad_json_and_the_server_stays_up() {
    let server = TestServer::start_default().await;

    for half in [&br#"{"type":"heartbeat","proj":"P"#[..], b"{", b"\xff\xfe"] {
        let mut client = server.client().await;
        client.send_raw(half).await;
        client.shutdown_write().await;
        let (lines, how) = client.read_until_closed().await;
        assert_eq!(how, Closed::Eof);
        assert!(lines.len() <= 1, "{lines:?}");
        if let Some(line) = lines.first() {
            let reply = parse_json(line);
            assert_eq!(reply["type"], "error", "{reply}");
            assert!(
                reply["code"] == "bad_json" || reply["code"] == "bad_utf8",
                "{reply}"
            );
        }
    }
    // Dropped mid-frame without a shutdown.
    let mut client = server.client().await;
    client.send_raw(br#"{"type":"heart"#).await;
    drop(client);

    server.client().await.heartbeat("still-up").await;
    assert_eq!(server.get("/healthz").await.status, 200);
    server.stop().await;
}

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[actix_rt::test]
async fn a_flood_of_binary_garbage_never_takes_the_server_down() {
    let server = TestServer::start_default().await;
    let mut bystander = server.client().await;
    bystander.heartbeat("bystander").await;

    let mut garbage = vec![0u8; 1 << 20];
    Rng(0x9e37_79b9_7f4a_7c15).fill(&mut garbage);
    let newlines = garbage.iter().filter(|&&b| b == b'\n').count();
    assert!(newlines > 1000, "the garbage holds many frames");

    let flood = TcpStream::connect(server.tcp).await.expect("connect");
    let (read, mut write) = flood.into_split();
    // Drain the flooder's replies concurrently, so that it is not cut off for not reading.
    let replies = actix_rt::spawn(async move {
        let mut lines = BufReader::new(read).lines();
        let mut codes = Vec::new();
        while let Ok(Ok(Some(line))) = timeout(IO_TIMEOUT, lines.next_line()).await {
            codes.push(parse_json(&line)["code"].as_str().unwrap_or("").to_owned());
        }
        codes
    });
    // The flood goes out in 64 chunks; between two chunks, while the server is still chewing
    // on the garbage, the bystander beats and must get its ack.
    let mut beats = 0;
    for chunk in garbage.chunks(16 * 1024) {
        timeout(IO_TIMEOUT, write.write_all(chunk))
            .await
            .expect("the server keeps reading the flood")
            .expect("the flood connection stays open");
        bystander.heartbeat("bystander").await;
        beats += 1;
    }
    write.shutdown().await.expect("end the flood");
    let codes = timeout(IO_TIMEOUT * 2, replies)
        .await
        .expect("the flood's replies end")
        .expect("reader task");
    assert!(
        codes.len() > 1000,
        "the garbage was answered frame by frame ({} replies)",
        codes.len()
    );
    assert!(
        codes.iter().all(
            |c| ["bad_json", "bad_utf8", "frame_too_large", "rate_limited"].contains(&c.as_str())
        ),
        "only error replies: {:?}",
        codes
            .iter()
            .filter(|c| !["bad_json", "bad_utf8"].contains(&c.as_str()))
            .take(5)
            .collect::<Vec<_>>()
    );

    // And after it.
    bystander.heartbeat("bystander").await;
    server.client().await.heartbeat("newcomer").await;
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(
        server.client_record("bystander").await["heartbeats"],
        beats + 2
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_peer_that_never_reads_its_replies_is_disconnected() {
    let mut config = test_config();
    config.max_frame_bytes = 256;
    config.max_write_backlog = 4096;
    let server = TestServer::start(config).await;
    let mut healthy = server.client().await;
    healthy.heartbeat("healthy").await;

    // A small receive buffer, so that unread acks back up into the server quickly.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.tcp).await.expect("connect");
    let (_unread, mut write) = stream.into_split();
    eventually(IO_TIMEOUT, "both sessions run", || async {
        server.running().metrics().connections() == 2
    })
    .await;
    // Short frames with long replies (errors): the server's side fills up fastest that way.
    let batch = "x\n".repeat(4096);

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut batches = 0u32;
    let cut_off = loop {
        match timeout(
            Duration::from_millis(200),
            write.write_all(batch.as_bytes()),
        )
        .await
        {
            Ok(Ok(())) => batches += 1,
            // The server closed the connection.
            Ok(Err(_)) => break true,
            // The server is not reading right now; check on it below.
            Err(_) => {}
        }
        if server.running().metrics().connections() == 1 {
            break true;
        }
        // The healthy client is served all along.
        healthy.heartbeat("healthy").await;
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        cut_off,
        "the deaf peer was not disconnected within 15 s ({batches} batches sent)"
    );
    eventually(
        IO_TIMEOUT,
        "only the healthy connection is left",
        || async { server.running().metrics().connections() == 1 },
    )
    .await;
    assert_eq!(
        server
            .metric("heartwatch_sessions_closed_total{reason=\"write_backlog\"}")
            .await,
        1.0,
        "closed for its backlog"
    );
    healthy.heartbeat("healthy").await;
    server.stop().await;
}
