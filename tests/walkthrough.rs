//! `scripts/walkthrough.sh`, the README's promotion story, run end to end against the built
//! binary: register -> promote -> check -> approve -> merge -> deployed -> rollback -> history.

use std::path::Path;
use std::process::Command;

/// `ssh-keygen` is there, or (saying why) the test skips; under `CI=true` it must be there.
fn have_ssh_keygen() -> bool {
    let found = Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("ssh-keygen not found; CI installs openssh-client");
        }
        eprintln!("skipping: ssh-keygen (openssh-client) is not installed");
    }
    found
}

/// The text between the line `## <step>` and the next `## ` heading.
fn section<'a>(out: &'a str, step: &str) -> &'a str {
    let start = out
        .find(&format!("\n## {step}"))
        .unwrap_or_else(|| panic!("no step {step:?} in:\n{out}"));
    let rest = &out[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The DEPLOYED column of `model` in `environment` in the last `baton status` table of `text`.
fn deployed(text: &str, environment: &str, model: &str) -> String {
    let table = text
        .rsplit(&format!("environment {environment} "))
        .next()
        .unwrap();
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(model))
        .unwrap_or_else(|| panic!("no {model} row in:\n{table}"));
    row.split_whitespace().nth(2).unwrap().to_owned()
}

#[test]
fn the_readme_walkthrough_runs_start_to_finish() {
    if !have_ssh_keygen() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/walkthrough.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(tmp.path().join("walk"))
        .env("BATON", env!("CARGO_BIN_EXE_baton"))
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "stdout:\n{text}\nstderr:\n{err}");

    let first = section(&text, "1.");
    assert_eq!(deployed(first, "staging", "example"), "1", "{first}");

    let check = section(&text, "4.");
    assert!(check.contains("✗ approvals"), "{check}");
    assert!(
        check.contains("to pass:      1 more approval from bob@example.com (not alice@example.com"),
        "{check}"
    );
    assert!(
        check.contains("`baton approve example 2 --stage staging`"),
        "{check}"
    );
    assert!(
        check.contains("FAIL: 2 transitions, 1 failed: example@2 (approvals)"),
        "{check}"
    );

    let approve = section(&text, "5.");
    assert!(
        err.contains("you (alice@example.com) made this change")
            && err.contains("ask bob@example.com"),
        "{err}"
    );
    assert!(
        approve.contains("Baton-Approve: example@2 -> staging"),
        "{approve}"
    );
    assert!(
        approve.contains("✓ approvals     1 of 1 approval from group:ml-leads: bob@example.com"),
        "{approve}"
    );
    assert!(
        approve.contains("PASS: 2 transitions, all gates pass"),
        "{approve}"
    );

    let merged = section(&text, "7.");
    assert_eq!(deployed(merged, "staging", "example"), "2", "{merged}");

    let rolled = section(&text, "8.");
    assert!(
        rolled.contains("which put example 2 in `staging`"),
        "{rolled}"
    );
    assert_eq!(deployed(rolled, "staging", "example"), "1", "{rolled}");

    let history = section(&text, "9.");
    let rows: Vec<Vec<&str>> = history
        .lines()
        .filter(|l| l.starts_with("20"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    // date, time, commit, version, from, ->, to, author, approvals: newest first.
    let trail: Vec<(&str, &str, &str, &str)> =
        rows.iter().map(|r| (r[3], r[4], r[6], r[8])).collect();
    assert_eq!(
        trail,
        [
            ("1", "archived", "staging", "-"),
            ("2", "staging", "development", "-"),
            ("1", "staging", "archived", "-"),
            ("2", "development", "staging", "bob@example.com"),
            ("2", "(new)", "development", "-"),
            ("1", "(new)", "staging", "-"),
        ],
        "{history}"
    );
}
