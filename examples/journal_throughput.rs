//! How fast the event log takes events, per `storage.fsync` policy: a burst of offlines (a
//! switch dies and 10,000 clients go at once) and events one at a time (each waiting for its
//! commit, the worst case for `always`).
//!
//! ```console
//! $ cargo run --release --example journal_throughput [-- DIR]
//! ```
//!
//! DIR (default: a temporary directory) is where the logs are written: point it at the disk
//! the server will use, since sync latency is a property of the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use heartwatch::config::{Config, FsyncPolicy};
use heartwatch::metrics::Metrics;
use heartwatch::protocol::Proj;
use heartwatch::storage::Journal;
use heartwatch::{Event, OfflineReason};

const BURST: u64 = 10_000;
const ONE_BY_ONE: u64 = 200;

fn online(i: u64) -> Event {
    Event::Online {
        proj: Proj::new(&format!("bench-{i}")).expect("a valid proj"),
        addr: "127.0.0.1:40000".parse().expect("an address"),
        at: SystemTime::now(),
    }
}

fn offline(i: u64) -> Event {
    Event::Offline {
        proj: Proj::new(&format!("bench-{i}")).expect("a valid proj"),
        reason: OfflineReason::Timeout,
        addr: "127.0.0.1:40000".parse().expect("an address"),
        last_seen: SystemTime::now(),
        at: SystemTime::now(),
    }
}

/// Waits until the log has committed event `seq`.
async fn committed(journal: &Journal, seq: u64) {
    let mut committed = journal.committed();
    while *committed.borrow_and_update() < seq {
        committed.changed().await.expect("the writer runs");
    }
}

#[actix_rt::main]
async fn main() {
    let base = std::env::args().nth(1).map(PathBuf::from);
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
        let mut config = Config::default().storage;
        config.path = dir.clone();
        config.fsync = policy;
        let metrics = Arc::new(Metrics::new());
        let (journal, _) =
            Journal::open(&config, metrics.clone(), Vec::new()).expect("the log opens");
        for i in 0..BURST {
            journal.append(&online(i), Duration::from_secs(20));
        }
        committed(&journal, BURST).await;

        // A burst: every client goes offline at once.
        let syncs = metrics.storage_syncs();
        let start = Instant::now();
        for i in 0..BURST {
            journal.append(&offline(i), Duration::ZERO);
        }
        committed(&journal, 2 * BURST).await;
        let burst = start.elapsed();
        let burst_syncs = metrics.storage_syncs() - syncs;

        // One at a time, each waiting for its commit.
        let syncs = metrics.storage_syncs();
        let start = Instant::now();
        for i in 0..ONE_BY_ONE {
            journal.append(&online(BURST + i), Duration::from_secs(20));
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
