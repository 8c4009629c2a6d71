//! Protocol authentication (`auth.token`, `auth.proj_tokens`, `auth.tokens_file`): a frame
//! without a token valid for what it asks gets `unauthorized` and its connection is closed;
//! other connections carry on; the binary re-reads its tokens file on SIGHUP.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    eventually, heartwatch_cmd, parse_json, run_to_exit, test_config, BeatProcess, BinServer,
    Client, Closed, TestServer, IO_TIMEOUT,
};
use heartwatch::auth::Secret;
use heartwatch::config::{AuthConfig, SessionConfig};
use heartwatch::extension::{CustomFrame, HandlerContext, HandlerReply};
use heartwatch::Builder;
use serde_json::{json, Value};

const GLOBAL: &str = "global-3b1f9c0e7d2a4c58";
const A_TOKEN: &str = "proj-a-91d6e2b0c4f7a813";

/// A global token, and `A-*` → `A_TOKEN`.
fn auth() -> AuthConfig {
    AuthConfig {
        token: Secret::from(GLOBAL),
        proj_tokens: [("A-*".to_string(), Secret::from(A_TOKEN))].into(),
        ..AuthConfig::default()
    }
}

async fn server() -> TestServer {
    TestServer::start_with(Builder::new(test_config()).auth(auth())).await
}

/// Reads what is left on `client` until the server closes it, and asserts that it was exactly
/// one `unauthorized` error (whose message names no token).
async fn assert_refused_and_closed(client: &mut Client) {
    let (lines, closed) = client.read_until_closed().await;
    assert_eq!(lines.len(), 1, "one reply, then the close: {lines:?}");
    let reply = parse_json(&lines[0]);
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    let message = reply["message"].as_str().expect("a message");
    assert!(
        !message.contains(GLOBAL) && !message.contains(A_TOKEN),
        "{message}"
    );
    assert!(matches!(closed, Closed::Eof | Closed::Reset), "{closed:?}");
}

