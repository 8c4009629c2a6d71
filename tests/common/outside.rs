//! Programs from outside the project that some tests need (promtool, ...).
//!
//! A test that needs one FAILS, saying how to install it, when `CI` is set (CI must have it:
//! `.ci/run` installs it), and is SKIPPED, printing the same message, otherwise.

use std::path::PathBuf;

/// The path of `program` on `PATH`; `None` (after printing why the test is skipped) if it is
/// not installed outside CI. Panics under `CI` when it is missing, with `install` (how to
/// install it) in the message.
pub fn outside_program(program: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    if found.is_some() {
        return found;
    }
    let message = format!("{program} is not installed: {install}");
    if std::env::var_os("CI").is_some() {
        panic!("{message} (CI is set, so this test cannot be skipped)");
    }
    eprintln!("SKIPPED: {message}");
    None
}
