//! When the event log is forced to disk.

use serde::Deserialize;

/// `storage.fsync`: how much a power loss may take with it.
///
/// The log is written by its own thread, so even `always` never stalls a heartbeat: the
/// writer takes every record queued since its last write, writes them in one `write`, then
/// syncs once for all of them (group commit). What `always` adds is a guarantee: an event is
/// on disk before any webhook delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// `fdatasync` after every write: a power loss loses nothing that was delivered.
    Always,
    /// `fdatasync` at most every `storage.fsync_interval`: a power loss loses at most that
    /// much. A crash of the process alone loses nothing (the data is in the page cache).
    Interval,
    /// Never sync; the kernel writes back when it likes (typically within 30 s).
    Never,
}
