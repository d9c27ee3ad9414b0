//! Gate integrity, as an attacker or a hurried team would try it with `baton check`: fake
//! rollbacks, reused labels, traffic shifts and undeploys (docs/gates.md).

use crate::world;

use world::*;

/// Commit on `main` directly (a push that skipped review), at `date`.
fn push_to_main(w: &World, msg: &str, date: &str) -> String {
    w.repo.git(&["checkout", "-q", "main"]);
    w.commit(msg, date)
}

/// churn-predictor 2 replaces 1 in production (as a promotion pull request would).
fn promote_cp2(w: &World) {
    w.edit(CP2, "stage: staging", "stage: production");
    w.edit(CP1, "stage: production", "stage: archived");
}

#[test]
fn a_tenure_that_was_never_accepted_does_not_make_a_rollback() {
    // An unreviewed push promotes churn-predictor 2 to production and reverts it at once;
    // the second, identical promotion must face every gate, not pass as a "rollback".
    let w = World::new();
    w.repo.git(&["checkout", "-q", "main"]);
    promote_cp2(&w);
    push_to_main(&w, "promote churn-predictor 2 (unreviewed)", T1);
    w.repo.git_env(
        &[("GIT_AUTHOR_DATE", T1), ("GIT_COMMITTER_DATE", T1)],
        &["revert", "--no-edit", "HEAD"],
    );
    w.repo.git(&["checkout", "-q", "-b", "again"]);
    promote_cp2(&w);
    w.commit("promote churn-predictor 2 again", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    assert_eq!(
        transition(&j, "churn-predictor@2")["rollback"],
        false,
        "{j:#}"
    );
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok && reason.starts_with("0 of 2"), "{reason}");
    assert!(!verdicts(&j, "churn-predictor@2", "metric").is_empty());

    // Once approved the same promotion passes, as a promotion.
    w.approve(&w.alice, "churn-predictor@2 -> production");
    w.approve(&w.bob, "churn-predictor@2 -> production");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert_eq!(transition(&j, "churn-predictor@2")["rollback"], false);
}

