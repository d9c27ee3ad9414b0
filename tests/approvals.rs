//! Approvals (docs/approvals.md) and their security cases on real repositories with real SSH-signed
//! commits: a PR cannot add its own signer or loosen its own rules; unsigned, unknown-key,
//! stale, self-authored, duplicate and tampered approvals do not count. GitHub reviews come
//! from a local HTTP server serving GitHub's documented JSON.

use crate::common;
use crate::world;

use common::github::{pull, review, serve_with_self_url};
use common::{stdout, SshKey};
use std::process::Command;
use world::*;

const TARGET: &str = "churn-predictor@2 -> production";

fn canary_cp2(w: &World) -> String {
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.commit("promote churn-predictor 2 to production", T1)
}

fn approvals(w: &World) -> (bool, String) {
    let (_, j) = w.check(&[]);
    rule(&j, "churn-predictor@2", "approvals")
}

#[test]
fn two_allowed_signers_pass() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(ok, "{reason}");
}

#[test]
fn pr_adding_its_own_signer_does_not_count() {
    let w = World::new();
    canary_cp2(&w);
    // The PR lists dave's key under alice's principal, and dave signs as "alice".
    let line = w
        .dave
        .allowed_signers_line()
        .replace("dave@acme.com", "alice@acme.com");
    let signers = format!("{}{line}\n", w.repo.read(".baton/allowed_signers"));
    w.repo.write(".baton/allowed_signers", &signers);
    w.commit("add a signer", T1);
    let fake_alice = SshKey {
        private: w.dave.private.clone(),
        principal: "alice@acme.com".into(),
    };
    w.approve(&fake_alice, TARGET);
    w.approve(&w.bob, TARGET);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok);
    assert!(reason.starts_with("1 of 2"), "{reason}");
    assert!(
        reason.contains("is not in the allowed signers at base"),
        "{reason}"
    );
    // And the signers change itself needs the policy owners.
    assert_eq!(j["blocks_all"], true);
    let pc = &j["change"][0];
    assert_eq!(pc["rule"], "policy-change");
    assert_eq!(pc["file"], ".baton/allowed_signers");
    assert!(pc["reason"]
        .as_str()
        .unwrap()
        .starts_with("the allowed-signers file changed"));
}

#[test]
fn pr_loosening_a_threshold_is_judged_by_the_base_policy() {
    let w = World::with(|r| r.edit(CP2, "auc: 0.938", "auc: 0.91"));
    canary_cp2(&w);
    w.edit(
        "baton.yaml",
        "- approvals: {min: 2, from: [group:ml-leads, owners]}",
        "- approvals: {min: 0, from: [group:ml-leads, owners]}",
    );
    w.edit(
        "baton.yaml",
        "- metric: {name: auc, min: 0.92, max_regression: 0.005}",
        "- metric: {name: auc, min: 0.5}",
    );
    w.commit("loosen the gates", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok && reason.starts_with("0 of 2"), "{reason}");
    let vs = verdicts(&j, "churn-predictor@2", "metric");
    assert_eq!(vs[0]["passed"], false);
    assert!(vs[0]["reason"].as_str().unwrap().contains("< min 0.92"));
    let pc = j["change"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "policy-change")
        .unwrap();
    assert_eq!(pc["passed"], false);
}

#[test]
fn unsigned_trailer_does_not_count() {
    let w = World::new();
    canary_cp2(&w);
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &[
            "-c",
            "user.email=alice@acme.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "approve",
            "-m",
            &format!("Baton-Approve: {TARGET}"),
        ],
    );
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok);
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(reason.contains(": unsigned"), "{reason}");
}

#[test]
fn key_not_in_allowed_signers_does_not_count() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.dave, TARGET);
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok);
    assert!(
        reason.contains("is not in the allowed signers at base"),
        "{reason}"
    );
    assert!(reason.contains("key SHA256:"), "{reason}");
}

#[test]
fn approval_before_a_later_edit_is_stale() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    assert!(approvals(&w).0);
    w.edit(CP2, "traffic: 10", "traffic: 50");
    w.commit("more traffic", T1);
    let (ok, reason) = approvals(&w);
    assert!(!ok);
    assert!(reason.starts_with("0 of 2"), "{reason}");
    assert_eq!(
        reason
            .matches("stale, the manifest changed after it")
            .count(),
        2,
        "{reason}"
    );
    // Approving again binds to the new manifest.
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    assert!(approvals(&w).0);
}

