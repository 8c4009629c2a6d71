//! `deploy/heartwatch.service`: the systemd unit is valid (`systemd-analyze verify`), hardened
//! (`systemd-analyze security`: exposure at most 2.0, "OK"), and agrees with the server it
//! runs (reload by SIGHUP, the event log in its state directory, a raised open-files limit).
//!
//! Needs `systemd-analyze` (Debian package `systemd`): without it the test fails under CI
//! (`CI` set) and is skipped elsewhere, saying how to install it.

mod common;

use std::process::Command;

use common::require_programs;

const UNIT: &str = include_str!("../deploy/heartwatch.service");

/// The values of `key=` in the unit, in order.
fn values<'a>(key: &str) -> Vec<&'a str> {
    UNIT.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn value(key: &str) -> &'static str {
    match values(key).as_slice() {
        [one] => one,
        other => panic!("{key}: expected one value, got {other:?}"),
    }
}

#[test]
fn the_unit_matches_the_server_it_runs() {
    assert!(value("ExecStart").starts_with("/usr/local/bin/heartwatch serve "));
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("DynamicUser"), "yes");
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    // The event log is the one directory it may write, and the state directory is it.
    let state = value("StateDirectory");
    assert!(values("Environment")
        .contains(&format!("HEARTWATCH__STORAGE__PATH=/var/lib/{state}").as_str()));
    // Far above the default server.max_connections (100 000): one descriptor per client.
    let files: u64 = value("LimitNOFILE").parse().expect("a number");
    assert!(files > 100_000, "LimitNOFILE={files}");
}

#[test]
fn systemd_analyze_verifies_the_unit_and_rates_it_hardened() {
    let Some(tools) = require_programs(&["systemd-analyze"], "apt-get install systemd") else {
        return;
    };
    // `verify` checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("heartwatch.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            "/usr/local/bin/heartwatch",
            env!("CARGO_BIN_EXE_heartwatch"),
        ),
    )
    .expect("write the unit");

    // --man=no: the man page is installed by the operator (`heartwatch man`), not here.
    let verify = Command::new(&tools[0])
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze verify");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "verify failed: {complaints}");
    assert!(
        complaints.trim().is_empty(),
        "verify complains: {complaints}"
    );

    let security = Command::new(&tools[0])
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for heartwatch.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in: {report}{}",
                String::from_utf8_lossy(&security.stderr)
            )
        });
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(exposure <= 2.0, "exposure {exposure}:\n{report}");
}
