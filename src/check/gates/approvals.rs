//! `approvals`: at least `min` distinct approvers from `from` approved this exact change
//! (signed commits bound to the manifest, or forge reviews); the change's authors never count.

use super::{hinted, verdict, Facts};
use crate::check::approvals::{tally, Tally, Target};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::policy::ApprovalsGate;

/// Count approvals of `target` for transition `t` by the approvers `from` expands to.
pub fn count(t: &Transition, f: &Facts, target: &Target, from: &[String]) -> Tally {
    let allowed: Vec<String> = f
        .policy
        .expand_principals(from, f.owners)
        .into_iter()
        .map(|p| p.to_lowercase())
        .collect();
    tally(f.evidence, target, std::slice::from_ref(&t.path), &allowed)
}

/// `2 of 2 approvals from group:ml-leads, owners: a, b; not counted: ...`.
pub fn describe(t: &Tally, min: u32, from: &[String]) -> String {
    let mut s = format!(
        "{} of {min} approval{} from {}",
        t.counted.len(),
        if min == 1 { "" } else { "s" },
        from.join(", ")
    );
    if !t.counted.is_empty() {
        s.push_str(&format!(": {}", t.counted.join(", ")));
    }
    if !t.ignored.is_empty() {
        s.push_str(&format!("; not counted: {}", t.ignored.join("; ")));
    }
    s
}

/// What would make the gate pass: who may still approve (the resolved members of `from`,
/// minus the change's authors and who already counted) and the `baton approve` line.
pub fn hint(
    t: &Transition,
    f: &Facts,
    from: &[String],
    tally: &Tally,
    min: u32,
    stage: &str,
) -> String {
    let authors: std::collections::BTreeSet<String> = f
        .evidence
        .authors
        .get(&t.path)
        .into_iter()
        .flatten()
        .chain(&f.evidence.change_authors)
        .cloned()
        .collect();
    let counted: Vec<String> = tally.counted.iter().map(|c| c.to_lowercase()).collect();
    let (mut eligible, mut own) = (Vec::new(), Vec::new());
    for p in f.policy.expand_principals(from, f.owners) {
        let low = p.to_lowercase();
        if counted.contains(&low) {
            continue;
        }
        match authors.contains(&low) {
            true => own.push(p),
            false => eligible.push(p),
        }
    }
    let missing = (min as usize).saturating_sub(tally.counted.len());
    let not_authors = match own.is_empty() {
        true => String::new(),
        false => format!(" (not {}: a change's authors never count)", own.join(", ")),
    };
    if eligible.is_empty() {
        return format!(
            "nobody else may approve: {} resolves to no one but the change's authors and those counted{not_authors}; add a reviewer to it in baton.yaml (a policy change)",
            from.join(", ")
        );
    }
    format!(
        "{missing} more approval{} from {}{not_authors}: each runs `baton approve {} {} --stage {stage}` on the branch (git signing with an SSH key in the allowed signers) and pushes",
        if missing == 1 { "" } else { "s" },
        eligible.join(", "),
        t.model,
        t.version,
    )
}

pub fn judge(t: &Transition, f: &Facts, g: &ApprovalsGate) -> Verdict {
    let to = t.to().unwrap_or_default();
    let mut v = if g.min == 0 {
        verdict(Rule::Approvals, true, "no approvals required")
    } else {
        let target = Target::Version {
            model: t.model.clone(),
            version: t.version.clone(),
            stage: to.to_owned(),
        };
        let tally = count(t, f, &target, &g.from);
        let mut reason = describe(&tally, g.min, &g.from);
        if tally.counted.len() < g.min as usize && !f.evidence.notes.is_empty() {
            reason.push_str(&format!("; note: {}", f.evidence.notes.join("; ")));
        }
        hinted(
            verdict(
                Rule::Approvals,
                tally.counted.len() >= g.min as usize,
                reason,
            ),
            hint(t, f, &g.from, &tally, g.min, to),
        )
    };
    v.file = Some(t.path.clone());
    v
}

/// The approvals gate of stage `from` for a transition that leaves it empty (an undeploy):
/// approvals name the transition's destination (`<model>@<version> -> <to>`).
pub fn judge_for(t: &Transition, f: &Facts, g: &ApprovalsGate, to: &str, from: &str) -> Verdict {
    let mut v = if g.min == 0 {
        verdict(Rule::Approvals, true, "no approvals required")
    } else {
        let target = Target::Version {
            model: t.model.clone(),
            version: t.version.clone(),
            stage: to.to_owned(),
        };
        let tally = count(t, f, &target, &g.from);
        let v = verdict(
            Rule::Approvals,
            tally.counted.len() >= g.min as usize,
            format!(
                "undeploy: {} leaves `{from}` with no version of {}; {}",
                t.version,
                t.model,
                describe(&tally, g.min, &g.from)
            ),
        );
        hinted(v, hint(t, f, &g.from, &tally, g.min, to))
    };
    v.file = Some(t.path.clone());
    v
}