#[test]
fn author_cannot_approve_own_change() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.commit_as("alice@acme.com", "alice promotes churn-predictor 2");
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok);
    assert!(reason.contains("alice@acme.com (commit "), "{reason}");
    assert!(
        reason.contains("an author of the change cannot approve it"),
        "{reason}"
    );
}

#[test]
fn signer_of_the_change_is_an_author_even_under_another_name() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.repo.git(&["add", "-A"]);
    // Signed with alice's key while claiming to be someone else.
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={}", w.alice.private.display()),
            "-c",
            "user.email=alice@acme.com",
            "commit",
            "-q",
            "-S",
            "--author",
            "Intern <intern@acme.com>",
            "-m",
            "promote",
        ],
    );
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok, "{reason}");
    assert!(
        reason.contains("an author of the change cannot approve it"),
        "{reason}"
    );
}

#[test]
fn one_approver_counts_once() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.alice, TARGET);
    w.approve(&w.alice, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok);
    assert!(reason.starts_with("1 of 2"), "{reason}");
    assert!(reason.contains("already counted"), "{reason}");
}

#[test]
fn tampered_commit_does_not_verify() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.alice, TARGET);
    let signed = w.approve(&w.bob, TARGET);
    // Rewrite bob's commit object with a changed message but the same signature header.
    let raw = w.repo.git(&["cat-file", "commit", &signed]);
    assert!(raw.contains("gpgsig -----BEGIN SSH SIGNATURE-----"));
    let tampered = raw.replacen("\napprove\n", "\napprove (edited)\n", 1);
    assert_ne!(raw, tampered);
    let path = w.repo.path().join("tampered-commit");
    std::fs::write(&path, format!("{tampered}\n")).unwrap();
    let oid = w
        .repo
        .git(&["hash-object", "-t", "commit", "-w", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    w.repo.git(&["update-ref", "refs/heads/pr", &oid]);
    // git itself agrees the signature is bad.
    let signers = w.repo.path().join(".baton/allowed_signers");
    let oracle = Command::new("git")
        .args([
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", signers.display()),
            "verify-commit",
            &oid,
        ])
        .current_dir(w.repo.path())
        .output()
        .unwrap();
    assert!(!oracle.status.success());
    let good = Command::new("git")
        .args([
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", signers.display()),
            "verify-commit",
            &signed,
        ])
        .current_dir(w.repo.path())
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let (ok, reason) = approvals(&w);
    assert!(!ok);
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: alice@acme.com"),
        "{reason}"
    );
    assert!(reason.contains("signature does not verify"), "{reason}");
}

#[test]
fn allowed_signers_options_are_honoured() {
    // bob's key only for namespace "file"; carol's expired; "*@acme.com" for dave's key.
    let w = World::new();
    let bob_file = w
        .bob
        .allowed_signers_line()
        .replace("namespaces=\"git\"", "namespaces=\"file\"");
    let carol_old = w.carol.allowed_signers_line().replace(
        "namespaces=\"git\"",
        "namespaces=\"git\",valid-before=\"20200101\"",
    );
    let dave_any = w
        .dave
        .allowed_signers_line()
        .replace("dave@acme.com", "\"*@acme.com,!mallory@acme.com\"");
    w.repo.write(
        ".baton/allowed_signers",
        &format!(
            "{}\n{bob_file}\n{carol_old}\n{dave_any}\n",
            w.alice.allowed_signers_line()
        ),
    );
    w.repo.git(&["checkout", "-q", "main"]);
    w.commit("restrict signers", T1);
    w.repo.git(&["checkout", "-q", "pr"]);
    w.repo.git(&["reset", "-q", "--hard", "main"]);
    canary_cp2(&w);
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(
        !ok && reason.contains("is not in the allowed signers at base"),
        "{reason}"
    );
    // dave's key is trusted for any @acme.com principal: signing as erin (an owner) counts.
    let as_erin = SshKey {
        private: w.dave.private.clone(),
        principal: "erin@acme.com".into(),
    };
    w.approve(&as_erin, TARGET);
    w.approve(&w.alice, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(ok, "{reason}");
    assert!(reason.contains("erin@acme.com"), "{reason}");
}

#[test]
fn approvals_on_a_merged_branch_count_after_merge() {
    // The daemon's view: base = last deployed, head = main after a merge commit.
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    let deployed = w.repo.git(&["rev-parse", "main"]);
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &[
            "-c",
            "user.email=carol@acme.com",
            "merge",
            "-q",
            "--no-ff",
            "pr",
            "-m",
            "Merge #1",
        ],
    );
    let out = w.repo.baton(&[
        "--format", "json", "check", "--base", &deployed, "--head", "main", "--now", NOW,
    ]);
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["passed"], true, "{j:#}");
}

