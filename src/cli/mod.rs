//! Subcommands of the binary that are not part of the library's API: `status` (a client of
//! the HTTP API) and `completions` / `man` (generated from the command-line definition).

pub(crate) mod docs;
pub(crate) mod status;
