//! What the bench reads from the server under test: its CPU and memory (from `/proc` given a
//! pid, else from its `/metrics`), and its event stream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

use crate::cli::process_stats::ProcessStats;

/// CPU seconds and RSS of the server, by pid or by scraping `/metrics`.
pub(crate) async fn server_stats(
    pid: Option<u32>,
    http: Option<SocketAddr>,
) -> Option<ProcessStats> {
    if let Some(pid) = pid {
        return ProcessStats::read(Some(pid)).ok();
    }
    let text = http_get(http?, "/metrics").await.ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(ProcessStats {
        cpu_seconds: value("process_cpu_seconds_total")?,
        rss_bytes: value("process_resident_memory_bytes")? as u64,
        threads: value("process_threads").unwrap_or(0.0) as u64,
    })
}

/// The body of `GET path` (HTTP/1.1, `Connection: close`).
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(
            response
                .split_once("\r\n\r\n")
                .map_or(String::new(), |(_, b)| b.to_string()),
        )
    };
    timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// An `offline` event seen on the stream.
#[derive(Debug, Clone)]
pub(crate) struct OfflineSeen {
    pub proj: String,
    pub reason: String,
    pub at: SystemTime,
    pub last_seen: SystemTime,
}

/// Follows `/api/v1/events` until `stop`, keeping the `offline` events of projs that start
/// with `prefix`. Returns once the stream is open (headers read).
pub(crate) async fn follow_events(
    addr: SocketAddr,
    prefix: String,
    seen: Arc<Mutex<Vec<OfflineSeen>>>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // Status line and headers.
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
    }
    Ok(tokio::spawn(async move {
        let mut line = String::new();
        loop {
            line.clear();
            tokio::select! {
                read = reader.read_line(&mut line) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = stop.changed() => return,
            }
            // Chunked transfer encoding interleaves size lines; only `data:` lines matter.
            let Some(json) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(json) else {
                continue;
            };
            if event["event"] != "offline" {
                continue;
            }
            let proj = event["proj"].as_str().unwrap_or_default();
            if !proj.starts_with(&prefix) {
                continue;
            }
            let time = |key: &str| {
                event[key]
                    .as_str()
                    .and_then(|s| humantime::parse_rfc3339(s).ok())
            };
            let (Some(at), Some(last_seen)) = (time("at"), time("last_seen")) else {
                continue;
            };
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(OfflineSeen {
                    proj: proj.to_string(),
                    reason: event["reason"].as_str().unwrap_or_default().to_string(),
                    at,
                    last_seen,
                });
        }
    }))
}
