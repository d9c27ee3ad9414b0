//! Shared fixture for the gates tests: registry-example in a real repository with fresh SSH
//! keys in its allowed signers, a `pr` branch, dated commits and signed approval commits.
#![allow(dead_code)]

use crate::common::{self, code, stderr, stdout, SshKey, TestRepo};
use serde_json::Value;

/// Baseline commit time: every example version entered its stage then.
pub const T0: &str = "2026-11-20T10:00:00Z";
/// PR commit time.
pub const T1: &str = "2026-11-23T09:00:00Z";
/// Tuesday 11:00 in Berlin: inside the production window, 4 days after T0.
pub const NOW: &str = "2026-11-24T10:00:00Z";

/// A registry-example repository on `main` (allowed signers replaced by fresh keys), with a
/// `pr` branch checked out.
pub struct World {
    pub repo: TestRepo,
    _keys: tempfile::TempDir,
    pub alice: SshKey,
    pub bob: SshKey,
    pub carol: SshKey,
    /// A real key that is not in the allowed-signers file.
    pub dave: SshKey,
}

impl World {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(edit: impl FnOnce(&TestRepo)) -> Self {
        let repo = TestRepo::new();
        common::copy_dir(&common::example_dir(), repo.path());
        let keys = tempfile::tempdir().unwrap();
        let alice = SshKey::generate(keys.path(), "alice", "alice@acme.com");
        let bob = SshKey::generate(keys.path(), "bob", "bob@acme.com");
        let carol = SshKey::generate(keys.path(), "carol", "carol@acme.com");
        let dave = SshKey::generate(keys.path(), "dave", "dave@acme.com");
        repo.write(
            ".baton/allowed_signers",
            &format!(
                "{}\n{}\n{}\n",
                alice.allowed_signers_line(),
                bob.allowed_signers_line(),
                carol.allowed_signers_line()
            ),
        );
        edit(&repo);
        let w = World {
            repo,
            _keys: keys,
            alice,
            bob,
            carol,
            dave,
        };
        w.commit("baseline", T0);
        w.repo.git(&["checkout", "-q", "-b", "pr"]);
        w
    }

    pub fn commit(&self, msg: &str, date: &str) -> String {
        self.repo.git(&["add", "-A"]);
        self.repo.git_env(
            &[("GIT_AUTHOR_DATE", date), ("GIT_COMMITTER_DATE", date)],
            &["commit", "-q", "--allow-empty", "-m", msg],
        );
        self.repo.head()
    }

    /// A commit authored by `who` (as `git -c user.email=...`).
    pub fn commit_as(&self, who: &str, msg: &str) -> String {
        self.repo.git(&["add", "-A"]);
        self.repo.git_env(
            &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
            &[
                "-c",
                &format!("user.email={who}"),
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                msg,
            ],
        );
        self.repo.head()
    }

    /// A signed empty approval commit by `key` with the trailer value `what`.
    pub fn approve(&self, key: &SshKey, what: &str) -> String {
        self.approve_at(key, what, T1)
    }

    /// [`World::approve`] with author and committer dates `date` (which whoever commits sets).
    pub fn approve_at(&self, key: &SshKey, what: &str, date: &str) -> String {
        self.commit_signed(
            key,
            &[("GIT_AUTHOR_DATE", date), ("GIT_COMMITTER_DATE", date)],
            &[
                "--allow-empty",
                "-m",
                "approve",
                "-m",
                &format!("Baton-Approve: {what}"),
            ],
        )
    }

    /// `git commit -q -S ARGS` signed with `key`, committer e-mail its principal, dated T1;
    /// `env` overrides (dates, `GIT_AUTHOR_EMAIL`, `GIT_COMMITTER_EMAIL`, ...).
    pub fn commit_signed(&self, key: &SshKey, env: &[(&str, &str)], args: &[&str]) -> String {
        let mut full_env = vec![("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)];
        full_env.extend_from_slice(env);
        let signingkey = format!("user.signingkey={}", key.private.display());
        let email = format!("user.email={}", key.principal);
        let mut full = vec![
            "-c",
            "gpg.format=ssh",
            "-c",
            &signingkey,
            "-c",
            &email,
            "commit",
            "-q",
            "-S",
        ];
        full.extend_from_slice(args);
        self.repo.git_env(&full_env, &full);
        self.repo.head()
    }

    /// Replace the allowed-signers file on `main` (a baseline change at T0) and restart the
    /// `pr` branch from there.
    pub fn set_signers(&self, text: &str) {
        self.repo.git(&["checkout", "-q", "main"]);
        self.repo.write(".baton/allowed_signers", text);
        self.commit("change the allowed signers", T0);
        self.repo.git(&["checkout", "-q", "pr"]);
        self.repo.git(&["reset", "-q", "--hard", "main"]);
    }

    pub fn check(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--format", "json", "check", "--base", "main"];
        if !extra.contains(&"--now") {
            args.extend_from_slice(&["--now", NOW]);
        }
        args.extend_from_slice(extra);
        let out = self.repo.baton(&args);
        let json = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&out), stderr(&out)));
        (code(&out), json)
    }

    /// Merge `pr` into `main` with a merge commit at T1 (as GitHub's merge button does), then
    /// check out a `revert` branch that reverts that merge (`git revert -m 1`) at NOW.
    pub fn merge_pr_and_revert(&self, merge_message: &str) {
        self.repo.git(&["checkout", "-q", "main"]);
        self.repo.git_env(
            &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
            &["merge", "-q", "--no-ff", "pr", "-m", merge_message],
        );
        self.repo.git(&["checkout", "-q", "-b", "revert"]);
        self.repo.git_env(
            &[("GIT_AUTHOR_DATE", NOW), ("GIT_COMMITTER_DATE", NOW)],
            &["revert", "--no-edit", "-m", "1", "HEAD"],
        );
    }

    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        self.repo.edit(rel, from, to);
    }
}

pub const CP1: &str = "models/churn-predictor/versions/1.yaml";
pub const CP2: &str = "models/churn-predictor/versions/2.yaml";
pub const FD3: &str = "models/fraud-detector/versions/3.yaml";
pub const FD4: &str = "models/fraud-detector/versions/4.yaml";
pub const FD5: &str = "models/fraud-detector/versions/5.yaml";
pub const FE7: &str = "models/feature-encoder/versions/7.yaml";
pub const FE8: &str = "models/feature-encoder/versions/8.yaml";

/// The transition `mv` (`model@version`) of a JSON report.
pub fn transition<'a>(j: &'a Value, mv: &str) -> &'a Value {
    j["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            format!(
                "{}@{}",
                t["model"].as_str().unwrap(),
                t["version"].as_str().unwrap()
            ) == mv
        })
        .unwrap_or_else(|| panic!("no transition {mv} in {j:#}"))
}

/// The verdicts of `rule` for transition `mv` (`model@version`).
pub fn verdicts<'a>(j: &'a Value, mv: &str, rule: &str) -> Vec<&'a Value> {
    let t = transition(j, mv);
    t["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["rule"] == rule)
        .collect()
}

/// The single verdict of `rule` for `mv`: (passed, reason).
pub fn rule(j: &Value, mv: &str, rule: &str) -> (bool, String) {
    let vs = verdicts(j, mv, rule);
    assert_eq!(vs.len(), 1, "expected one {rule} verdict for {mv}: {j:#}");
    (
        vs[0]["passed"].as_bool().unwrap(),
        vs[0]["reason"].as_str().unwrap().to_owned(),
    )
}