// ---- GitHub reviews from a local server -------------------------------------------------

fn check_github(w: &World, api: &str) -> (i32, serde_json::Value) {
    let (c, j, _) = check_github_with(w, api, &[]);
    (c, j)
}

/// `baton check --base main --github acme/registry --pr 7` plus `extra` (e.g. `--head REV`):
/// exit code, JSON report (null when none) and stderr.
fn check_github_with(w: &World, api: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "--repo",
            w.repo.path().to_str().unwrap(),
            "--format",
            "json",
            "check",
            "--base",
            "main",
            "--now",
            NOW,
            "--github",
            "acme/registry",
            "--pr",
            "7",
        ])
        .args(extra)
        .env("GITHUB_API_URL", api)
        .env("GITHUB_TOKEN", "test-token")
        .output()
        .unwrap();
    let j = serde_json::from_str(&stdout(&out)).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), j, common::stderr(&out))
}

#[test]
fn github_reviews_count_on_the_head_commit() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.bob, TARGET);
    let head_after = w.repo.head();
    let pull = format!(
        r#"{{"number":7,"state":"open","user":{{"login":"erin-gh"}},"head":{{"ref":"pr","sha":"{head_after}"}},"base":{{"ref":"main","sha":"0000"}}}}"#
    );
    let server_url_placeholder = "{URL}";
    let page1 = format!(
        "[{},{}]",
        review(1, "alice-acme", "CHANGES_REQUESTED", &head_after),
        review(2, "erin-gh", "APPROVED", &head_after)
    );
    let page2 = format!(
        "[{},{}]",
        review(3, "alice-acme", "APPROVED", &head_after),
        review(4, "alice-acme", "COMMENTED", &head_after)
    );
    let routes = vec![
        ("/repos/acme/registry/pulls/7".to_owned(), String::new(), pull),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            format!("Link: <{server_url_placeholder}/repos/acme/registry/pulls/7/reviews?per_page=100&page=2>; rel=\"next\", <{server_url_placeholder}/repos/acme/registry/pulls/7/reviews?per_page=100&page=2>; rel=\"last\"\r\n"),
            page1,
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100&page=2".to_owned(),
            String::new(),
            page2,
        ),
    ];
    // The Link header names the server's own URL.
    let server = serve_with_self_url(routes);
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 0, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(ok, "{reason}");
    assert!(reason.contains("github:alice-acme"), "{reason}");
    assert!(reason.contains("bob@acme.com"), "{reason}");
    let reqs = server.requests.lock().unwrap().clone();
    // The pull request, two pages of reviews, then each approving reviewer's signing keys
    // (404 here: none).
    assert_eq!(reqs.len(), 5, "{reqs:#?}");
    assert!(
        reqs[2].contains("/pulls/7/reviews?per_page=100&page=2"),
        "{reqs:#?}"
    );
    assert!(
        reqs[3..]
            .iter()
            .any(|r| r.contains("/users/alice-acme/ssh_signing_keys")),
        "{reqs:#?}"
    );
    assert!(
        reqs.iter()
            .all(|r| r.contains("Bearer test-token") || r.contains("bearer test-token")),
        "{reqs:#?}"
    );
}

