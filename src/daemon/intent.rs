//! The intent stage (pure): what an environment should run now — its desired releases, except
//! where a failed switch of that same content still waits (health: until the content changes).

use super::release::Release;
use super::state::ModelState;
use super::target::Observed;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// The releases to run per model. `states` learns what the target runs (`last_good`, when it
/// knows nothing yet) and forgets a failure once the desired content is the one that runs.
/// Deploy windows and every other gate were decided by admission; here only a failed switch
/// of the same content keeps the old release: a failed health check until the content changes,
/// any other error until its retry's backoff ends (`next_at`).
pub fn intent(
    wanted: &BTreeMap<String, Release>,
    observed: &BTreeMap<String, Observed>,
    states: &mut BTreeMap<String, ModelState>,
    now: DateTime<Utc>,
) -> BTreeMap<String, Release> {
    let mut out = BTreeMap::new();
    let mut names: BTreeSet<&String> = wanted.keys().collect();
    names.extend(observed.keys());
    for m in names {
        let ms = states.entry(m.clone()).or_default();
        if ms.last_good.is_none() {
            ms.last_good = observed
                .get(m)
                .and_then(|o| o.record.as_ref())
                .map(|r| r.release.clone());
        }
        let desired = wanted.get(m);
        let same = match (desired, &ms.last_good) {
            (Some(d), Some(g)) => d.same_content(g),
            (None, None) => true,
            _ => false,
        };
        if same {
            ms.failure = None;
        }
        let fp = desired
            .map(|d| d.fingerprint())
            .unwrap_or_else(|| "undeploy".into());
        let keep_old = !same
            && ms
                .failure
                .as_ref()
                .is_some_and(|f| f.fingerprint == fp && (f.health || now < f.next_at));
        let chosen = if keep_old {
            ms.last_good.as_ref()
        } else {
            desired
        };
        if let Some(r) = chosen {
            out.insert(m.clone(), r.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use crate::daemon::state::Failure;
    use crate::daemon::target::test_deployed as deployed;

    fn failed(r: Option<&Release>, health: bool, next_at: DateTime<Utc>) -> Failure {
        Failure {
            fingerprint: r.map_or("undeploy".into(), |r| r.fingerprint()),
            reason: "boom".into(),
            health,
            attempts: 1,
            next_at,
        }
    }

    /// Model `a` last ran `good` well, and a switch to `tried` failed.
    fn after_failure(
        good: &Release,
        tried: &Release,
        health: bool,
        next_at: DateTime<Utc>,
    ) -> BTreeMap<String, ModelState> {
        BTreeMap::from([(
            "a".to_owned(),
            ModelState {
                last_good: Some(good.clone()),
                failure: Some(failed(Some(tried), health, next_at)),
            },
        )])
    }

    fn one(r: &Release) -> BTreeMap<String, Release> {
        BTreeMap::from([("a".to_owned(), r.clone())])
    }

    #[test]
    fn the_desired_release_is_the_intent_and_what_runs_is_learned() {
        let old = test_release("a", &[("1", 'a', 100)]);
        let new = test_release("a", &[("2", 'b', 100)]);
        let obs = BTreeMap::from([("a".to_owned(), deployed(&old))]);
        let mut states = BTreeMap::new();
        let got = intent(&one(&new), &obs, &mut states, Utc::now());
        assert_eq!(got["a"].fingerprint(), new.fingerprint());
        let learned = states["a"].last_good.as_ref().unwrap();
        assert!(learned.same_content(&old));
    }

    #[test]
    fn a_failed_switch_keeps_the_old_release_until_its_retry() {
        let old = test_release("a", &[("1", 'a', 100)]);
        let new = test_release("a", &[("2", 'b', 100)]);
        let obs = BTreeMap::from([("a".to_owned(), deployed(&old))]);
        let now = Utc::now();
        let retry = now + chrono::Duration::seconds(10);
        let mut states = after_failure(&old, &new, false, retry);
        let got = intent(&one(&new), &obs, &mut states, now);
        assert!(got["a"].same_content(&old), "waits for the backoff");
        let got = intent(&one(&new), &obs, &mut states, retry);
        assert!(got["a"].same_content(&new), "retried when it ends");
    }

    #[test]
    fn an_unhealthy_build_is_not_retried_but_other_content_goes_ahead() {
        let old = test_release("a", &[("1", 'a', 100)]);
        let bad = test_release("a", &[("2", 'b', 100)]);
        let fixed = test_release("a", &[("3", 'c', 100)]);
        let obs = BTreeMap::from([("a".to_owned(), deployed(&old))]);
        let now = Utc::now();
        let mut states = after_failure(&old, &bad, true, now);
        let later = now + chrono::Duration::days(1);
        assert!(intent(&one(&bad), &obs, &mut states, later)["a"].same_content(&old));
        assert!(intent(&one(&fixed), &obs, &mut states, now)["a"].same_content(&fixed));
    }

    #[test]
    fn running_the_desired_content_clears_the_failure() {
        let old = test_release("a", &[("1", 'a', 100)]);
        let obs = BTreeMap::from([("a".to_owned(), deployed(&old))]);
        let now = Utc::now();
        let mut states = after_failure(&old, &old, false, now);
        intent(&one(&old), &obs, &mut states, now);
        assert!(states["a"].failure.is_none());
        // A model no longer wanted is left out of the intent (the plan undeploys it).
        let got = intent(&BTreeMap::new(), &obs, &mut states, now);
        assert!(got.is_empty());
    }
}
