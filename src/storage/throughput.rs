//! How fast the event log takes events, per `storage.fsync` policy: a burst of offlines (a
//! switch dies and 10,000 clients go at once) and events one at a time (each waiting for its
//! commit, the worst case for `always`). A measurement, not a test; docs/performance.md has its
//! figures.
//!
//! ```console
//! $ HEARTWATCH_BENCH_DIR=/var/lib/heartwatch cargo test --release --lib journal_throughput -- --ignored --nocapture
//! ```
//!
//! `HEARTWATCH_BENCH_DIR` (default: the temporary directory) is where the logs are written:
//! point it at the disk the server will use, since sync latency is a property of the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{FsyncPolicy, Journal, StorageConfig};
use crate::events::{ClientTimeout, Event, OfflineReason, Published, Sink};
use crate::metrics::Metrics;
use crate::protocol::Proj;

/// Appends `event` under the next number, as the registry's pipeline does.
fn append(journal: &mut Journal, event: Event) {
    let id = NEXT.with(|n| {
        let id = n.get() + 1;
        n.set(id);
        id
    });
    journal.publish(&Published {
        id,
        event,
        timeout: Some(ClientTimeout {
            timeout: Duration::from_secs(20),
            requested: false,
        }),
        muted: false,
        intervals: None,
        stamp: None,
    });
}

thread_local! {
    static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

const BURST: u64 = 10_000;
const ONE_BY_ONE: u64 = 200;

fn online(i: u64) -> Event {
    Event::Online {
        proj: Proj::new(&format!("bench-{i}")).expect("a valid proj"),
        addr: "127.0.0.1:40000".parse().expect("an address"),
        at: SystemTime::now(),
        recovered: false,
        outage: None,
    }
}

fn offline(i: u64) -> Event {
    Event::Offline {
        proj: Proj::new(&format!("bench-{i}")).expect("a valid proj"),
        reason: OfflineReason::Timeout,
        addr: "127.0.0.1:40000".parse().expect("an address"),
        last_seen: SystemTime::now(),
        at: SystemTime::now(),
        evidence: None,
        outage: None,
    }
}

/// Waits until the log has committed event `seq`.
async fn committed(journal: &Journal, seq: u64) {
    let mut committed = journal.committed();
    while *committed.borrow_and_update() < seq {
        committed.changed().await.expect("the writer runs");
    }
}

/// Not a test: a measurement, printed. Ignored unless asked for.
#[ignore = "a benchmark: run it with --ignored --nocapture, in release mode"]
#[actix_rt::test]
async fn journal_throughput() {
    let base = std::env::var_os("HEARTWATCH_BENCH_DIR").map(PathBuf::from);
    let scratch = tempfile_dir(base);
    println!("log directory: {}", scratch.display());
    println!(
        "{:<9} {:>16} {:>14} {:>18} {:>14}",
        "fsync", "burst events/s", "burst syncs", "one-by-one mean", "syncs/event"
    );
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval,
        FsyncPolicy::Never,
    ] {
        let dir = scratch.join(format!("{policy:?}").to_lowercase());
        NEXT.with(|n| n.set(0));
        let mut config = StorageConfig {
            path: PathBuf::new(),
            fsync: policy,
            fsync_interval: Duration::from_secs(1),
            segment_bytes: 16 << 20,
            max_bytes: 256 << 20,
        };
        config.path = dir.clone();
        config.fsync = policy;
        let metrics = Arc::new(Metrics::new());
        let (mut journal, _) =
            Journal::open(&config, metrics.clone(), Vec::new()).expect("the log opens");
        for i in 0..BURST {
            append(&mut journal, online(i));
        }
        committed(&journal, BURST).await;

        // A burst: every client goes offline at once.
        let syncs = metrics.storage_syncs();
        let start = Instant::now();
        for i in 0..BURST {
            append(&mut journal, offline(i));
        }
        committed(&journal, 2 * BURST).await;
        let burst = start.elapsed();
        let burst_syncs = metrics.storage_syncs() - syncs;

        // One at a time, each waiting for its commit.
        let syncs = metrics.storage_syncs();
        let start = Instant::now();
        for i in 0..ONE_BY_ONE {
            append(&mut journal, online(BURST + i));
            committed(&journal, 2 * BURST + i + 1).await;
        }
        let each = start.elapsed() / ONE_BY_ONE as u32;
        let each_syncs = metrics.storage_syncs() - syncs;
        journal.close().await;
        println!(
            "{:<9} {:>16.0} {:>14} {:>18} {:>14.2}",
            format!("{policy:?}").to_lowercase(),
            BURST as f64 / burst.as_secs_f64(),
            burst_syncs,
            format!("{:.3} ms", each.as_secs_f64() * 1e3),
            each_syncs as f64 / ONE_BY_ONE as f64,
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn tempfile_dir(base: Option<PathBuf>) -> PathBuf {
    let base = base.unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("heartwatch-journal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