#[test]
fn github_review_of_an_older_commit_does_not_count() {
    let w = World::new();
    let old = canary_cp2(&w);
    w.approve(&w.bob, TARGET);
    let head = w.repo.head();
    let pull = format!(r#"{{"number":7,"user":{{"login":"erin-gh"}},"head":{{"sha":"{head}"}}}}"#);
    let reviews = format!("[{}]", review(1, "alice-acme", "APPROVED", &old));
    let server = serve_with_self_url(vec![
        (
            "/repos/acme/registry/pulls/7".to_owned(),
            String::new(),
            pull,
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            String::new(),
            reviews,
        ),
    ]);
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok && reason.starts_with("1 of 2"), "{reason}");
}

#[test]
fn github_pr_author_review_and_api_errors() {
    let w = World::new();
    canary_cp2(&w);
    let head = w.repo.head();
    // The PR's author is alice-acme: her own review does not count.
    let pull =
        format!(r#"{{"number":7,"user":{{"login":"alice-acme"}},"head":{{"sha":"{head}"}}}}"#);
    let reviews = format!("[{}]", review(1, "alice-acme", "APPROVED", &head));
    let server = serve_with_self_url(vec![
        (
            "/repos/acme/registry/pulls/7".to_owned(),
            String::new(),
            pull,
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            String::new(),
            reviews,
        ),
    ]);
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 1);
    let (_, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(reason.contains("github:alice-acme (GitHub review by alice-acme): an author of the change cannot approve it"), "{reason}");
    // An unknown PR is an environment error: exit 2.
    let server = serve_with_self_url(Vec::new());
    let (c, _) = check_github(&w, &server.url);
    assert_eq!(c, 2);
}

#[test]
fn github_review_and_signed_commit_by_one_person_count_once() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.alice, TARGET);
    let head = w.repo.head();
    let pull = format!(r#"{{"number":7,"user":{{"login":"erin-gh"}},"head":{{"sha":"{head}"}}}}"#);
    let reviews = format!("[{}]", review(1, "alice-acme", "APPROVED", &head));
    // GitHub lists alice's SSH signing key for alice-acme: the same person.
    let pubkey = std::fs::read_to_string(w.alice.private.with_extension("pub")).unwrap();
    let keys = format!(
        r#"[{{"id":1,"key":"{}","title":"laptop","created_at":"2026-01-01T00:00:00Z"}}]"#,
        pubkey.trim()
    );
    let routes = vec![
        (
            "/repos/acme/registry/pulls/7".to_owned(),
            String::new(),
            pull,
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            String::new(),
            reviews,
        ),
        (
            "/users/alice-acme/ssh_signing_keys?per_page=100".to_owned(),
            String::new(),
            keys,
        ),
    ];
    let server = serve_with_self_url(routes.clone());
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 1, "{j:#}");
    let (_, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: alice@acme.com"),
        "{reason}"
    );
    assert!(
        reason.contains("github:alice-acme (GitHub review by alice-acme): already counted"),
        "{reason}"
    );
    // bob's signed approval makes two distinct people.
    w.approve(&w.bob, TARGET);
    let head = w.repo.head();
    let mut routes = routes;
    routes[0].2 =
        format!(r#"{{"number":7,"user":{{"login":"erin-gh"}},"head":{{"sha":"{head}"}}}}"#);
    routes[1].2 = format!("[{}]", review(2, "alice-acme", "APPROVED", &head));
    let server = serve_with_self_url(routes);
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 0, "{j:#}");
}

