//! `policy-change`: changes to baton.yaml, the signers file or a model.yaml need an approval
//! (`Baton-Approve: policy`, or a forge review) from `policy_owners` at base.

use super::approvals::describe;
use super::verdict;
use crate::check::approvals::{tally, Evidence, Target};
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::Policy;

/// Judge a change to `paths` (repository-relative); `what` names them for the reason.
pub fn judge(policy: &Policy, evidence: &Evidence, paths: &[String], what: &str) -> Verdict {
    let mut v = if policy.policy_owners.is_empty() {
        verdict(
            Rule::PolicyChange,
            false,
            format!(
                "{what} changed, and the base policy names no `policy_owners` who could approve it"
            ),
        )
    } else {
        let allowed: Vec<String> = policy
            .expand_principals(&policy.policy_owners, &[])
            .into_iter()
            .map(|p| p.to_lowercase())
            .collect();
        let t = tally(evidence, &Target::Policy, paths, &allowed);
        let ok = !t.counted.is_empty();
        verdict(
            Rule::PolicyChange,
            ok,
            format!("{what} changed: {}", describe(&t, 1, &policy.policy_owners)),
        )
    };
    v.file = paths.first().cloned();
    v
}