#[test]
fn an_accepted_tenure_makes_a_rollback_even_after_a_fast_forward_merge() {
    // Approved promotion merged by fast-forward (approvals after the promotion commit), then
    // the next version replaces it; returning to it is a rollback.
    let w = World::new();
    promote_cp2(&w);
    w.commit("promote churn-predictor 2", T1);
    w.approve(&w.alice, "churn-predictor@2 -> production");
    w.approve(&w.bob, "churn-predictor@2 -> production");
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git(&["merge", "-q", "--ff-only", "pr"]);
    // Roll back: churn-predictor 1 returns to production (its tenure at the registry's first
    // commit counts as accepted) and 2 goes back to staging (accepted there at the baseline).
    w.repo.git(&["checkout", "-q", "-b", "back"]);
    w.edit(CP2, "stage: production", "stage: staging");
    w.edit(CP1, "stage: archived", "stage: production");
    w.commit("roll back churn-predictor", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert_eq!(transition(&j, "churn-predictor@1")["rollback"], true);
    // And forward again: 2 returns to production, where its fast-forwarded, approved tenure
    // was accepted (its approvals landed after the promotion commit).
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git(&["merge", "-q", "--ff-only", "back"]);
    w.repo.git(&["checkout", "-q", "-b", "forward"]);
    promote_cp2(&w);
    w.commit("forward again", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert_eq!(
        transition(&j, "churn-predictor@2")["rollback"],
        true,
        "{j:#}"
    );
    assert!(verdicts(&j, "churn-predictor@2", "approvals").is_empty());
}

#[test]
fn a_reused_label_is_refused_and_never_a_rollback() {
    // churn-predictor 1 held production at the baseline. It is archived, deleted, and its
    // label registered again with a different build, pushed straight to main.
    let w = World::new();
    w.repo.git(&["checkout", "-q", "main"]);
    w.edit(CP1, "stage: production", "stage: archived");
    w.edit(CP2, "stage: staging", "stage: production");
    push_to_main(&w, "promote 2, archive 1", T1);
    w.repo.remove(CP1);
    push_to_main(&w, "delete churn-predictor 1", T1);
    // A PR re-adding label 1 with a new artifact fails `immutable`.
    w.repo.git(&["checkout", "-q", "-b", "readd"]);
    let cp2 = w.repo.read(CP2);
    w.repo.write(
        CP1,
        &cp2.replace("version: \"2\"", "version: \"1\"")
            .replace("stage: production", "stage: development"),
    );
    w.commit("register churn-predictor 1 again", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@1", "immutable");
    assert!(!ok && reason.contains("used before"), "{reason}");

    // Pushed anyway: moving the new "1" to production is no rollback (another build).
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git(&["merge", "-q", "--ff-only", "readd"]);
    w.repo.git(&["checkout", "-q", "-b", "sneak"]);
    w.edit(CP1, "stage: development", "stage: production\ntraffic: 10");
    w.commit("return 1 to production", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    assert_eq!(transition(&j, "churn-predictor@1")["rollback"], false);
    let (ok, _) = rule(&j, "churn-predictor@1", "stage-order");
    assert!(!ok);
}

#[test]
fn raising_a_canary_or_making_it_primary_needs_approval_lowering_does_not() {
    let w = World::with(|r| r.edit(CP2, "stage: staging", "stage: production\ntraffic: 10"));
    // 10% -> 99%.
    w.edit(CP2, "traffic: 10", "traffic: 99");
    w.commit("raise the canary", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok && reason.contains("traffic shift"), "{reason}");
    w.approve(&w.alice, "churn-predictor@2 -> production");
    w.approve(&w.bob, "churn-predictor@2 -> production");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");

    // Making the canary the primary (archiving the old one) needs approval too.
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git(&["checkout", "-q", "-b", "primary"]);
    w.edit(CP2, "\ntraffic: 10", "");
    w.edit(CP1, "stage: production", "stage: archived");
    w.commit("make 2 the primary", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, _) = rule(&j, "churn-predictor@2", "approvals");
    assert!(!ok);
    // Archiving 1 leaves 2 in production: not an undeploy, no approvals for it.
    assert!(verdicts(&j, "churn-predictor@1", "approvals").is_empty());

    // Lowering a canary's share is containment: no approvals.
    w.repo.git(&["checkout", "-q", "main"]);
    w.repo.git(&["checkout", "-q", "-b", "lower"]);
    w.edit(CP2, "traffic: 10", "traffic: 5");
    w.commit("lower the canary", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    assert!(
        verdicts(&j, "churn-predictor@2", "approvals").is_empty(),
        "{j:#}"
    );
}

#[test]
fn archiving_every_production_version_is_an_undeploy_needing_approval_and_the_window() {
    let w = World::new();
    w.edit(CP1, "stage: production", "stage: archived");
    w.commit("take churn-predictor out of production", NOW);
    let (c, j) = w.check(&[]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@1", "approvals");
    assert!(!ok && reason.contains("undeploy"), "{reason}");
    w.approve(&w.alice, "churn-predictor@1 -> archived");
    w.approve(&w.bob, "churn-predictor@1 -> archived");
    let (c, j) = w.check(&[]);
    assert_eq!(c, 0, "{j:#}");
    // On a Saturday the production window is closed: the undeploy waits for it.
    let (c, j) = w.check(&["--now", "2026-11-28T10:00:00Z"]);
    assert_eq!(c, 1, "{j:#}");
    let (ok, reason) = rule(&j, "churn-predictor@1", "window");
    assert!(!ok && reason.contains("undeploy"), "{reason}");
    assert!(
        transition(&j, "churn-predictor@1")["not_before"].is_string(),
        "{j:#}"
    );
}

#[test]
fn a_rollback_skips_evidence_and_the_window() {
    let w = World::new();
    promote_cp2(&w);
    w.commit("promote churn-predictor 2", T1);
    w.approve(&w.alice, "churn-predictor@2 -> production");
    w.approve(&w.bob, "churn-predictor@2 -> production");
    w.merge_pr_and_revert("Merge pull request #1");
    // Saturday: the window is closed, yet an incident does not wait for Monday.
    let (c, j) = w.check(&["--now", "2026-11-28T22:00:00Z"]);
    assert_eq!(c, 0, "{j:#}");
    assert!(verdicts(&j, "churn-predictor@1", "window").is_empty());
    assert!(verdicts(&j, "churn-predictor@1", "evidence").is_empty());
}