#[test]
fn github_reviewer_who_signed_the_change_is_an_author() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.repo.git(&["add", "-A"]);
    // alice signs the promotion with her key, under a made-up author e-mail.
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={}", w.alice.private.display()),
            "-c",
            "user.email=someone@example.com",
            "commit",
            "-q",
            "-S",
            "-m",
            "promote",
        ],
    );
    w.approve(&w.bob, TARGET);
    let head = w.repo.head();
    let pubkey = std::fs::read_to_string(w.alice.private.with_extension("pub")).unwrap();
    let server = serve_with_self_url(vec![
        (
            "/repos/acme/registry/pulls/7".to_owned(),
            String::new(),
            format!(r#"{{"number":7,"user":{{"login":"erin-gh"}},"head":{{"sha":"{head}"}}}}"#),
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            String::new(),
            format!("[{}]", review(1, "alice-acme", "APPROVED", &head)),
        ),
        (
            "/users/alice-acme/ssh_signing_keys?per_page=100".to_owned(),
            String::new(),
            format!(r#"[{{"id":1,"key":"{}"}}]"#, pubkey.trim()),
        ),
    ]);
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 1, "{j:#}");
    let (_, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(
        reason.contains("github:alice-acme (GitHub review by alice-acme): an author of the change cannot approve it"),
        "{reason}"
    );
}

#[test]
fn registry_in_a_subfolder_with_signed_approvals() {
    let repo = common::TestRepo::new();
    let root = repo.path().join("ml/registry");
    common::copy_dir(&common::example_dir(), &root);
    let keys = tempfile::tempdir().unwrap();
    let alice = SshKey::generate(keys.path(), "alice", "alice@acme.com");
    let bob = SshKey::generate(keys.path(), "bob", "bob@acme.com");
    repo.write(
        "ml/registry/.baton/allowed_signers",
        &format!(
            "{}\n{}\n",
            alice.allowed_signers_line(),
            bob.allowed_signers_line()
        ),
    );
    let dated = [("GIT_AUTHOR_DATE", T0), ("GIT_COMMITTER_DATE", T0)];
    repo.git(&["add", "-A"]);
    repo.git_env(&dated, &["commit", "-q", "-m", "baseline"]);
    repo.git(&["checkout", "-q", "-b", "pr"]);
    let cp2 = format!("ml/registry/{CP2}");
    repo.edit(&cp2, "stage: staging", "stage: production\ntraffic: 10");
    repo.git(&["add", "-A"]);
    repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &["commit", "-q", "-m", "promote"],
    );
    for key in [&alice, &bob] {
        repo.git_env(
            &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("user.signingkey={}", key.private.display()),
                "-c",
                &format!("user.email={}", key.principal),
                "commit",
                "-q",
                "-S",
                "--allow-empty",
                "-m",
                "approve",
                "-m",
                &format!("Baton-Approve: {TARGET}"),
            ],
        );
    }
    // Discovered without --path, and named with it: same verdict, repository-relative paths.
    for extra in [&[][..], &["--path", "ml/registry/"][..]] {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["check", "--base", "main", "--now", NOW]);
        let out = repo.baton(&args);
        let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(j["passed"], true, "{j:#}");
        assert_eq!(j["registry"], "ml/registry");
        assert_eq!(j["transitions"][0]["file"], cp2.as_str());
        let (ok, reason) = rule(&j, "churn-predictor@2", "soak");
        assert!(
            ok && reason.contains("since 2026-11-20T10:00:00Z"),
            "{reason}"
        );
    }
}

// ---- gate integrity: trailers, authors, key validity, review binding, pagination -------

#[test]
fn trailer_quoted_in_the_body_does_not_approve() {
    let w = World::new();
    canary_cp2(&w);
    // alice signs a commit whose prose quotes the trailer, and more prose follows it.
    w.commit_signed(
        &w.alice,
        &[],
        &[
            "--allow-empty",
            "-m",
            "review notes",
            "-m",
            &format!(
                "Please attach the offline eval first; then I will add\nBaton-Approve: {TARGET}\nto an empty commit of my own."
            ),
            "-m",
            "Thanks for the quick turnaround.",
        ],
    );
    // git agrees: the message has no trailers.
    let parsed = w.repo.git(&["log", "-1", "--format=%(trailers:only)"]);
    assert_eq!(parsed, "", "{parsed}");
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok, "{reason}");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(!reason.contains("alice@acme.com"), "{reason}");
}

#[test]
fn approver_committing_under_another_author_is_still_an_author() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.repo.git(&["add", "-A"]);
    // alice commits the promotion as herself, naming mallory as its author.
    w.repo.git_env(
        &[
            ("GIT_AUTHOR_DATE", T1),
            ("GIT_COMMITTER_DATE", T1),
            ("GIT_AUTHOR_NAME", "Mallory"),
            ("GIT_AUTHOR_EMAIL", "mallory@acme.com"),
        ],
        &[
            "-c",
            "user.email=alice@acme.com",
            "commit",
            "-q",
            "-m",
            "promote churn-predictor 2",
        ],
    );
    assert_eq!(
        w.repo.git(&["log", "-1", "--format=%ae %ce"]),
        "mallory@acme.com alice@acme.com"
    );
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok, "{reason}");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(
        reason.contains("alice@acme.com (commit ")
            && reason.contains("an author of the change cannot approve it"),
        "{reason}"
    );
}

