//! Records the intervals between the heartbeats of real clients, as a server sees them: the
//! jitter traces of docs/detection.md (`tests/data/jitter/*.txt`).
//!
//! It listens like a heartwatch server (acking every heartbeat as the server does), and writes,
//! for each connection, the milliseconds between its consecutive heartbeats, one per line, to
//! `<out>/<prefix>-<n>.txt`, until `<seconds>` have passed:
//!
//! ```text
//! cargo run --release --example record_intervals -- 127.0.0.1:17800 3600 traces loopback &
//! heartwatch beat --server 127.0.0.1:17800 --proj a --interval 1s &
//! ```

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, seconds, out, prefix] = args.as_slice() else {
        eprintln!("usage: record_intervals ADDR SECONDS OUT_DIR PREFIX");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    std::fs::create_dir_all(out)?;
    let listener = TcpListener::bind(addr).await?;
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut n = 0;
    let mut tasks = Vec::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = tokio::time::sleep_until(end) => break,
        };
        n += 1;
        let path = format!("{out}/{prefix}-{n}.txt");
        tasks.push(tokio::spawn(record(accepted.0, path, end)));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn record(stream: tokio::net::TcpStream, path: String, end: tokio::time::Instant) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut file = std::fs::File::create(&path).expect("create the trace file");
    let mut last: Option<Instant> = None;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            () = tokio::time::sleep_until(end) => return,
        };
        let Ok(Some(line)) = line else { return };
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if frame["type"] != "heartbeat" {
            continue;
        }
        let now = Instant::now();
        if let Some(last) = last {
            let _ = writeln!(file, "{}", (now - last).as_millis());
        }
        last = Some(now);
        let ack = serde_json::json!({
            "type": "ack", "proj": frame["proj"], "seq": frame["seq"],
            "timeout_ms": 20_000, "interval_ms": 6_667,
        });
        if write
            .write_all(format!("{ack}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
