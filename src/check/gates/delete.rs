//! `delete`: a version manifest may be deleted only while it is in a terminal stage.

use super::{verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;

pub fn judge(t: &Transition, f: &Facts) -> Verdict {
    let mut v = match t.from() {
        Some(from) if f.policy.stage(from).is_some_and(|s| s.terminal) => verdict(
            Rule::Delete,
            true,
            format!("deleted from terminal stage `{from}`"),
        ),
        Some(from) => {
            let terminal: Vec<&str> = f
                .policy
                .stages
                .iter()
                .filter(|s| s.terminal)
                .map(|s| s.name.as_str())
                .collect();
            verdict(
                Rule::Delete,
                false,
                format!(
                    "a version may be deleted only from a terminal stage ({}); it is in `{from}`",
                    if terminal.is_empty() {
                        "none defined".to_owned()
                    } else {
                        terminal.join(", ")
                    }
                ),
            )
        }
        None => verdict(Rule::Delete, true, "the manifest did not parse at base"),
    };
    v.file = Some(t.path.clone());
    v
}