#[test]
fn retired_key_signing_the_change_under_fake_names_is_still_its_owner() {
    let w = World::new();
    let keys = tempfile::tempdir().unwrap();
    // alice's previous key, retired on 2026-11-01, is still listed for the record.
    let old = SshKey::generate(keys.path(), "alice-old", "alice@acme.com");
    let retired = old.allowed_signers_line().replace(
        "namespaces=\"git\"",
        "namespaces=\"git\",valid-before=\"20261101\"",
    );
    w.set_signers(&format!(
        "{}{retired}\n",
        w.repo.read(".baton/allowed_signers")
    ));
    // She signs the promotion with it under a made-up author and committer...
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.repo.git(&["add", "-A"]);
    w.commit_signed(
        &old,
        &[
            ("GIT_AUTHOR_EMAIL", "mallory@evil.example"),
            ("GIT_COMMITTER_EMAIL", "mallory@evil.example"),
        ],
        &["-m", "promote churn-predictor 2"],
    );
    assert_eq!(
        w.repo.git(&["log", "-1", "--format=%ae %ce"]),
        "mallory@evil.example mallory@evil.example"
    );
    // ...then approves it with her current key.
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok, "{reason}");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(
        reason.contains("alice@acme.com (commit ")
            && reason.contains("an author of the change cannot approve it"),
        "{reason}"
    );
}

#[test]
fn github_reviewer_whose_unlisted_key_signed_the_change_is_an_author() {
    let w = World::new();
    let keys = tempfile::tempdir().unwrap();
    // A laptop key of alice's that is not in the allowed signers, but on her GitHub account.
    let laptop = SshKey::generate(keys.path(), "alice-laptop", "someone@example.com");
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    w.repo.git(&["add", "-A"]);
    w.commit_signed(
        &laptop,
        &[("GIT_AUTHOR_EMAIL", "someone@example.com")],
        &["-m", "promote"],
    );
    w.approve(&w.bob, TARGET);
    let head = w.repo.head();
    let pubkey = std::fs::read_to_string(laptop.private.with_extension("pub")).unwrap();
    let server = serve_with_self_url(vec![
        (
            "/repos/acme/registry/pulls/7".to_owned(),
            String::new(),
            pull(7, "erin-gh", &head, None),
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            String::new(),
            format!("[{}]", review(1, "alice-acme", "APPROVED", &head)),
        ),
        (
            "/users/alice-acme/ssh_signing_keys?per_page=100".to_owned(),
            String::new(),
            format!(r#"[{{"id":1,"key":"{}"}}]"#, pubkey.trim()),
        ),
    ]);
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 1, "{j:#}");
    let (_, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(
        reason.contains(
            "github:alice-acme (GitHub review by alice-acme): an author of the change cannot approve it"
        ),
        "{reason}"
    );
}

/// alice's allowed-signers line with `option` added.
fn alice_with(w: &World, option: &str) -> String {
    let alice = w.alice.allowed_signers_line().replace(
        "namespaces=\"git\"",
        &format!("namespaces=\"git\",{option}"),
    );
    format!(
        "{alice}\n{}\n{}\n",
        w.bob.allowed_signers_line(),
        w.carol.allowed_signers_line()
    )
}

#[test]
fn expired_key_does_not_count_on_a_back_dated_commit() {
    let w = World::new();
    w.set_signers(&alice_with(&w, "valid-before=\"20261101\""));
    canary_cp2(&w);
    // Signed today (NOW is 2026-11-24), dated before the key expired.
    w.approve_at(&w.alice, TARGET, "2026-10-15T10:00:00Z");
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok, "{reason}");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(
        reason.contains("is not valid at 2026-11-24T10:00:00Z"),
        "{reason}"
    );
    // Judged while the key was still valid, the same commit counts.
    let (_, j) = w.check(&["--now", "2026-10-20T10:00:00Z"]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(ok, "{reason}");
}

#[test]
fn not_yet_valid_key_does_not_count_on_a_forward_dated_commit() {
    let w = World::new();
    w.set_signers(&alice_with(&w, "valid-after=\"20270101\""));
    canary_cp2(&w);
    // Signed today, dated after the key becomes valid.
    w.approve_at(&w.alice, TARGET, "2027-02-01T10:00:00Z");
    w.approve(&w.bob, TARGET);
    let (ok, reason) = approvals(&w);
    assert!(!ok, "{reason}");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(
        reason.contains("is not valid at 2026-11-24T10:00:00Z"),
        "{reason}"
    );
    let (_, j) = w.check(&["--now", "2027-01-02T10:00:00Z"]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(ok, "{reason}");
}

#[test]
fn github_review_counts_only_for_the_head_it_approved_or_a_merge_of_it() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.bob, TARGET);
    let reviewed = w.repo.head();
    // alice-acme approves that head on GitHub; then the branch moves on (more traffic,
    // re-approved by bob), and the API still reports the reviewed head.
    w.edit(CP2, "traffic: 10", "traffic: 50");
    w.commit("more traffic", T1);
    w.approve(&w.bob, TARGET);
    let server = serve_with_self_url(vec![
        (
            "/repos/acme/registry/pulls/7".to_owned(),
            String::new(),
            pull(7, "erin-gh", &reviewed, None),
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            String::new(),
            format!("[{}]", review(1, "alice-acme", "APPROVED", &reviewed)),
        ),
    ]);
    let (c, j) = check_github(&w, &server.url);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok, "{reason}");
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: bob@acme.com"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "the head {} of acme/registry#7 is not the judged commit",
            &reviewed[..7]
        )),
        "{reason}"
    );
    // Judging the reviewed head itself, the review counts...
    let (c, j, _) = check_github_with(&w, &server.url, &["--head", &reviewed]);
    assert_eq!(c, 0, "{j:#}");
    // ...and judging a merge of it into main (GitHub's refs/pull/7/merge) too.
    w.repo
        .git(&["checkout", "-q", "-b", "pull-7-merge", "main"]);
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &["merge", "-q", "--no-ff", &reviewed, "-m", "Merge into main"],
    );
    let merge = w.repo.head();
    let (c, j, _) = check_github_with(&w, &server.url, &["--head", &merge]);
    assert_eq!(c, 0, "{j:#}");
    let (_, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(reason.contains("github:alice-acme"), "{reason}");
}

