//! `evidence`: the named evidence exists in the version manifest with `passed: true`.

use super::{hinted, located, verdict};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;

pub fn judge(t: &Transition, name: &str) -> Verdict {
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    let Some(m) = t.new.as_ref().and_then(|n| n.manifest()) else {
        return verdict(Rule::Evidence, false, "manifest did not parse");
    };
    let v = match m.evidence.get(name) {
        None => hinted(
            verdict(
                Rule::Evidence,
                false,
                format!("evidence `{name}` is missing"),
            ),
            format!(
                "add it to {} (a new evidence key is allowed), or record it at registration with `baton register {} --artifact … --evidence {name}=FILE`:\nevidence:\n  {name}: {{passed: true, report: <path or URL of the result>}}",
                t.path, t.model
            ),
        ),
        Some(e) if !e.passed => hinted(
            verdict(
                Rule::Evidence,
                false,
                format!("evidence `{name}` did not pass"),
            ),
            format!(
                "recorded evidence never changes: register a new version whose `{name}` passed, e.g. `baton register {} --artifact … --evidence {name}=FILE`",
                t.model
            ),
        ),
        Some(e) => verdict(
            Rule::Evidence,
            true,
            match &e.report {
                Some(r) => format!("`{name}` passed (report {r})"),
                None => format!("`{name}` passed"),
            },
        ),
    };
    let key: &[&str] = if m.evidence.contains_key(name) {
        &["evidence", name]
    } else {
        &["evidence"]
    };
    located(v, &t.path, &text, key)
}
