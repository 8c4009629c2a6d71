//! What only the `heartwatch` binary needs: the load generator, the lines `heartwatch beat`
//! prints, logging set-up, SIGHUP.
//! Not part of the library: an embedding application has its own.

pub mod beat_report;
pub mod bench;
pub mod hangup;
pub mod logging;
/// The same reader of `/proc/<pid>` the library's `process_*` metrics use, compiled into the
/// binary for `heartwatch bench --pid`.
#[path = "../process_stats.rs"]
pub mod process_stats;
