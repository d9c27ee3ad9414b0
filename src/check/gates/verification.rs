//! `verification`: a build that failed live verification in a stage (evidence
//! `verification-<stage>` with `passed: false`, written by the daemon's rollback) never re-enters it.

use super::{located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::VersionManifest;

/// The evidence key the daemon writes when a version fails verification in `stage`.
pub fn evidence_key(stage: &str) -> String {
    format!("verification-{stage}")
}

fn failed_in(m: Option<&VersionManifest>, key: &str) -> Option<String> {
    let e = m?.evidence.get(key).filter(|e| !e.passed)?;
    Some(e.report.clone().unwrap_or_default())
}

/// Judge a move into `to`. `None` when the rule does not apply: the stage has no `verify`
/// and neither side of the manifest records a verification there.
///
/// Both sides are read: the reverse of the daemon's revert (a rollback, which may drop the
/// evidence key the revert added) is refused by the failed evidence at the merge base.
pub fn judge(t: &Transition, f: &Facts, to: &str) -> Option<Verdict> {
    let key = evidence_key(to);
    let new = t.new.as_ref().and_then(|n| n.manifest());
    let old = t.old.as_ref().and_then(|o| o.manifest());
    let verified = f.policy.stage(to).is_some_and(|s| s.verify.is_some());
    let recorded = [new, old]
        .iter()
        .any(|m| m.is_some_and(|m| m.evidence.contains_key(&key)));
    if !verified && !recorded {
        return None;
    }
    let text: &str = t.new.as_ref().map(|n| &n.text[..]).unwrap_or("");
    let v = match (failed_in(new, &key), failed_in(old, &key)) {
        (Some(report), _) => located(
            verdict(
                Rule::Verification,
                false,
                format!("{} {} failed live verification in `{to}` ({key}: {}); a failed build does not return to it: promote a new version", t.model, t.version, nonempty(&report)),
            ),
            &t.path,
            text,
            &["evidence", &key],
        ),
        (None, Some(report)) => verdict(
            Rule::Verification,
            false,
            format!("{} {} failed live verification in `{to}` ({key} at the merge base: {}); dropping the evidence does not let it back in", t.model, t.version, nonempty(&report)),
        ),
        (None, None) => verdict(
            Rule::Verification,
            true,
            format!("no failed verification of {} {} in `{to}`", t.model, t.version),
        ),
    };
    Some(v)
}

fn nonempty(s: &str) -> &str {
    if s.is_empty() {
        "no report"
    } else {
        s
    }
}
