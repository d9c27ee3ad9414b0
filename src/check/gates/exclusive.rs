//! `exclusive`: after the change, a deployed stage holds at most one version of the model, or
//! in a canary stage a valid traffic split (rules shared with `baton validate`).

use super::{located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::VersionManifest;
use crate::registry::invariants::{occupancy_problems, traffic_split};

pub fn judge(t: &Transition, f: &Facts) -> Verdict {
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    let Some(head) = f.head_model else {
        return verdict(Rule::Exclusive, true, "model has no versions at head");
    };
    let mut stages: Vec<&str> = t.to().into_iter().collect();
    if let Some(from) = t.from() {
        if Some(from) != t.to() {
            stages.push(from);
        }
    }
    let mut problems = Vec::new();
    let mut holds = Vec::new();
    for stage in stages {
        let vs: Vec<&VersionManifest> = head.in_stage(stage).filter_map(|v| v.manifest()).collect();
        problems.extend(occupancy_problems(f.policy, stage, &vs));
        if Some(stage) == t.to() {
            if !f.policy.is_deployed(stage) {
                holds.push(format!("`{stage}` is not deployed and may hold any number"));
            } else {
                let split = traffic_split(&vs)
                    .into_iter()
                    .map(|(v, p)| format!("{v} ({p}%)"))
                    .collect::<Vec<_>>()
                    .join(", ");
                holds.push(format!("`{stage}` holds {}: {split}", t.model));
            }
        }
    }
    match problems.into_iter().next() {
        None => verdict(
            Rule::Exclusive,
            true,
            if holds.is_empty() {
                "leaves no stage over-full".to_owned()
            } else {
                holds.join("; ")
            },
        ),
        Some(p) => {
            let key: &[&str] = if text.contains("\ntraffic:") {
                &["traffic"]
            } else {
                &["stage"]
            };
            located(verdict(Rule::Exclusive, false, p), &t.path, &text, key)
        }
    }
}