#[test]
fn github_pagination_never_leaves_the_api_origin() {
    let w = World::new();
    canary_cp2(&w);
    w.approve(&w.bob, TARGET);
    let head = w.repo.head();
    // Another origin (same host, another port) that would gladly serve an approval.
    let evil = serve_with_self_url(vec![(
        "/steal?page=2".to_owned(),
        String::new(),
        format!("[{}]", review(2, "alice-acme", "APPROVED", &head)),
    )]);
    let server = serve_with_self_url(vec![
        (
            "/repos/acme/registry/pulls/7".to_owned(),
            String::new(),
            pull(7, "erin-gh", &head, None),
        ),
        (
            "/repos/acme/registry/pulls/7/reviews?per_page=100".to_owned(),
            format!("Link: <{}/steal?page=2>; rel=\"next\"\r\n", evil.url),
            "[]".to_owned(),
        ),
    ]);
    let (c, j, err) = check_github_with(&w, &server.url, &[]);
    // An incomplete listing is never judged: exit 2, naming the refused link.
    assert_eq!(c, 2, "{j:#}\n{err}");
    assert!(
        err.contains(&format!("{}/steal?page=2", evil.url))
            && err.contains("is not on the API's origin"),
        "{err}"
    );
    assert!(evil.requests().is_empty(), "{:#?}", evil.requests());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert!(
        reqs.iter().all(|r| r.contains("Bearer test-token")),
        "{reqs:#?}"
    );
}

