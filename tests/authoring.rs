//! The authoring verbs on real repositories: `promote` edits manifests (archiving or splitting
//! the previous holder) and commits on a branch; `approve` makes a real SSH-signed approval
//! commit with the user's git config; `rollback` reverts the commit that put a version in place.
//! Ends with promote -> approve -> check -> merge -> rollback on registry-example.

use crate::common;
use crate::world;

use common::{code, stderr, stdout, SshKey};
use world::*;

fn baton(w: &World, args: &[&str]) -> std::process::Output {
    w.repo.baton(args)
}

/// Use `key` as this repository's git signing identity (what `baton approve` signs with).
fn sign_as(w: &World, key: &SshKey) {
    w.repo.git(&["config", "gpg.format", "ssh"]);
    w.repo
        .git(&["config", "user.signingkey", key.private.to_str().unwrap()]);
    w.repo.git(&["config", "user.email", &key.principal]);
}

#[test]
fn promote_to_exclusive_stage_archives_the_holder() {
    let w = World::new();
    // fraud-detector 5 needs its evidence before staging; add it the way a pipeline would.
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: true}\nlineage:",
    );
    w.commit("evidence for 5", T1);
    let out = baton(&w, &["promote", "fraud-detector", "5", "--to", "staging"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("fraud-detector 5: development -> staging"),
        "{text}"
    );
    assert!(
        text.contains("fraud-detector 4: staging -> archived"),
        "{text}"
    );
    assert!(w.repo.read(FD5).contains("\nstage: staging\n"));
    assert!(w.repo.read(FD4).contains("\nstage: archived\n"));
    // Only `stage` changed, byte for byte.
    let diff = w.repo.git(&["diff", "--numstat"]);
    assert_eq!(diff.lines().count(), 2, "{diff}");
    assert!(diff.lines().all(|l| l.starts_with("1\t1\t")), "{diff}");
    // Nothing committed without --commit.
    assert_eq!(w.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "pr");
}

