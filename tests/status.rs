//! `heartwatch status`, the real binary against the real server: the table, one client, JSON,
//! `--watch`, the token, HTTPS, and the exit codes scripts rely on (0 all online, 1 some
//! client late or offline or a named one not online, 2 usage or connection error).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::pki::Pki;
use common::{heartwatch_cmd, send_signal, BinServer, Client, IO_TIMEOUT};
use serde_json::Value;

/// What one run printed, and how it ended.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `heartwatch status <args>` with `env` to its end (at most [`IO_TIMEOUT`]).
fn status(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = heartwatch_cmd();
    cmd.arg("status").args(args).stdout(Stdio::piped());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("spawn heartwatch status");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("heartwatch status {args:?} did not exit within {IO_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: exit.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn http(server: &BinServer) -> String {
    server.http.to_string()
}

#[actix_rt::test]
async fn the_table_lists_every_client_plain_when_piped_and_exits_0() {
    let server = BinServer::spawn(&[]);
    let mut client = Client::connect(server.tcp).await;
    client.heartbeat_timeout("P-17", 20_000).await;
    client.heartbeat_timeout("db-primary", 90_000).await;

    let run = status(&["--http", &http(&server)], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PROJ", "STATE", "LAST", "SEEN", "TIMEOUT", "ADDRESS"],
        "{run:?}"
    );
    let addr = client.local.to_string();
    let p17: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(p17[0], "P-17");
    assert_eq!(p17[1], "online");
    assert!(p17[2].ends_with('s') && p17[3] == "ago", "{run:?}");
    assert_eq!(&p17[4..], ["20s", addr.as_str()]);
    assert!(lines[2].starts_with("db-primary  online"), "{run:?}");
    assert!(lines[2].contains("1m 30s"), "{run:?}");
    assert_eq!(lines[3], "2 clients: 2 online");
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when piped: {run:?}"
    );

    // A filter that matches nothing is no failure.
    let run = status(&["--http", &http(&server), "--state", "late"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "no clients\n");
}

#[actix_rt::test]
async fn one_client_is_shown_with_its_fields_and_exits_1_when_not_online() {
    let server = BinServer::spawn(&[]);
    let mut client = Client::connect(server.tcp).await;
    client.heartbeat_timeout("P-17", 15_000).await;
    client.heartbeat("P-17").await;

    let run = status(&["--http", &http(&server), "P-17"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("\nstate       online\n"), "{run:?}");
    assert!(run.stdout.contains("\ntimeout     15s\n"), "{run:?}");
    assert!(run.stdout.contains("\nheartbeats  2\n"), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("\naddress     {}\n", client.local)),
        "{run:?}"
    );

    let run = status(&["--http", &http(&server), "P-17", "--json"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let record: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(record["proj"], "P-17");
    assert_eq!(record["heartbeats"], 2);
    let history = &record["history"];
    assert_eq!(history["state"], "online", "{record}");
    assert_eq!(history["events"][0]["event"], "online", "{record}");

    client.offline("P-17").await;
    // Gone, but its history says what became of it.
    let run = status(&["--http", &http(&server), "P-17"], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.starts_with("proj   P-17\nstate  offline\n"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("  offline  offline"),
        "its goodbye: {run:?}"
    );
    let run = status(&["--http", &http(&server), "P-17", "--json"], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let record: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(record["state"], "offline", "{record}");
    assert_eq!(
        record["history"]["events"][1]["reason"], "offline",
        "{record}"
    );
    // Never seen: unknown.
    let run = status(&["--http", &http(&server), "P-99"], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "P-99: unknown to the server (not online)\n");
    let run = status(&["--http", &http(&server), "P-99", "--json"], &[]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), "null\n"));
}

#[actix_rt::test]
async fn json_lists_the_server_records() {
    let server = BinServer::spawn(&[]);
    let mut client = Client::connect(server.tcp).await;
    for proj in ["P-3", "P-1", "P-2"] {
        client.heartbeat(proj).await;
    }
    let run = status(&["--http", &http(&server), "--json"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let listed: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let from_api = server.get("/api/v1/clients").await.json();
    let projs = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["proj"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(projs(&listed), ["P-1", "P-2", "P-3"]);
    assert_eq!(listed[0]["addr"], from_api[0]["addr"]);
    assert_eq!(listed[0]["heartbeats"], from_api[0]["heartbeats"]);
}

#[test]
fn usage_and_connection_errors_exit_2() {
    // Nothing listens on port 1 of loopback.
    let run = status(&["--http", "127.0.0.1:1"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("cannot reach"), "{run:?}");
    let run = status(&["--http", "ftp://example/x"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--http"), "{run:?}");
    let run = status(&["--no-such-flag"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[actix_rt::test]
async fn with_a_token_on_the_server_the_token_is_needed() {
    let token = "status-test-token";
    let server = BinServer::spawn_with(
        "127.0.0.1:0",
        &[("HEARTWATCH__AUTH__HTTP_TOKEN", token)],
        &[],
    );
    let mut client = Client::connect(server.tcp).await;
    client.heartbeat("P-17").await;

    let run = status(&["--http", &http(&server)], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("401") && run.stderr.contains("HEARTWATCH_HTTP_TOKEN"),
        "{run:?}"
    );
    let run = status(
        &["--http", &http(&server)],
        &[("HEARTWATCH_HTTP_TOKEN", token)],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("P-17"), "{run:?}");
    let run = status(&["--http", &http(&server), "--token", token, "P-17"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[actix_rt::test]
async fn over_https_the_ca_is_trusted() {
    let pki = Pki::new("status");
    let (cert, key) = (
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
    );
    let server = BinServer::spawn_with(
        "127.0.0.1:0",
        &[
            ("HEARTWATCH__TLS__CERT", &cert),
            ("HEARTWATCH__TLS__KEY", &key),
        ],
        &[],
    );
    let url = format!("https://{}", server.http);
    let ca = pki.ca.display().to_string();
    let run = status(&["--http", &url, "--ca", &ca], &[]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "no clients\n"),
        "{run:?}"
    );
    // The system's roots do not know the test CA.
    let run = status(&["--http", &url], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
}

/// `heartwatch status --watch <args>` with its stdout lines read live.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn spawn(args: &[&str]) -> Self {
        let mut cmd = heartwatch_cmd();
        cmd.args(["status", "--watch"])
            .args(args)
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn heartwatch status --watch");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a JSON line (a redraw) for which `ok` holds.
    fn expect(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no redraw with {what} within {IO_TIMEOUT:?}; lines: {:#?}",
                    self.seen
                )
            });
            self.seen.push(line.clone());
            let value: Value = serde_json::from_str(&line).expect("a JSON line");
            if ok(&value) {
                return value;
            }
        }
    }

    /// Sends SIGINT and returns the exit code.
    fn interrupt(mut self) -> Option<i32> {
        send_signal(self.child.id(), "INT");
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(exit) = self.child.try_wait().expect("wait") {
                return exit.code();
            }
            assert!(std::time::Instant::now() < deadline, "no exit after SIGINT");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state_of<'a>(list: &'a Value, proj: &str) -> Option<&'a str> {
    list.as_array()?
        .iter()
        .find(|c| c["proj"] == proj)
        .and_then(|c| c["state"].as_str())
}

#[actix_rt::test]
async fn watch_redraws_on_events_and_keeps_offline_clients() {
    let server = BinServer::spawn(&[]);
    let mut watch = Watch::spawn(&["--http", &http(&server), "--json"]);
    watch.expect("the first, empty view", |v| v == &Value::Array(vec![]));

    let mut client = Client::connect(server.tcp).await;
    client.heartbeat_timeout("P-17", 30_000).await;
    let view = watch.expect("P-17 online with its timeout", |v| {
        state_of(v, "P-17") == Some("online")
            && v[0]["timeout_ms"] == 30_000
            && v[0]["heartbeats"] == 1
    });
    assert_eq!(view[0]["addr"], client.local.to_string());

    client.offline("P-17").await;
    let view = watch.expect("P-17 offline", |v| state_of(v, "P-17") == Some("offline"));
    assert_eq!(view[0]["reason"], "offline");
    // An offline client is listed: the exit code says so.
    assert_eq!(watch.interrupt(), Some(1));
}

#[actix_rt::test]
async fn watch_of_one_client_follows_it_and_exits_0_while_it_is_online() {
    let server = BinServer::spawn(&[]);
    let mut client = Client::connect(server.tcp).await;
    let mut watch = Watch::spawn(&["--http", &http(&server), "--json", "P-17"]);
    watch.expect("unknown P-17", Value::is_null);
    client.heartbeat_timeout("P-17", 30_000).await;
    // Another client's events do not concern this view.
    client.heartbeat("P-18").await;
    let view = watch.expect("P-17 online", |v| v["state"] == "online");
    assert_eq!(view["proj"], "P-17");
    assert_eq!(watch.interrupt(), Some(0));
}
