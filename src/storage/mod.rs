//! The durable event log: every `online` and `offline`, appended as JSON lines, from which
//! the server recovers its online clients after a restart and webhooks are delivered.
//!
//! # Why JSON lines and not an embedded database
//! The log is append-only and read back sequentially (at start, and by webhook deliveries
//! following its end): the access pattern of a file. JSON lines need no dependency, are
//! written with one `write` per batch, survive a torn last line (skipped on reading), and can
//! be read with `tail`, `grep` and `jq` when an operator asks "when did P-17 go offline last
//! night?". An embedded store (sled, redb) would add a page cache and a compaction engine of
//! its own to do the same job.
//!
//! # Layout
//! `storage.path` holds `LOCK` (held while a server runs) and segments named
//! `events-<first seq>.jsonl`. Each segment starts with a snapshot of the online clients, so
//! recovery needs only the newest one; older ones are kept until every webhook has delivered
//! their events, or until the log exceeds `storage.max_bytes`.

mod event_index;
mod fsync_policy;
mod history;
mod journal;
mod log_record;
mod recovery;
mod segment;
mod tail;
#[cfg(test)]
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use fsync_policy::FsyncPolicy;
pub use history::{ClientHistory, History, HistoryConfig, Uptime};
pub(crate) use journal::Journal;
pub(crate) use log_record::{ClusterStamp, LogRecord};
pub(crate) use recovery::RecoveredClient;
pub(crate) use tail::LogTail;

/// `[storage]`: the event log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the log; empty: no log (no recovery after a restart, no webhooks).
    pub path: PathBuf,
    /// When the log is forced to disk.
    pub fsync: FsyncPolicy,
    /// Longest time between syncs with `fsync = "interval"`.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// Event bytes after which a new segment (with a snapshot) is started.
    pub segment_bytes: u64,
    /// Size above which the oldest segments are deleted even if a webhook still needs them.
    pub max_bytes: u64,
}

impl StorageConfig {
    /// Whether the log is on.
    pub fn enabled(&self) -> bool {
        !self.path.as_os_str().is_empty()
    }
}

/// The log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("event log: cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// To which file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the directory's lock.
    #[error(
        "event log: {} is in use by another heartwatch (its LOCK is held); \
         give each server its own storage.path",
        path.display()
    )]
    Locked {
        /// The directory.
        path: PathBuf,
    },
}
