//! What only the `heartwatch` binary needs, not part of the library's API: the load
//! generator, the lines `heartwatch beat` prints, `status` (a client of the HTTP API),
//! `completions` / `man` (generated from the command-line definition), logging set-up, SIGHUP.
//! An embedding application has its own.

pub mod beat_report;
pub mod bench;
pub(crate) mod docs;
pub mod hangup;
pub mod logging;
/// The same reader of `/proc/<pid>` the library's `process_*` metrics use, compiled into the
/// binary for `heartwatch bench --pid`.
#[path = "../process_stats.rs"]
pub mod process_stats;
pub(crate) mod status;
