//! `baton check` on real git repositories: each rule of docs/gates.md with a passing and a failing
//! pull request, exit codes, and the blocking summary the daemon relies on.

use crate::common;
use crate::world;

use common::{code, stderr};
use world::*;

/// Canary promotion of churn-predictor 2 to production with 10% traffic.
fn canary_cp2(w: &World) {
    w.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
}

#[test]
fn canary_promotion_with_two_signed_approvals_passes() {
    let w = World::new();
    canary_cp2(&w);
    w.commit("promote churn-predictor 2 to production", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok);
    assert!(reason.starts_with("0 of 2 approvals"), "{reason}");

    w.approve(&w.alice, "churn-predictor@2 -> production");
    w.approve(&w.bob, "churn-predictor@2 -> production");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert_eq!(j["passed"], true);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(ok, "{reason}");
    assert!(
        reason.contains("alice@acme.com") && reason.contains("bob@acme.com"),
        "{reason}"
    );
    let (ok, reason) = rule(&j, "churn-predictor@2", "exclusive");
    assert!(ok, "{reason}");
    assert!(reason.contains("1 (90%), 2 (10%)"), "{reason}");
    assert!(rule(&j, "churn-predictor@2", "artifact").0);
}

#[test]
fn no_change_passes_and_bad_revision_exits_2() {
    let w = World::new();
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0);
    assert_eq!(j["transitions"].as_array().unwrap().len(), 0);
    let out = w.repo.baton(&["check", "--base", "nope"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("unknown revision `nope`"),
        "{}",
        stderr(&out)
    );
    let out = w
        .repo
        .baton(&["check", "--base", "main", "--now", "yesterday"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn schema_rule() {
    // Fail: an unknown field, located.
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: development\nbogus: 1");
    w.commit("bad field", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let vs = verdicts(&j, "fraud-detector@5", "schema");
    assert_eq!(vs[0]["passed"], false);
    assert!(vs[0]["reason"]
        .as_str()
        .unwrap()
        .contains("unknown field `bogus`"));
    assert_eq!(vs[0]["line"], 5);
    assert_eq!(vs[0]["file"], FD5);
    assert_eq!(j["errors"][0]["file"], FD5);
    assert_eq!(j["errors"][0]["line"], 5);
    assert_eq!(j["errors"][0]["column"], 1);

    // Fail: a stage the base policy does not know.
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: canary-lab");
    w.commit("unknown stage", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@5", "schema");
    assert!(
        !ok && reason.contains("unknown stage `canary-lab`"),
        "{reason}"
    );

    // Pass: a well-formed new version entering the first stage.
    let w = World::new();
    let text = w.repo.read(FD5).replace("version: \"5\"", "version: \"6\"");
    w.repo.write("models/fraud-detector/versions/6.yaml", &text);
    w.commit("register fraud-detector 6", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert!(rule(&j, "fraud-detector@6", "schema").0);
    assert!(rule(&j, "fraud-detector@6", "stage-order").0);
}

#[test]
fn stage_order_rule() {
    // Fail: development -> production skips staging.
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: production\ntraffic: 5");
    w.commit("skip", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@5", "stage-order");
    assert!(!ok);
    assert!(reason.contains("skips `staging`"), "{reason}");

    // Fail: a new version entering staging directly.
    let w = World::new();
    let text = w
        .repo
        .read(FD5)
        .replace("version: \"5\"", "version: \"6\"")
        .replace("stage: development", "stage: staging");
    w.repo.write("models/fraud-detector/versions/6.yaml", &text);
    w.commit("new in staging", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@6", "stage-order");
    assert!(
        !ok && reason.contains("must enter the first stage `development`"),
        "{reason}"
    );

    // Fail: backward move of a version that never held the stage.
    let w = World::new();
    w.edit(FD4, "stage: staging", "stage: development");
    w.commit("back", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@4", "stage-order");
    assert!(
        !ok && reason.contains("only allowed as a rollback"),
        "{reason}"
    );

    // Pass: development -> staging (with its evidence), archiving the old staging holder.
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: true}\nlineage:",
    );
    w.edit(FD4, "stage: staging", "stage: archived");
    w.commit("promote 5 to staging", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert!(rule(&j, "fraud-detector@5", "stage-order").0);
    let (ok, reason) = rule(&j, "fraud-detector@4", "stage-order");
    assert!(ok && reason.contains("terminal"), "{reason}");
}

#[test]
fn immutable_rule() {
    // Fail: the artifact digest changes with the promotion.
    let w = World::new();
    canary_cp2(&w);
    w.edit(CP2, "sha256: bbdf", "sha256: cbdf");
    w.commit("promote and swap artifact", T1);
    let (_, j) = w.check(&[]);
    let vs = verdicts(&j, "churn-predictor@2", "immutable");
    assert_eq!(vs[0]["passed"], false);
    assert!(vs[0]["reason"].as_str().unwrap().contains("artifact"));
    assert_eq!(vs[0]["line"], 8, "{:#}", vs[0]);

    // Fail: a same-stage edit changing an existing metric still goes through immutable.
    let w = World::new();
    w.edit(FD4, "auc: 0.941", "auc: 0.951");
    w.commit("tweak metric", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "fraud-detector@4", "immutable");
    assert!(!ok && reason.contains("metrics.auc"), "{reason}");

    // Pass: a same-stage edit adding a metric key.
    let w = World::new();
    w.edit(FD4, "auc: 0.941", "auc: 0.941\n  f1: 0.8");
    w.commit("add metric", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert!(rule(&j, "fraud-detector@4", "immutable").0);
}

#[test]
fn exclusive_rule() {
    // Fail: two versions without traffic in the canary stage.
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production");
    w.commit("promote without traffic", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "exclusive");
    assert!(!ok && reason.contains("exactly one version"), "{reason}");

    // Fail: two versions in the (non-canary, deployed) staging stage.
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: true}\nlineage:",
    );
    w.commit("two in staging", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@5", "exclusive");
    assert!(!ok && reason.contains("at most one version"), "{reason}");

    // Pass: replace the holder (the old one archived).
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production");
    w.edit(CP1, "stage: production", "stage: archived");
    w.commit("promote and archive", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "exclusive");
    assert!(ok && reason.contains("2 (100%)"), "{reason}");
}

#[test]
fn requires_rule() {
    // Fail: fraud-detector 4 requires feature-encoder 8, still in staging.
    let w = World::new();
    w.edit(FD4, "stage: staging", "stage: production\ntraffic: 10");
    w.commit("promote fd4", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@4", "requires");
    assert!(
        !ok && reason.contains(
            "environment `production` runs it after the change but not feature-encoder@8, which it requires (it is in `staging`)"
        ),
        "{reason}"
    );
    let vs = verdicts(&j, "fraud-detector@4", "requires");
    // (Line 18: the promotion added `traffic: 10` below `stage`.)
    assert_eq!(vs[0]["line"], 19, "located at `requires`: {:#}", vs[0]);

    // Fail: archiving feature-encoder 7 while fraud-detector 3 in production requires it.
    let w = World::new();
    w.edit(FE7, "stage: production", "stage: archived");
    w.commit("archive fe7", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let fd3_stays = "environment `production` stops running it but keeps running fraud-detector@3, which requires feature-encoder@7";
    let (ok, reason) = rule(&j, "feature-encoder@7", "requires");
    assert!(!ok && reason.contains(fd3_stays), "{reason}");

    // The reverse index is kept in the git dir; a second run reads it and still finds fd3.
    assert!(w.repo.path().join(".git/baton/requires-index").exists());
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "feature-encoder@7", "requires");
    assert!(!ok && reason.contains(fd3_stays), "{reason}");

    // Pass: both move together (staging keeps the production primaries, which match).
    let w = World::new();
    w.edit(FD4, "stage: staging", "stage: production\ntraffic: 10");
    w.edit(
        "models/feature-encoder/versions/8.yaml",
        "stage: staging",
        "stage: production\ntraffic: 10",
    );
    w.commit("promote fd4 with fe8", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@4", "requires");
    assert!(
        ok && reason.contains("feature-encoder@8 runs in `production` too"),
        "{reason}"
    );
}

/// fraud-detector 3 (production) spelling its `requires` key so that a scan for the bytes
/// `requires:` misses it; the key is still read by YAML.
#[test]
fn requires_spelled_unusually_still_blocks_the_required_version_leaving() {
    for spelling in ["\"requires\":", "requires :", "'requires' :"] {
        let w = World::with(|r| r.edit(FD3, "requires:", spelling));
        w.edit(FE7, "stage: production", "stage: archived");
        w.commit("archive fe7", T1);
        let (c, j) = w.check(&[]);
        assert_eq!(c, 1, "{spelling}: {j:#}");
        let (ok, reason) = rule(&j, "feature-encoder@7", "requires");
        assert!(
            !ok && reason
                .contains("keeps running fraud-detector@3, which requires feature-encoder@7"),
            "{spelling}: {reason}"
        );
    }
}

/// Staging holds no feature-encoder, so it keeps running production's feature-encoder 7
/// (docs/registry-format.md): a version requiring it may enter staging.
#[test]
fn requires_is_met_by_a_version_kept_from_a_later_stage() {
    let w = World::with(|r| {
        r.edit(FE8, "stage: staging", "stage: archived");
        r.edit(FD4, "stage: staging", "stage: archived");
        r.edit(FD5, "feature-encoder: \"8\"", "feature-encoder: \"7\"");
    });
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: true}\nlineage:",
    );
    w.commit("fd5 to staging", T1);
    let (c, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "fraud-detector@5", "requires");
    assert!(
        ok && reason.contains("feature-encoder@7 runs in `staging` too"),
        "{reason}"
    );
    assert_eq!(c, 0, "{j:#}");
}

/// Staging runs feature-encoder 7 kept from production, and fraud-detector 4 there requires
/// it: promoting a new feature-encoder into staging would stop running 7 under it.
#[test]
fn requires_blocks_a_promotion_that_stops_a_kept_version_someone_requires() {
    let w = World::with(|r| {
        r.edit(FE8, "stage: staging", "stage: development");
        r.edit(FD4, "feature-encoder: \"8\"", "feature-encoder: \"7\"");
    });
    w.edit(FE8, "stage: development", "stage: staging");
    w.commit("fe8 to staging", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "feature-encoder@8", "requires");
    assert!(
        !ok && reason.contains(
            "environment `staging` stops running feature-encoder@7 (kept from `production`) but keeps running fraud-detector@4, which requires feature-encoder@7"
        ),
        "{reason}"
    );
    // Archiving fraud-detector 4 as well frees feature-encoder 7, but then staging keeps
    // running production's fraud-detector 3, which requires 7 too: still blocked, now on the
    // fraud-detector side.
    w.edit(FD4, "stage: staging", "stage: archived");
    w.commit("archive fd4", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    assert!(rule(&j, "feature-encoder@8", "requires").0, "{j:#}");
    let (ok, reason) = rule(&j, "fraud-detector@4", "requires");
    assert!(
        !ok && reason.contains(
            "environment `staging` starts running fraud-detector@3 (kept from `production`) but not feature-encoder@7, which that requires (it is in `production`)"
        ),
        "{reason}"
    );
}

#[test]
fn artifact_rule() {
    let cp1_art = "artifacts/churn-predictor/1/model.onnx";
    // (what the PR does, expected failure in the reason, or None for a pass)
    type Edit = fn(&World);
    let cases: Vec<(&str, Edit, Option<&str>)> = vec![
        (
            "delete the artifact",
            |w| w.repo.remove("artifacts/churn-predictor/1/model.onnx"),
            Some("`artifacts/churn-predictor/1/model.onnx` is missing at head"),
        ),
        (
            "alter its bytes",
            |w| {
                w.repo
                    .write("artifacts/churn-predictor/1/model.onnx", "retrained")
            },
            Some("has sha256 "),
        ),
        (
            "replace it by a symbolic link",
            |w| {
                let p = w.repo.path().join("artifacts/churn-predictor/1/model.onnx");
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink("../2/model.onnx", &p).unwrap();
            },
            Some("is a symbolic link at head, not a regular file"),
        ),
    ];
    for (what, edit, want) in cases {
        let w = World::new();
        edit(&w);
        w.commit(what, T1);
        let (c, j) = w.check(&[]);
        assert_eq!(c, 1, "{what}: {j:#}");
        // No manifest changed: the version whose artifact changed is judged anyway.
        let (ok, reason) = rule(&j, "churn-predictor@1", "artifact");
        assert!(!ok && reason.contains(want.unwrap()), "{what}: {reason}");
        assert!(reason.contains(cp1_art), "{what}: {reason}");
        assert_eq!(j["blocked_models"].as_object().unwrap().len(), 1, "{what}");
    }

    // An artifact of a version no environment runs (archived) may change.
    let w = World::new();
    w.repo
        .write("artifacts/fraud-detector/1/model.onnx", "gone stale");
    w.commit("touch an archived artifact", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert_eq!(j["transitions"].as_array().unwrap().len(), 0);

    // Pass: an honest promotion's artifact matches its manifest.
    let w = World::new();
    canary_cp2(&w);
    w.commit("promote churn-predictor 2 to production", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "artifact");
    assert!(
        ok && reason.contains("`artifacts/churn-predictor/2/model.onnx` is in the registry"),
        "{reason}"
    );

    // Fail: a promotion whose artifact was swapped in the same change.
    let w = World::new();
    canary_cp2(&w);
    w.repo
        .write("artifacts/churn-predictor/2/model.onnx", "other bytes");
    w.commit("promote with other bytes", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "artifact");
    assert!(
        !ok && reason.contains("but the manifest says bbdfcad29cc0"),
        "{reason}"
    );
    let vs = verdicts(&j, "churn-predictor@2", "artifact");
    assert_eq!(
        vs[0]["line"], 8,
        "located at sha256 (below the added traffic line): {:#}",
        vs[0]
    );
}

#[test]
fn check_in_a_shallow_clone_exits_2_and_says_to_fetch_history() {
    let w = World::new();
    canary_cp2(&w);
    w.commit("promote churn-predictor 2 to production", T1);
    let clone = tempfile::tempdir().unwrap();
    let dst = clone.path().join("shallow");
    let src = format!("file://{}", w.repo.path().display());
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", "--no-single-branch", &src])
        .arg(&dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::baton(
        &[
            "--repo",
            dst.to_str().unwrap(),
            "check",
            "--base",
            "origin/main",
        ],
        &dst,
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("shallow clone"), "{err}");
    assert!(
        err.contains("fetch-depth: 0") && err.contains("git fetch --unshallow"),
        "{err}"
    );
    assert!(!err.contains("no merge base found"), "{err}");
}

#[test]
fn a_model_folder_named_by_bytes_that_are_not_utf8_fails_schema() {
    let w = World::new();
    let text = w.repo.read(FD5);
    w.repo
        .stage_raw(b"models/fraud\xffdetector/model.yaml", b"name: x\n");
    w.repo
        .stage_raw(b"models/fraud\xffdetector/versions/5.yaml", text.as_bytes());
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &["commit", "-q", "-m", "a folder name that is not UTF-8"],
    );
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let v = j["change"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "schema" && !v["passed"].as_bool().unwrap())
        .unwrap_or_else(|| panic!("no failing schema verdict: {j:#}"));
    assert_eq!(v["file"], "models/fraud\\xffdetector");
    assert!(
        v["reason"].as_str().unwrap().contains("is not UTF-8"),
        "{v:#}"
    );
    assert_eq!(j["blocks_all"], true);
    // Never a model named "" or by a lossy name.
    for t in j["transitions"].as_array().unwrap() {
        assert_eq!(t["model"], "fraud-detector", "{t:#}");
    }
}

#[test]
fn metric_rule() {
    // Fail: below min, and regression beyond max_regression.
    let w = World::with(|r| r.edit(CP2, "auc: 0.938", "auc: 0.915"));
    canary_cp2(&w);
    w.commit("promote", T1);
    let (_, j) = w.check(&[]);
    let vs = verdicts(&j, "churn-predictor@2", "metric");
    assert_eq!(vs.len(), 2);
    assert_eq!(vs[0]["passed"], false);
    let reason = vs[0]["reason"].as_str().unwrap();
    assert!(reason.contains("auc 0.915 < min 0.92"), "{reason}");
    assert!(
        reason.contains("regression 0.016 vs churn-predictor@1 (0.931) > max_regression 0.005"),
        "{reason}"
    );
    assert_eq!(vs[0]["line"], 12);

    // Fail: above max (lower is better).
    let w = World::with(|r| r.edit(CP2, "p99_latency_ms: 7.4", "p99_latency_ms: 51"));
    canary_cp2(&w);
    w.commit("promote", T1);
    let (_, j) = w.check(&[]);
    let vs = verdicts(&j, "churn-predictor@2", "metric");
    assert_eq!(vs[1]["passed"], false);
    assert!(vs[1]["reason"]
        .as_str()
        .unwrap()
        .contains("p99_latency_ms 51 > max 50"));

    // lower_is_better regression: a latency gate comparing with production.
    let w = World::with(|r| {
        r.edit(
            "baton.yaml",
            "- metric: {name: p99_latency_ms, max: 50, lower_is_better: true}",
            "- metric: {name: p99_latency_ms, max: 50, max_regression: 0.5, lower_is_better: true}",
        );
        r.edit(CP2, "p99_latency_ms: 7.4", "p99_latency_ms: 8.6");
    });
    canary_cp2(&w);
    w.commit("promote", T1);
    let (_, j) = w.check(&[]);
    let vs = verdicts(&j, "churn-predictor@2", "metric");
    let reason = vs[1]["reason"].as_str().unwrap();
    assert_eq!(vs[1]["passed"], false, "{reason}");
    assert!(
        reason.contains("regression 0.6 vs churn-predictor@1 (8)"),
        "{reason}"
    );

    // Pass.
    let w = World::new();
    canary_cp2(&w);
    w.commit("promote", T1);
    let (_, j) = w.check(&[]);
    let vs = verdicts(&j, "churn-predictor@2", "metric");
    assert!(vs.iter().all(|v| v["passed"] == true), "{vs:#?}");
}

#[test]
fn evidence_rule() {
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(FD4, "stage: staging", "stage: archived");
    w.commit("promote without evidence", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "fraud-detector@5", "evidence");
    assert!(
        !ok && reason == "evidence `offline-eval` is missing",
        "{reason}"
    );
    let hint = verdicts(&j, "fraud-detector@5", "evidence")[0]["hint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(hint.starts_with(&format!("add it to {FD5} ")), "{hint}");
    assert!(
        hint.contains("`baton register fraud-detector --artifact … --evidence offline-eval=FILE`"),
        "{hint}"
    );
    assert!(
        hint.ends_with(
            "\nevidence:\n  offline-eval: {passed: true, report: <path or URL of the result>}"
        ),
        "{hint}"
    );

    let w = World::new();
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: false}\nlineage:",
    );
    w.edit(FD4, "stage: staging", "stage: archived");
    w.commit("promote with failed evidence", T1);
    let (_, j) = w.check(&[]);
    assert_eq!(
        rule(&j, "fraud-detector@5", "evidence"),
        (false, "evidence `offline-eval` did not pass".into())
    );

    let w = World::new();
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: true, report: r.json}\nlineage:",
    );
    w.edit(FD4, "stage: staging", "stage: archived");
    w.commit("promote with evidence", T1);
    let (_, j) = w.check(&[]);
    assert_eq!(
        rule(&j, "fraud-detector@5", "evidence"),
        (true, "`offline-eval` passed (report r.json)".into())
    );
}

#[test]
fn soak_rule() {
    let w = World::new();
    canary_cp2(&w);
    w.commit("promote", T1);
    // 4 days after entering staging: passes.
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "soak");
    assert!(ok, "{reason}");
    assert!(
        reason.contains("in `staging` since 2026-11-20T10:00:00Z"),
        "{reason}"
    );
    // One hour after: fails, and says when it passes.
    let (_, j) = w.check(&["--now", "2026-11-20T11:00:00Z"]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "soak");
    assert!(!ok);
    assert!(
        reason.contains("passes at 2026-11-21T10:00:00Z"),
        "{reason}"
    );
}

#[test]
fn soak_counts_only_the_base_branch() {
    // A version that entered staging on the PR branch itself has not soaked at all.
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: true}\nlineage:",
    );
    w.edit(FD4, "stage: staging", "stage: archived");
    w.commit("to staging", "2026-11-21T09:00:00Z");
    w.edit(FD5, "stage: staging", "stage: production\ntraffic: 5");
    w.commit("to production", T1);
    let (_, j) = w.check(&[]);
    // merge-base..head shows development -> production: skips staging, and no soak in staging.
    let (ok, reason) = rule(&j, "fraud-detector@5", "soak");
    assert!(
        !ok && reason.contains("never sat in `staging` on the base branch"),
        "{reason}"
    );
}

#[test]
fn window_rule() {
    let w = World::new();
    canary_cp2(&w);
    w.commit("promote", T1);
    let (_, j) = w.check(&[]);
    let (ok, reason) = rule(&j, "churn-predictor@2", "window");
    assert!(ok, "{reason}");
    assert_eq!(
        reason,
        "window mon,tue,wed,thu 09:00-16:00 Europe/Berlin is open until Tue 2026-11-24 16:00 CET"
    );
    assert_eq!(j["transitions"][0]["open_until"], "2026-11-24T15:00:00Z");

    // Friday: closed until Monday 09:00 Berlin.
    let (c, j) = w.check(&["--now", "2026-11-27T10:00:00Z"]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "churn-predictor@2", "window");
    assert!(!ok);
    assert!(
        reason.contains("is closed; it opens Mon 2026-11-30 09:00 CET"),
        "{reason}"
    );
    let hint = verdicts(&j, "churn-predictor@2", "window")[0]["hint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        hint.starts_with(
            "nothing to change, only time: the change may go ahead from Mon 2026-11-30 09:00 CET"
        ),
        "{hint}"
    );
}

#[test]
fn approvals_rule_counts_owners_and_leads() {
    let w = World::new();
    canary_cp2(&w);
    w.commit("promote", T1);
    // carol is neither an ml-lead nor an owner of churn-predictor.
    w.approve(&w.carol, "churn-predictor@2 -> production");
    w.approve(&w.alice, "churn-predictor@2 -> production");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok);
    assert!(
        reason.starts_with("1 of 2 approvals from group:ml-leads, owners: alice@acme.com"),
        "{reason}"
    );
    assert!(reason.contains("carol@acme.com (commit "), "{reason}");
    assert!(reason.contains("not an allowed approver"), "{reason}");
    // The hint names who may still approve (not alice, who counted; not carol) and the line.
    let hint = verdicts(&j, "churn-predictor@2", "approvals")[0]["hint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        hint.starts_with("1 more approval from bob@acme.com"),
        "{hint}"
    );
    assert!(
        !hint.contains("alice@acme.com,") && !hint.contains("carol"),
        "{hint}"
    );
    assert!(
        hint.contains("`baton approve churn-predictor 2 --stage production`"),
        "{hint}"
    );
    // An approval of another stage does not count for production.
    w.approve(&w.bob, "churn-predictor@2 -> staging");
    let (c, _) = w.check(&[]);
    assert_eq!(c, 1);
    w.approve(&w.bob, "churn-predictor@2 -> production");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
}

#[test]
fn policy_change_rule() {
    // Fail: baton.yaml changed without a policy owner's approval; this blocks everything.
    let w = World::new();
    w.edit(
        "baton.yaml",
        "fraud-team: [dave@acme.com]",
        "fraud-team: [dave@acme.com, erin@acme.com]",
    );
    w.commit("add erin to fraud-team", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    assert_eq!(j["blocks_all"], true);
    let ch = &j["change"];
    let pc = ch
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "policy-change")
        .unwrap();
    assert_eq!(pc["passed"], false);
    assert_eq!(pc["file"], "baton.yaml");
    // alice is not a policy owner; carol is.
    w.approve(&w.alice, "policy");
    let (c, _) = w.check(&[]);
    assert_eq!(c, 1);
    w.approve(&w.carol, "policy");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");

    // A model.yaml change blocks only that model.
    let w = World::new();
    w.edit(
        "models/churn-predictor/model.yaml",
        "bob@acme.com",
        "bob@acme.com, erin@acme.com",
    );
    w.commit("owners", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    assert_eq!(j["blocks_all"], false);
    assert!(j["blocked_models"]["churn-predictor"].is_array(), "{j:#}");
}

#[test]
fn head_policy_that_does_not_parse_blocks_all() {
    let w = World::new();
    w.edit("baton.yaml", "version: 1", "version: 1\nbogus: true");
    w.commit("break policy", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    assert_eq!(j["blocks_all"], true);
    let schema = j["change"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "schema")
        .unwrap();
    assert_eq!(schema["passed"], false);
    assert_eq!(schema["line"], 5);
    assert!(schema["reason"]
        .as_str()
        .unwrap()
        .contains("unknown field `bogus`"));
}

#[test]
fn delete_rule() {
    let w = World::new();
    w.repo.remove("models/fraud-detector/versions/1.yaml");
    w.commit("delete archived", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert_eq!(
        rule(&j, "fraud-detector@1", "delete"),
        (true, "deleted from terminal stage `archived`".into())
    );

    let w = World::new();
    w.repo.remove(FD3);
    w.commit("delete production", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "fraud-detector@3", "delete");
    assert!(
        !ok && reason.contains("only from a terminal stage (archived); it is in `production`"),
        "{reason}"
    );
}

#[test]
fn git_revert_of_a_merged_promotion_passes_as_rollback() {
    let w = World::new();
    w.edit(CP2, "stage: staging", "stage: production");
    w.edit(CP1, "stage: production", "stage: archived");
    w.commit("promote churn-predictor 2", T1);
    w.approve(&w.alice, "churn-predictor@2 -> production");
    w.approve(&w.bob, "churn-predictor@2 -> production");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    // Merge (a merge commit, as GitHub's merge button makes), then revert the merge on a branch.
    w.merge_pr_and_revert("Merge pull request #1");
    // Late at night on a Tuesday (window closed) the rollback still needs its window; at 11:00 it passes.
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    let trs = j["transitions"].as_array().unwrap();
    assert_eq!(trs.len(), 2);
    for t in trs {
        assert_eq!(t["rollback"], true, "{t:#}");
    }
    let (ok, reason) = rule(&j, "churn-predictor@1", "rollback");
    assert!(
        ok && reason.contains("rollbacks need no approvals"),
        "{reason}"
    );
    assert!(verdicts(&j, "churn-predictor@1", "approvals").is_empty());
    assert!(verdicts(&j, "churn-predictor@1", "metric").is_empty());
    assert!(verdicts(&j, "churn-predictor@1", "soak").is_empty());
    let (ok, reason) = rule(&j, "churn-predictor@2", "stage-order");
    assert!(ok && reason.contains("is a rollback"), "{reason}");
}

#[test]
fn revert_of_a_promotion_that_added_evidence_passes_as_rollback() {
    // fraud-detector 5 gains its offline-eval evidence in the promotion PR; reverting that PR
    // drops the evidence again, which a rollback may do (no value changes, nothing else).
    let w = World::new();
    w.edit(FD5, "stage: development", "stage: staging");
    w.edit(
        FD5,
        "lineage:",
        "evidence:\n  offline-eval: {passed: true, report: reports/fraud-detector/4/eval.json}\nlineage:",
    );
    w.edit(FD4, "stage: staging", "stage: archived");
    w.commit("promote fraud-detector 5 to staging", T1);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    w.merge_pr_and_revert("Merge pull request #2");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    let (ok, reason) = rule(&j, "fraud-detector@5", "immutable");
    assert!(ok && reason.contains("rollback"), "{reason}");
    // A value change is still refused, rollback or not.
    w.edit(FD5, "auc: 0.944", "auc: 0.999");
    w.commit("tamper with a metric in the rollback", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "fraud-detector@5", "immutable");
    assert!(!ok && reason.contains("metrics.auc"), "{reason}");
}

#[test]
fn rollback_rule_with_required_approvals() {
    let w = World::with(|r| r.edit("baton.yaml", "  approvals: 0 ", "  approvals: 1 "));
    w.edit(CP2, "stage: staging", "stage: production");
    w.edit(CP1, "stage: production", "stage: archived");
    w.commit("promote", T1);
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &["merge", "-q", "--ff-only", "pr"],
    );
    w.repo.git(&["checkout", "-q", "-b", "revert"]);
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", NOW), ("GIT_COMMITTER_DATE", NOW)],
        &["revert", "--no-edit", "HEAD"],
    );
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    let (ok, reason) = rule(&j, "churn-predictor@1", "rollback");
    assert!(!ok && reason.contains("0 of 1 approval"), "{reason}");
    // alice is an ml-lead (production's approvers); bob owns churn-predictor (staging has no
    // approvals gate, so the model's owners and the policy owners approve returns to it).
    w.approve(&w.alice, "churn-predictor@1 -> production");
    let (c, _) = w.check(&[]);
    assert_eq!(c, 1);
    w.approve(&w.bob, "churn-predictor@2 -> staging");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
}

#[test]
fn blocking_is_per_model() {
    let w = World::new();
    // churn-predictor: a good canary promotion, approved.
    canary_cp2(&w);
    // fraud-detector: an illegal skip.
    w.edit(FD5, "stage: development", "stage: production\ntraffic: 5");
    w.commit("two promotions", T1);
    w.approve(&w.alice, "churn-predictor@2 -> production");
    w.approve(&w.bob, "churn-predictor@2 -> production");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1);
    assert_eq!(j["blocks_all"], false);
    let blocked = j["blocked_models"].as_object().unwrap();
    assert_eq!(blocked.keys().collect::<Vec<_>>(), vec!["fraud-detector"]);
}

#[test]
fn judge_library_reuses_its_cache_between_heads() {
    use baton::check::{CheckOptions, Judge};
    let w = World::new();
    let base = w.repo.git(&["rev-parse", "main"]);
    canary_cp2(&w);
    let h1 = w.commit("promote", T1);
    w.edit(FD5, "stage: development", "stage: production\ntraffic: 5");
    let h2 = w.commit("skip", T1);
    let repo = git2::Repository::open(w.repo.path()).unwrap();
    let opts = CheckOptions {
        path: None,
        now: chrono::DateTime::parse_from_rfc3339(NOW).unwrap().into(),
        github: None,
        ..Default::default()
    };
    let oid = |s: &str| git2::Oid::from_str(s).unwrap();
    let mut judge = Judge::new();
    let r1 = judge.judge(&repo, oid(&base), oid(&h1), &opts).unwrap();
    assert_eq!(
        r1.blocked_models().keys().collect::<Vec<_>>(),
        vec!["churn-predictor"]
    );
    let r2 = judge.judge(&repo, oid(&base), oid(&h2), &opts).unwrap();
    assert_eq!(r2.transitions.len(), 2);
    assert!(r2.blocked_models().contains_key("fraud-detector"));
    assert!(!r2.blocks_all());
    // Judging the same head again parses nothing: manifests are cached by blob id.
    let parsed = judge.parsed();
    let r3 = judge.judge(&repo, oid(&base), oid(&h2), &opts).unwrap();
    assert_eq!(r3, r2);
    assert_eq!(judge.parsed(), parsed);
}

/// The four output formats on a fixed scenario (fixed dates, the example's static keys, so
/// commit ids are stable). `BATON_BLESS=1 cargo test --test it check::golden` rewrites them.
#[test]
fn golden_output_formats() {
    let r = common::TestRepo::new();
    common::copy_dir(&common::example_dir(), r.path());
    let dated = [("GIT_AUTHOR_DATE", T0), ("GIT_COMMITTER_DATE", T0)];
    r.git(&["add", "-A"]);
    r.git_env(&dated, &["commit", "-q", "-m", "baseline"]);
    r.git(&["checkout", "-q", "-b", "pr"]);
    r.edit(CP2, "stage: staging", "stage: production\ntraffic: 10");
    r.edit(FD5, "stage: development", "stage: production\ntraffic: 5");
    r.remove("models/fraud-detector/versions/1.yaml");
    r.git(&["add", "-A"]);
    let dated = [("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)];
    r.git_env(&dated, &["commit", "-q", "-m", "promote"]);
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (format, file) in [
        ("text", "check.txt"),
        ("json", "check.json"),
        ("markdown", "check.md"),
        ("github", "check.github"),
    ] {
        let out = r.baton(&["--format", format, "check", "--base", "main", "--now", NOW]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        let got = common::stdout(&out);
        let path = golden.join(file);
        if std::env::var_os("BATON_BLESS").is_some() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(got, want, "{format} output differs from {}", path.display());
    }
}