async fn unauthorized_count(server: &TestServer) -> f64 {
    server
        .metric(r#"heartwatch_frame_errors_total{code="unauthorized"}"#)
        .await
}

#[actix_rt::test]
async fn a_heartbeat_without_a_token_is_unauthorized_and_the_connection_closed() {
    let server = server().await;
    let mut client = server.client().await;
    // Pipelined: the second heartbeat is never acted on.
    client
        .send_raw(b"{\"type\":\"heartbeat\",\"proj\":\"A-1\"}\n{\"type\":\"heartbeat\",\"proj\":\"A-2\",\"token\":\"global-3b1f9c0e7d2a4c58\"}\n")
        .await;
    assert_refused_and_closed(&mut client).await;
    assert_eq!(server.client_status("A-1").await, 404);
    assert_eq!(
        server.client_status("A-2").await,
        404,
        "nothing after the refusal is read"
    );
    assert_eq!(unauthorized_count(&server).await, 1.0);
    eventually(IO_TIMEOUT, "the close to be counted", || async {
        server
            .metric(r#"heartwatch_sessions_closed_total{reason="unauthorized"}"#)
            .await
            == 1.0
    })
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_wrong_token_is_refused_like_no_token() {
    let server = server().await;
    for frame in [
        json!({"type": "hello", "token": "not-a-token"}),
        json!({"type": "hello"}),
        json!({"type": "hello", "token": 42}),
        json!({"type": "heartbeat", "proj": "A-1", "token": "not-a-token"}),
        json!({"type": "heartbeat", "proj": "A-1", "token": &GLOBAL[..GLOBAL.len() - 1]}),
        json!({"type": "heartbeat", "proj": "A-1", "token": format!("{GLOBAL}x")}),
    ] {
        let mut client = server.client().await;
        client.send(&frame.to_string()).await;
        assert_refused_and_closed(&mut client).await;
    }
    assert_eq!(server.client_status("A-1").await, 404);
    assert_eq!(unauthorized_count(&server).await, 6.0);
    server.stop().await;
}

#[actix_rt::test]
async fn the_global_token_in_a_hello_covers_every_proj_on_the_connection() {
    let server = server().await;
    let mut client = server.client().await;
    let welcome = client
        .request(json!({"type": "hello", "token": GLOBAL, "seq": 7}))
        .await;
    assert_eq!(welcome, json!({"type": "welcome", "auth": true, "seq": 7}));
    for proj in ["A-1", "B-1", "zz/top"] {
        client.heartbeat(proj).await;
        client.heartbeat(proj).await;
    }
    client.offline("B-1").await;
    assert_eq!(server.client_record("A-1").await["heartbeats"], 2);
    assert_eq!(server.client_status("B-1").await, 404);
    assert_eq!(unauthorized_count(&server).await, 0.0);
    server.stop().await;
}

#[actix_rt::test]
async fn a_glob_token_covers_the_matching_projs_and_is_refused_for_the_others() {
    let server = server().await;
    let mut client = server.client().await;
    let welcome = client
        .request(json!({"type": "hello", "token": A_TOKEN}))
        .await;
    assert_eq!(welcome, json!({"type": "welcome", "auth": true}));
    client.heartbeat("A-1").await;
    client.heartbeat("A-").await;
    client.heartbeat("A-1").await;
    client
        .send(&json!({"type": "heartbeat", "proj": "B-1"}).to_string())
        .await;
    assert_refused_and_closed(&mut client).await;
    assert_eq!(server.client_record("A-1").await["heartbeats"], 2);
    assert_eq!(server.client_status("B-1").await, 404);

    // A frame's own token adds to the hello token, for that frame.
    let mut client = server.client().await;
    client
        .request(json!({"type": "hello", "token": A_TOKEN}))
        .await;
    let reply = client
        .request(json!({"type": "heartbeat", "proj": "B-2", "token": GLOBAL}))
        .await;
    common::assert_ack(&reply, "B-2");
    client
        .send(&json!({"type": "heartbeat", "proj": "B-2"}).to_string())
        .await;
    assert_refused_and_closed(&mut client).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_per_frame_token_serves_a_connect_send_close_client() {
    let server = server().await;
    let mut client = server.client().await;
    let frame = json!({"type": "heartbeat", "proj": "A-7", "seq": 1, "token": A_TOKEN});
    client.send(&frame.to_string()).await;
    client.shutdown_write().await;
    let (lines, closed) = client.read_until_closed().await;
    assert_eq!(closed, Closed::Eof);
    assert_eq!(lines.len(), 1, "{lines:?}");
    common::assert_ack(&parse_json(&lines[0]), "A-7");
    assert_eq!(server.client_status("A-7").await, 200);

    // The token covers only its own proj, even on a fresh connection.
    let mut other = server.client().await;
    let frame = json!({"type": "heartbeat", "proj": "B-7", "token": A_TOKEN});
    other.send(&frame.to_string()).await;
    assert_refused_and_closed(&mut other).await;
    assert_eq!(server.client_status("B-7").await, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn offline_needs_a_valid_token_too() {
    let server = server().await;
    let mut owner = server.client().await;
    owner
        .request(json!({"type": "hello", "token": A_TOKEN}))
        .await;
    owner.heartbeat("A-1").await;

    let mut stranger = server.client().await;
    stranger
        .send(&json!({"type": "offline", "proj": "A-1"}).to_string())
        .await;
    assert_refused_and_closed(&mut stranger).await;
    let mut wrong = server.client().await;
    wrong
        .send(&json!({"type": "offline", "proj": "A-1", "token": "guess"}).to_string())
        .await;
    assert_refused_and_closed(&mut wrong).await;
    assert_eq!(server.client_status("A-1").await, 200, "still online");

    let reply = server
        .client()
        .await
        .request(json!({"type": "offline", "proj": "A-1", "token": A_TOKEN}))
        .await;
    common::assert_ack(&reply, "A-1");
    assert_eq!(server.client_status("A-1").await, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn well_behaved_connections_are_unaffected_when_others_are_refused() {
    let server = server().await;
    let mut good: Vec<Client> = Vec::new();
    for i in 0..5 {
        let mut client = server.client().await;
        client
            .request(json!({"type": "hello", "token": A_TOKEN}))
            .await;
        client.heartbeat(&format!("A-{i}")).await;
        good.push(client);
    }
    for i in 0..10 {
        let mut bad = server.client().await;
        bad.send(&json!({"type": "heartbeat", "proj": format!("A-{i}")}).to_string())
            .await;
        assert_refused_and_closed(&mut bad).await;
    }
    for (i, client) in good.iter_mut().enumerate() {
        client.heartbeat(&format!("A-{i}")).await;
        assert_eq!(
            server.client_record(&format!("A-{i}")).await["heartbeats"],
            2
        );
    }
    assert_eq!(server.known_clients().await, 5.0);
    assert_eq!(unauthorized_count(&server).await, 10.0);
    server.stop().await;
}

#[actix_rt::test]
async fn pong_and_custom_frames_need_an_authenticated_connection() {
    // Answers whether the frame it was given still held a token (it must not: a handler that
    // logs its frame must not log a secret).
    let echo = |frame: CustomFrame, _: HandlerContext| async move {
        let saw_token = frame.text.contains("token");
        let Value::Object(map) = json!({"ok": true, "saw_token": saw_token}) else {
            unreachable!()
        };
        HandlerReply::Ok(map)
    };
    let builder = Builder::new(test_config())
        .auth(auth())
        .handler("status", echo);
    let server = TestServer::start_with(builder).await;

    let mut client = server.client().await;
    client.send(r#"{"type":"pong","seq":0}"#).await;
    assert_refused_and_closed(&mut client).await;

    let mut client = server.client().await;
    client.send(r#"{"type":"status"}"#).await;
    assert_refused_and_closed(&mut client).await;

    // An unknown type is refused as unauthorized too: no probing for handler names.
    let mut client = server.client().await;
    client.send(r#"{"type":"whatever"}"#).await;
    assert_refused_and_closed(&mut client).await;

    let mut client = server.client().await;
    let reply = client
        .request(json!({"type": "status", "token": A_TOKEN}))
        .await;
    assert_eq!(
        reply,
        json!({"ok": true, "saw_token": false, "type": "status"})
    );
    client
        .request(json!({"type": "hello", "token": A_TOKEN}))
        .await;
    let reply = client.request(json!({"type": "status"})).await;
    assert_eq!(reply["ok"], true);
    // Accepted, and, as always, not answered.
    client.send(r#"{"type":"pong","seq":0}"#).await;
    client.heartbeat("A-1").await;
    server.stop().await;
}

#[actix_rt::test]
async fn bad_frames_get_their_own_error_and_an_unauthenticated_connection_is_closed_at_the_deadline(
) {
    let session = SessionConfig {
        first_frame_timeout: Duration::from_millis(300),
        ..SessionConfig::default()
    };
    let builder = Builder::new(test_config()).auth(auth()).session(session);
    let server = TestServer::start_with(builder).await;
    let mut client = server.client().await;
    // A frame that does not parse has no effect and says why, as without authentication.
    assert_eq!(client.error_code_for(b"{not json\n").await, "bad_json");
    // Blank lines do not hold the connection open without a token: the deadline still runs.
    client.send_raw(b"\n\n").await;
    let (lines, _) = client.read_until_closed().await;
    assert!(lines.is_empty(), "{lines:?}");
    eventually(
        IO_TIMEOUT,
        "the first-frame close to be counted",
        || async {
            server
                .metric(r#"heartwatch_sessions_closed_total{reason="first_frame"}"#)
                .await
                == 1.0
        },
    )
    .await;

    // An authenticated connection is not closed by it. A connection opened after it is
    // closed by the deadline: once that has happened, the authenticated one's deadline (no
    // later) has passed too, and it is still served.
    let mut client = server.client().await;
    client
        .request(json!({"type": "hello", "token": GLOBAL}))
        .await;
    let mut later = server.client().await;
    let (lines, _) = later.read_until_closed().await;
    assert!(lines.is_empty(), "{lines:?}");
    client.heartbeat("late").await;
    eventually(
        IO_TIMEOUT,
        "the second first-frame close to be counted",
        || async {
            server
                .metric(r#"heartwatch_sessions_closed_total{reason="first_frame"}"#)
                .await
                == 2.0
        },
    )
    .await;
    server.stop().await;
}

#[actix_rt::test]
async fn without_authentication_a_hello_is_welcomed_and_tokens_are_ignored() {
    let server = TestServer::start_default().await;
    let mut client = server.client().await;
    let welcome = client
        .request(json!({"type": "hello", "token": "anything", "seq": 1}))
        .await;
    assert_eq!(welcome, json!({"type": "welcome", "auth": false, "seq": 1}));
    let reply = client
        .request(json!({"type": "heartbeat", "proj": "P", "token": 12}))
        .await;
    common::assert_ack(&reply, "P");
    client.send(r#"{"type":"pong"}"#).await;
    client.heartbeat("Q").await;
    assert_eq!(unauthorized_count(&server).await, 0.0);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hw-auth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Replaces `path` in one step, as an operator's editor or config management would.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write tokens");
    std::fs::rename(&tmp, path).expect("rename tokens");
}

async fn reloads(server: &BinServer, result: &str) -> f64 {
    server
        .metric(&format!(
            "heartwatch_auth_reloads_total{{result=\"{result}\"}}"
        ))
        .await
}

/// Sends a hello with `token` on a new connection: whether it was welcomed. A refused one must
/// have been closed after its `unauthorized`.
async fn hello_accepted(server: &BinServer, token: &str) -> bool {
    let mut client = Client::connect(server.tcp).await;
    let reply = client
        .request(json!({"type": "hello", "token": token}))
        .await;
    if reply["type"] == "welcome" {
        return true;
    }
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    let (rest, _) = client.read_until_closed().await;
    assert!(rest.is_empty(), "{rest:?}");
    false
}

#[actix_rt::test]
async fn the_binary_rereads_its_tokens_file_on_sighup_and_keeps_it_when_broken() {
    const OLD: &str = "old-token-5e0c1f2d";
    const NEW: &str = "new-token-a7b3c9d1";
    let dir = temp_dir("reload");
    let file = dir.join("tokens.toml");
    write_atomically(&file, &format!("\"A-*\" = \"{OLD}\"\n"));
    let path = file.to_str().expect("UTF-8 path").to_owned();
    let server = BinServer::spawn_with(
        "127.0.0.1:0",
        &[("HEARTWATCH__AUTH__TOKENS_FILE", &path)],
        &[],
    );
    let mut persistent = Client::connect(server.tcp).await;
    persistent
        .request(json!({"type": "hello", "token": OLD}))
        .await;
    persistent.heartbeat("A-1").await;
    assert!(!hello_accepted(&server, NEW).await);

    write_atomically(&file, &format!("\"A-*\" = \"{NEW}\"\n"));
    server.signal("HUP");
    eventually(IO_TIMEOUT, "a successful reload", || async {
        reloads(&server, "ok").await == 1.0
    })
    .await;
    assert!(hello_accepted(&server, NEW).await, "the new token works");
    assert!(
        !hello_accepted(&server, OLD).await,
        "the removed one does not"
    );
    // A connection authenticated with the removed token is refused at its next frame.
    persistent
        .send(&json!({"type": "heartbeat", "proj": "A-1"}).to_string())
        .await;
    let (lines, _) = persistent.read_until_closed().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(parse_json(&lines[0])["code"], "unauthorized");

    for broken in ["\"A-*\" = \"unterminated\n", "\"A-[\" = \"x-token\"\n"] {
        write_atomically(&file, broken);
        let failed_before = reloads(&server, "failed").await;
        server.signal("HUP");
        eventually(IO_TIMEOUT, "a failed reload", || async {
            reloads(&server, "failed").await == failed_before + 1.0
        })
        .await;
        assert!(hello_accepted(&server, NEW).await, "kept after {broken:?}");
    }
    std::fs::remove_file(&file).expect("remove tokens");
    server.signal("HUP");
    eventually(IO_TIMEOUT, "a failed reload of a missing file", || async {
        reloads(&server, "failed").await == 3.0
    })
    .await;
    assert!(
        hello_accepted(&server, NEW).await,
        "kept after the file vanished"
    );
    assert_eq!(
        server.client_status("A-1").await,
        200,
        "the server still runs"
    );

    let stderr = server.stderr_so_far().join("\n");
    assert!(
        stderr.contains("reload failed") && stderr.contains(&path),
        "a failed reload is logged naming the file: {stderr}"
    );
    for token in [OLD, NEW, "x-token", "unterminated"] {
        assert!(!stderr.contains(token), "{token} logged: {stderr}");
    }
    drop(server);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[actix_rt::test]
async fn heartwatch_beat_authenticates_with_its_token() {
    let server = BinServer::spawn_with("127.0.0.1:0", &[("HEARTWATCH__AUTH__TOKEN", GLOBAL)], &[]);
    let mut good = BeatProcess::spawn(
        server.tcp,
        "B-1",
        &["--interval", "100ms", "--token", GLOBAL],
    );
    good.expect_state("up", IO_TIMEOUT).await;
    let acked = good.expect_state("acked", IO_TIMEOUT).await;
    assert_eq!(acked.value["seq"], 1, "the first heartbeat is acked");
    assert_eq!(server.client_status("B-1").await, 200);

    // From the environment, so that the token is not on a command line.
    let mut env_client =
        BeatProcess::spawn_with(server.tcp, "B-2", &[("HEARTWATCH_TOKEN", GLOBAL)], &[]);
    env_client.expect_state("acked", IO_TIMEOUT).await;

    let mut refused =
        BeatProcess::spawn_with(server.tcp, "B-3", &[("HEARTWATCH_TOKEN", "wrong")], &[]);
    let rejected = refused.expect_state("rejected", IO_TIMEOUT).await;
    assert_eq!(rejected.value["code"], "unauthorized");
    let down = refused.expect_state("down", IO_TIMEOUT).await;
    assert_eq!(down.value["reason"], "unauthorized", "{}", refused.so_far());
    assert_eq!(server.client_status("B-3").await, 404);
    let stderr = server.stderr_so_far().join("\n");
    assert!(!stderr.contains(GLOBAL), "{stderr}");
}

/// `heartwatch serve` must exit with code 2 and one stderr line containing every needle.
fn assert_config_error(env: &[(&str, &str)], needles: &[&str]) {
    let mut cmd = heartwatch_cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{env:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} not in {stderr}");
    }
}

#[test]
fn an_unusable_tokens_file_at_start_exits_2_naming_it() {
    let missing = "/nonexistent/heartwatch-tokens.toml";
    assert_config_error(
        &[("HEARTWATCH__AUTH__TOKENS_FILE", missing)],
        &["auth.tokens_file", missing],
    );
    let dir = temp_dir("start");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "\"A-[\" = \"start-secret\"\n").expect("write");
    let path = file.to_str().expect("UTF-8 path");
    assert_config_error(
        &[("HEARTWATCH__AUTH__TOKENS_FILE", path)],
        &["auth.tokens_file", path, "A-["],
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, "[auth.proj_tokens]\n\"B-[\" = \"start-secret\"\n").expect("write");
    let mut cmd = heartwatch_cmd();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--config", config.to_str().expect("UTF-8 path")]);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("auth.proj_tokens") && stderr.contains("B-["),
        "{stderr}"
    );
    assert!(!stderr.contains("start-secret"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn no_token_is_ever_printed_with_the_configuration() {
    let debug = format!("{:?}", auth());
    assert!(
        !debug.contains(GLOBAL) && !debug.contains(A_TOKEN),
        "{debug}"
    );
    assert!(debug.contains("A-*"), "patterns are shown: {debug}");
}

/// `{"type":"whois","proj":P}` answered through the handler context, which checks the
/// connection's tokens.
async fn whois(frame: CustomFrame, ctx: HandlerContext) -> HandlerReply {
    let ask: Value = frame
        .parse()
        .map_err(|e| heartwatch::extension::HandlerError::new(e.to_string()))?;
    let proj = heartwatch::protocol::Proj::new(ask["proj"].as_str().unwrap_or(""))
        .map_err(|e| heartwatch::extension::HandlerError::new(e.to_string()))?;
    let online = ctx.client(proj).await?.is_some();
    let Value::Object(map) = json!({ "online": online }) else {
        unreachable!()
    };
    Ok(map)
}

/// A token valid only for `A-*` cannot read or act on `B-1` through a custom handler (before
/// the fix, handlers got the whole registry).
#[actix_rt::test]
async fn a_custom_handler_acts_only_on_what_the_connection_token_covers() {
    let server = TestServer::start_with(
        Builder::new(test_config())
            .auth(auth())
            .handler("whois", whois),
    )
    .await;
    let mut admin = server.client().await;
    assert_eq!(
        admin
            .request(json!({"type":"heartbeat","proj":"B-1","token":GLOBAL}))
            .await["type"],
        "ack"
    );

    let mut scoped = server.client().await;
    let welcome = scoped
        .request(json!({"type":"hello","token":A_TOKEN}))
        .await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let refused = scoped.request(json!({"type":"whois","proj":"B-1"})).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "handler_error", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not valid for proj"),
        "{refused}"
    );
    // Its own projs, yes; and the connection stays open.
    let mine = scoped.request(json!({"type":"whois","proj":"A-1"})).await;
    assert_eq!(mine, json!({"type":"whois","online":false}));
    // A frame token that covers B-1 opens it for that frame.
    let with_token = scoped
        .request(json!({"type":"whois","proj":"B-1","token":GLOBAL}))
        .await;
    assert_eq!(with_token, json!({"type":"whois","online":true}));
    server.stop().await;
}