#[test]
fn promote_canary_with_commit_makes_a_branch() {
    let w = World::new();
    w.repo.git(&["checkout", "-q", "main"]);
    let out = baton(
        &w,
        &[
            "--format",
            "json",
            "promote",
            "churn-predictor",
            "2",
            "--to",
            "production",
            "--traffic",
            "10",
            "--commit",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["branch"], "promote/churn-predictor-2-production");
    assert_eq!(j["edits"].as_array().unwrap().len(), 1);
    assert_eq!(j["edits"][0]["traffic"], 10);
    assert_eq!(
        w.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]),
        "promote/churn-predictor-2-production"
    );
    let msg = w.repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        msg.starts_with("Promote churn-predictor 2 to production (10% traffic)"),
        "{msg}"
    );
    assert!(
        msg.contains("- churn-predictor 2: staging -> production (10% traffic)"),
        "{msg}"
    );
    let files = w.repo.git(&["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(files, CP2);
    assert!(w
        .repo
        .read(CP2)
        .contains("stage: production\ntraffic: 10\n"));
    // The branch exists now: a second run refuses to overwrite it.
    w.repo.git(&["checkout", "-q", "main"]);
    let out = baton(
        &w,
        &[
            "promote",
            "churn-predictor",
            "2",
            "--to",
            "production",
            "--traffic",
            "10",
            "--commit",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    // --branch names another.
    let out = baton(
        &w,
        &[
            "promote",
            "churn-predictor",
            "2",
            "--to",
            "production",
            "--traffic",
            "20",
            "--commit",
            "--branch",
            "cp2-canary",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        w.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]),
        "cp2-canary"
    );
}

#[test]
fn promote_rejects_what_makes_no_sense() {
    let w = World::new();
    for (args, want) in [
        (
            vec!["promote", "churn-predictor", "2", "--to", "prod"],
            "unknown stage `prod`",
        ),
        (
            vec!["promote", "churn-predictor", "9", "--to", "production"],
            "has no version `9`",
        ),
        (
            vec!["promote", "nope", "1", "--to", "production"],
            "unknown model `nope`",
        ),
        (
            vec![
                "promote",
                "churn-predictor",
                "2",
                "--to",
                "staging",
                "--traffic",
                "5",
            ],
            "--traffic needs a canary stage",
        ),
        (
            vec![
                "promote",
                "churn-predictor",
                "2",
                "--to",
                "production",
                "--traffic",
                "100",
            ],
            "must be 1..99",
        ),
    ] {
        let out = baton(&w, &args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    // The registry's rules refuse (exit 1): already there; a canary split without a primary.
    let out = baton(
        &w,
        &["promote", "churn-predictor", "1", "--to", "production"],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("already in `production`"),
        "{}",
        stderr(&out)
    );
    w.edit(CP1, "stage: production", "stage: production\ntraffic: 95");
    let out = baton(
        &w,
        &[
            "promote",
            "churn-predictor",
            "2",
            "--to",
            "production",
            "--traffic",
            "10",
        ],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("exactly one version of `churn-predictor` must carry no `traffic`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn approve_makes_a_signed_commit_that_check_counts() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.commit("promote", T1);
    sign_as(&w, &w.alice);
    let out = baton(
        &w,
        &["approve", "churn-predictor", "2", "--stage", "production"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("Baton-Approve: churn-predictor@2 -> production"));
    let msg = w.repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        msg.contains("\nBaton-Approve: churn-predictor@2 -> production"),
        "{msg}"
    );
    // git's own verification agrees.
    let signers = w.repo.path().join(".baton/allowed_signers");
    w.repo.git(&[
        "-c",
        &format!("gpg.ssh.allowedSignersFile={}", signers.display()),
        "verify-commit",
        "HEAD",
    ]);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(
        !ok && reason.contains("1 of 2 approvals from group:ml-leads, owners: alice@acme.com"),
        "{reason}"
    );
    // A stage the manifest is not in cannot be approved.
    let out = baton(
        &w,
        &["approve", "churn-predictor", "2", "--stage", "staging"],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("is in `production` at HEAD, not `staging`"),
        "{}",
        stderr(&out)
    );
    // Policy approvals.
    sign_as(&w, &w.carol);
    let out = baton(&w, &["--format", "json", "approve", "--policy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["trailer"], "Baton-Approve: policy");
    assert_eq!(j["signed"], true);
    // Missing arguments are a usage error.
    assert_eq!(code(&baton(&w, &["approve", "churn-predictor"])), 2);
}

#[test]
fn approve_refuses_your_own_change_and_explains_ssh_signing() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    let promoted = w.commit_as("alice@acme.com", "promote");
    sign_as(&w, &w.alice);
    let out = baton(
        &w,
        &["approve", "churn-predictor", "2", "--stage", "production"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "you (alice@acme.com) made this change (commit {})",
            &promoted[..10]
        )),
        "{err}"
    );
    assert!(
        err.contains("approvals never count a change's own author"),
        "{err}"
    );
    assert!(
        err.contains("ask ") && err.contains("bob@acme.com"),
        "{err}"
    );
    assert!(!err.contains("ask alice@acme.com"), "{err}");
    assert_eq!(w.repo.head(), promoted, "no approval commit was made");

    // Someone else may; but with git set to sign with GPG, approve says how to use SSH.
    sign_as(&w, &w.bob);
    w.repo.git(&["config", "gpg.format", "openpgp"]);
    let out = baton(
        &w,
        &["approve", "churn-predictor", "2", "--stage", "production"],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 2, "{err}");
    assert!(err.contains("`gpg.format=openpgp`"), "{err}");
    assert!(
        err.contains("git config gpg.format ssh && git config user.signingkey"),
        "{err}"
    );
    assert!(err.contains(".baton/allowed_signers"), "{err}");
    assert!(!err.contains("gpg:"), "{err}");
    assert_eq!(w.repo.head(), promoted);
    w.repo.git(&["config", "gpg.format", "ssh"]);
    let out = baton(
        &w,
        &["approve", "churn-predictor", "2", "--stage", "production"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn rollback_without_commit_leaves_the_revert_staged() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production");
    w.edit(CP1, "stage: production", "stage: archived");
    w.commit("promote churn-predictor 2", T1);
    let out = baton(&w, &["rollback", "churn-predictor", "--env", "production"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("which put churn-predictor 2 in `production`"),
        "{}",
        stdout(&out)
    );
    assert!(w.repo.read(CP1).contains("stage: production"));
    assert!(w.repo.read(CP2).contains("stage: staging"));
    let status = w.repo.git(&["status", "--porcelain"]);
    assert!(
        status.contains("M  models/churn-predictor/versions/1.yaml"),
        "{status}"
    );
    // Errors: unknown environment, no version in the stage.
    w.repo.git(&["revert", "--abort"]);
    let out = baton(&w, &["rollback", "churn-predictor", "--env", "prod"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unknown environment `prod`"));
    let out = baton(&w, &["rollback", "churn-predictor", "--env", "staging"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("no version in `staging`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn promote_approve_check_merge_rollback_end_to_end() {
    let w = World::new();
    w.repo.git(&["checkout", "-q", "main"]);
    // 1. promote (canary first would need a second PR; promote fully, archiving version 1).
    let out = baton(
        &w,
        &[
            "promote",
            "churn-predictor",
            "2",
            "--to",
            "production",
            "--commit",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let branch = "promote/churn-predictor-2-production";
    // 2. check before approvals: fails on approvals only.
    let check = |w: &World, base: &str| {
        let out = w
            .repo
            .baton(&["--format", "json", "check", "--base", base, "--now", NOW]);
        let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        (code(&out), j)
    };
    let (c, j) = check(&w, "main");
    assert_eq!(c, 1);
    assert_eq!(
        j["summary"],
        "2 transitions, 1 failed: churn-predictor@2 (approvals)"
    );
    // 3. two reviewers approve with `baton approve` (their own signing keys).
    sign_as(&w, &w.alice);
    assert_eq!(
        code(&baton(
            &w,
            &["approve", "churn-predictor", "2", "--stage", "production"]
        )),
        0
    );
    sign_as(&w, &w.bob);
    assert_eq!(
        code(&baton(
            &w,
            &["approve", "churn-predictor", "2", "--stage", "production"]
        )),
        0
    );
    let (c, j) = check(&w, "main");
    assert_eq!(c, 0, "{j:#}");
    // 4. merge with a merge commit (keeps the signed approvals on main's history).
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git(&[
        "-c",
        "user.email=carol@acme.com",
        "merge",
        "-q",
        "--no-ff",
        branch,
        "-m",
        "Merge promotion",
    ]);
    let merged = w.repo.head();
    // The daemon's view of what landed passes too.
    let out = w
        .repo
        .baton(&["check", "--base", "main~1", "--head", "main", "--now", NOW]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // 5. roll back production: reverts the merge commit with -m 1, on a branch.
    w.repo.git(&["checkout", "-q", "-b", "rollback"]);
    let out = baton(
        &w,
        &[
            "--format",
            "json",
            "rollback",
            "churn-predictor",
            "--env",
            "production",
            "--commit",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["reverted"], merged.as_str());
    assert_eq!(j["merge"], true);
    assert!(w.repo.read(CP1).contains("stage: production"));
    assert!(w.repo.read(CP2).contains("stage: staging"));
    let (c, j) = check(&w, "main");
    assert_eq!(c, 0, "{j:#}");
    assert!(
        j["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["rollback"] == true),
        "{j:#}"
    );
}
