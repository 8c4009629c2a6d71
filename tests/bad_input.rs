//! Bad input: every malformed frame gets its error code and leaves the connection usable;
//! oversized frames and peers that do not read are cut off; nothing a peer sends can take the
//! server down.

mod common;

use std::time::Duration;

use common::{
    assert_ack, eventually, heartbeat_frame, parse_json, test_config, Client, Closed, TestServer,
    IO_TIMEOUT,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

/// Sends each frame of `frames` (newline added) and expects error `code` for it, then checks
/// that the connection still works by sending a valid heartbeat and reading its ack.
async fn assert_rejected(client: &mut Client, frames: &[&[u8]], code: &str) {
    for (i, frame) in frames.iter().enumerate() {
        let mut line = frame.to_vec();
        line.push(b'\n');
        let got = client.error_code_for(&line).await;
        assert_eq!(got, code, "frame {:?}", String::from_utf8_lossy(frame));
        let proj = format!("after-{code}-{i}");
        client.heartbeat(&proj).await;
    }
}

#[actix_rt::test]
async fn broken_json_is_bad_json() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    assert_rejected(
        &mut client,
        &[
            b"{not json",
            br#"{"type":"heartbeat","proj":"a""#,
            br#"{"type":"heartbeat","proj":"a"} trailing"#,
            b"}",
            b"hello",
        ],
        "bad_json",
    )
    .await;
    assert_eq!(
        server
            .metric("heartwatch_frame_errors_total{code=\"bad_json\"}")
            .await,
        5.0
    );
    server.stop().await;
}

#[actix_rt::test]
async fn json_that_is_not_an_object_is_bad_json() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    assert_rejected(
        &mut client,
        &[
            br#"["heartbeat","P-1"]"#,
            b"[1,2]",
            br#""heartbeat""#,
            b"42",
            b"null",
        ],
        "bad_json",
    )
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn non_utf8_bytes_are_bad_utf8() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    assert_rejected(
        &mut client,
        &[
            b"{\"type\":\"heartbeat\",\"proj\":\"\xff\"}",
            b"\xfe\xff\x00\x01",
            // A truncated multi-byte sequence.
            b"{\"type\":\"heartbeat\",\"proj\":\"\xc3\"}",
        ],
        "bad_utf8",
    )
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn missing_empty_mistyped_long_or_control_char_proj_is_bad_proj() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    let long = format!(r#"{{"type":"heartbeat","proj":"{}"}}"#, "x".repeat(257));
    // 129 two-byte characters: 258 bytes, though only 129 characters.
    let long_multibyte = format!(r#"{{"type":"heartbeat","proj":"{}"}}"#, "é".repeat(129));
    assert_rejected(
        &mut client,
        &[
            br#"{"type":"heartbeat"}"#,
            br#"{"type":"heartbeat","proj":""}"#,
            br#"{"type":"heartbeat","proj":12}"#,
            br#"{"type":"heartbeat","proj":null}"#,
            br#"{"type":"heartbeat","proj":["a"]}"#,
            br#"{"type":"heartbeat","proj":{"id":"a"}}"#,
            long.as_bytes(),
            long_multibyte.as_bytes(),
            br#"{"type":"heartbeat","proj":"a\u0001b"}"#,
            br#"{"type":"heartbeat","proj":"tab\there"}"#,
            br#"{"type":"heartbeat","proj":"del\u007f"}"#,
            br#"{"type":"offline"}"#,
            br#"{"type":"offline","proj":""}"#,
        ],
        "bad_proj",
    )
    .await;

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
async fn missing_or_non_string_type_is_bad_type() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    assert_rejected(
        &mut client,
        &[
            br#"{"proj":"a"}"#,
            b"{}",
            br#"{"type":7,"proj":"a"}"#,
            br#"{"type":null,"proj":"a"}"#,
            br#"{"type":["heartbeat"],"proj":"a"}"#,
        ],
        "bad_type",
    )
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn an_unknown_type_is_unknown_type() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    assert_rejected(
        &mut client,
        &[
            br#"{"type":"reboot","proj":"a"}"#,
            br#"{"type":"Heartbeat","proj":"a"}"#,
            br#"{"type":"","proj":"a"}"#,
        ],
        "unknown_type",
    )
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn zero_negative_fractional_string_or_null_timeout_is_bad_timeout() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    assert_rejected(
        &mut client,
        &[
            br#"{"type":"heartbeat","proj":"t","timeout_ms":0}"#,
            br#"{"type":"heartbeat","proj":"t","timeout_ms":-1}"#,
            br#"{"type":"heartbeat","proj":"t","timeout_ms":1.5}"#,
            br#"{"type":"heartbeat","proj":"t","timeout_ms":"100"}"#,
            br#"{"type":"heartbeat","proj":"t","timeout_ms":null}"#,
            br#"{"type":"heartbeat","proj":"t","timeout_ms":true}"#,
        ],
        "bad_timeout",
    )
    .await;
    // A rejected heartbeat has no effect: "t" never came online.
    assert_eq!(server.client_status("t").await, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn negative_fractional_string_or_null_seq_is_bad_seq() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    assert_rejected(
        &mut client,
        &[
            br#"{"type":"heartbeat","proj":"s","seq":-1}"#,
            br#"{"type":"heartbeat","proj":"s","seq":1.5}"#,
            br#"{"type":"heartbeat","proj":"s","seq":"7"}"#,
            br#"{"type":"heartbeat","proj":"s","seq":null}"#,
            br#"{"type":"offline","proj":"s","seq":-1}"#,
        ],
        "bad_seq",
    )
    .await;
    assert_eq!(server.client_status("s").await, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn blank_lines_get_no_reply() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;

    client.send_raw(b"\n\r\n   \n\t\r\n").await;
    client.expect_silence(Duration::from_millis(200)).await;
    // The next reply is the heartbeat's: the blank lines produced none.
    client.send_raw(b"\n\n").await;
    client.heartbeat("after-blanks").await;
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
