//! `heartwatch completions <SHELL>` and `heartwatch man`: generated from the command-line
//! definition, checked by running them (bash completes a subcommand and a flag; groff renders
//! the page without warnings).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{heartwatch_cmd, require_programs};

/// `heartwatch <args>`: exit code, stdout, stderr.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = heartwatch_cmd()
        .args(args)
        .stdout(Stdio::piped())
        .output()
        .expect("run heartwatch");
    (
        output.status.code(),
        String::from_utf8(output.stdout).expect("UTF-8"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const SUBCOMMANDS: [&str; 6] = ["serve", "beat", "bench", "status", "completions", "man"];

/// What bash's completion offers for the words typed so far (the last one being completed).
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let current = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={current}; _heartwatch heartwatch {} {}; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        quoted[current],
        quoted[current - 1],
    );
    let output = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("run bash");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let (code, script, stderr) = run(&["completions", "bash"]);
    assert_eq!(code, Some(0), "{stderr}");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("heartwatch.bash");
    std::fs::write(&file, script).expect("write the script");
    assert_eq!(bash_completes(&file, &["heartwatch", "st"]), ["status"]);
    let all = bash_completes(&file, &["heartwatch", ""]);
    for sub in SUBCOMMANDS {
        assert!(all.iter().any(|w| w == sub), "{sub} in {all:?}");
    }
    assert_eq!(
        bash_completes(&file, &["heartwatch", "status", "--wa"]),
        ["--watch"]
    );
}

#[test]
fn every_shell_gets_a_script_naming_every_subcommand() {
    for (shell, marker) in [
        ("zsh", "#compdef heartwatch"),
        ("fish", "complete -c heartwatch"),
        ("elvish", "edit:completion:arg-completer[heartwatch]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (code, script, stderr) = run(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
    }
    let (code, _, stderr) = run(&["completions", "tcsh"]);
    assert_eq!(code, Some(2), "an unknown shell is a usage error: {stderr}");
    assert!(stderr.contains("bash"), "the shells are listed: {stderr}");
}

#[test]
fn the_man_page_documents_every_subcommand_and_renders() {
    let (code, page, stderr) = run(&["man"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(page.contains(".TH heartwatch 1"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "no {sub} in the page");
    }
    let (code, status_page, _) = run(&["man", "status"]);
    assert_eq!(code, Some(0));
    assert!(status_page.contains(".TH heartwatch-status 1"));
    assert!(status_page.contains("\\-\\-watch"), "{status_page}");
    let (code, _, stderr) = run(&["man", "nope"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("status"),
        "the subcommands are listed: {stderr}"
    );

    let Some(groff) = require_programs(&["groff"], "apt-get install groff-base") else {
        return;
    };
    for roff in [page, status_page] {
        let mut child = Command::new(&groff[0])
            .args(["-man", "-Tutf8", "-ww"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run groff");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), roff.as_bytes())
            .expect("write to groff");
        let mut text = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .expect("groff output");
        let output = child.wait_with_output().expect("groff");
        assert!(output.status.success());
        assert!(
            output.stderr.is_empty(),
            "groff warns: {:?}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains("heartwatch"), "{text}");
    }
}
