//! `rollback`: a build returning to a stage where an earlier tenure of it was accepted needs
//! only `rollback.approvals` (from the stage's approvers) and skips metric, evidence, soak, window.

use super::approvals::{count, describe};
use super::{verdict, Facts};
use crate::check::approvals::Target;
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::Gate;
use chrono::{DateTime, Utc};
use git2::Oid;

/// When the version last entered the stage it now returns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub commit: Oid,
    pub time: DateTime<Utc>,
}

impl Held {
    pub fn describe(&self) -> String {
        format!(
            "entered by {} on {}",
            &self.commit.to_string()[..7],
            self.time.format("%Y-%m-%d")
        )
    }
}

/// `Some` when the transition returns its version to a non-terminal stage in which an earlier
/// tenure of the same build was accepted (the engine finds and judges that tenure beforehand).
pub fn held_before(t: &Transition, f: &Facts) -> Option<Held> {
    let to = t.to()?;
    if !t.moves() || t.from() == Some(to) || f.policy.stage(to).is_none_or(|s| s.terminal) {
        return None;
    }
    f.accepted_tenure.cloned()
}

pub fn judge(t: &Transition, f: &Facts, held: &Held) -> Verdict {
    let to = t.to().unwrap_or_default();
    let min = f.policy.rollback.approvals;
    let mut v = if min == 0 {
        verdict(
            Rule::Rollback,
            true,
            format!(
                "returns to `{to}` ({}); rollbacks need no approvals",
                held.describe()
            ),
        )
    } else {
        let mut from: Vec<String> = Vec::new();
        if let Some(stage) = f.policy.stage(to) {
            for g in &stage.gates {
                if let Gate::Approvals(a) = g {
                    from.extend(a.from.iter().cloned());
                }
            }
        }
        if from.is_empty() {
            from.push("owners".into());
            from.extend(f.policy.policy_owners.iter().cloned());
        }
        let target = Target::Version {
            model: t.model.clone(),
            version: t.version.clone(),
            stage: to.to_owned(),
        };
        let tally = count(t, f, &target, &from);
        let ok = tally.counted.len() >= min as usize;
        verdict(
            Rule::Rollback,
            ok,
            format!(
                "returns to `{to}` ({}); {}",
                held.describe(),
                describe(&tally, min, &from)
            ),
        )
    };
    v.file = Some(t.path.clone());
    v
}