/// A fake GitHub keeping the comments and statuses of pull request 7 (state in the closure).
fn github_with_comments(head: String) -> common::receiver::Receiver {
    use common::receiver::Answer;
    let mut comments: Vec<(u64, String)> = Vec::new();
    common::receiver::Receiver::start_with(move |r| {
        let p = r.path.as_str();
        match (r.method.as_str(), p) {
            ("GET", "/repos/acme/registry/pulls/7") => Answer::Json(
                200,
                format!(
                    r#"{{"number":7,"state":"open","user":{{"login":"erin-gh"}},"head":{{"ref":"pr","sha":"{head}"}}}}"#
                ),
            ),
            ("GET", "/repos/acme/registry/pulls/7/reviews?per_page=100") => {
                Answer::Json(200, "[]".into())
            }
            ("GET", "/repos/acme/registry/issues/7/comments?per_page=100") => Answer::Json(
                200,
                serde_json::to_string(
                    &comments
                        .iter()
                        .map(|(id, b)| serde_json::json!({"id": id, "body": b}))
                        .collect::<Vec<_>>(),
                )
                .unwrap(),
            ),
            ("POST", "/repos/acme/registry/issues/7/comments") => {
                let id = 900 + comments.len() as u64;
                comments.push((id, r.json()["body"].as_str().unwrap().to_owned()));
                Answer::Json(201, format!(r#"{{"id":{id}}}"#))
            }
            ("PATCH", _) if p.starts_with("/repos/acme/registry/issues/comments/") => {
                let id: u64 = p.rsplit('/').next().unwrap().parse().unwrap();
                match comments.iter_mut().find(|c| c.0 == id) {
                    Some(c) => {
                        c.1 = r.json()["body"].as_str().unwrap().to_owned();
                        Answer::Json(200, format!(r#"{{"id":{id}}}"#))
                    }
                    None => Answer::Status(404),
                }
            }
            ("POST", _) if p.starts_with("/repos/acme/registry/statuses/") => {
                Answer::Json(201, "{}".into())
            }
            _ => Answer::Status(404),
        }
    })
}

#[test]
fn check_comment_is_kept_up_to_date_and_status_follows_the_verdict() {
    let w = World::new();
    canary_cp2(&w);
    let head = w.repo.head();
    let gh = github_with_comments(head.clone());
    let args = ["--comment", "--status"];
    let (c, _, err) = check_github_with(&w, &gh.url, &args);
    assert_eq!(c, 1, "approvals missing: {err}");
    // The same verdict again: still one comment, not edited.
    let (c, _, err) = check_github_with(&w, &gh.url, &args);
    assert_eq!(c, 1, "{err}");
    let posts = |path: &str| {
        gh.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .collect::<Vec<_>>()
    };
    let created = posts("/repos/acme/registry/issues/7/comments");
    assert_eq!(created.len(), 1, "one comment, created once");
    let body = created[0].json()["body"].as_str().unwrap().to_owned();
    assert!(body.starts_with("<!-- baton:check -->\n"), "{body}");
    assert!(body.contains("churn-predictor"), "{body}");
    assert!(
        gh.requests().iter().all(|r| r.method != "PATCH"),
        "an unchanged report is not re-sent"
    );
    let statuses = posts(&format!("/repos/acme/registry/statuses/{head}"));
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].json()["state"], "failure");
    assert_eq!(statuses[0].json()["context"], "baton/check");
    assert_eq!(statuses[0].headers["authorization"], "Bearer test-token");

    // Approvals land: the one comment is edited in place and the status turns green.
    w.approve(&w.alice, TARGET);
    w.approve(&w.bob, TARGET);
    let (c, j, err) = check_github_with(&w, &gh.url, &args);
    assert_eq!(c, 0, "{err}{j:#}");
    let reqs = gh.requests();
    let patches: Vec<_> = reqs.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{reqs:#?}");
    assert_eq!(patches[0].path, "/repos/acme/registry/issues/comments/900");
    let new_body = patches[0].json()["body"].as_str().unwrap().to_owned();
    assert!(new_body.starts_with("<!-- baton:check -->\n"));
    assert_ne!(new_body, body);
    assert_eq!(
        reqs.iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/issues/7/comments"))
            .count(),
        1
    );
    let last = reqs
        .iter()
        .rev()
        .find(|r| r.path.contains("/statuses/"))
        .unwrap();
    assert_eq!(last.json()["state"], "success");
}
