//! `requires`: in a deployed stage, every `requires` entry of the version holds in its stage
//! after the change, and no version left behind in the stage it leaves still requires it.

use super::{located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;

pub fn judge(t: &Transition, f: &Facts) -> Verdict {
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    let Some(m) = t.new.as_ref().and_then(|n| n.manifest()) else {
        return verdict("requires", true, "nothing to check");
    };
    let deployed = |s: &str| f.policy.is_deployed(s);
    let mut problems = Vec::new();
    let mut held = Vec::new();
    if deployed(&m.stage) {
        for (rm, rv) in &m.requires {
            let stage = f
                .head_models
                .get(rm)
                .and_then(|mv| mv.version(rv))
                .and_then(|v| v.manifest())
                .map(|v| v.stage.clone());
            match stage {
                Some(s) if s == m.stage => held.push(format!("{rm}@{rv}")),
                Some(s) => problems.push(format!(
                    "requires {rm}@{rv}, which is in `{s}`, not `{}`, after the change",
                    m.stage
                )),
                None => problems.push(format!(
                    "requires {rm}@{rv}, which is not registered at head"
                )),
            }
        }
    }
    if let Some(from) = t.from() {
        if from != m.stage && deployed(from) {
            for d in f
                .dependents
                .iter()
                .filter(|d| d.requires.0 == t.model && d.requires.1 == t.version && d.stage == from)
            {
                problems.push(format!(
                    "{}@{} stays in `{from}` and requires {}@{}, which leaves it",
                    d.model, d.version, t.model, t.version
                ));
            }
        }
    }
    match problems.is_empty() {
        true if held.is_empty() => verdict("requires", true, "no requirements in this stage"),
        true => verdict(
            "requires",
            true,
            format!("{} in `{}` too", held.join(", "), m.stage),
        ),
        false => located(
            verdict("requires", false, problems.join("; ")),
            &t.file,
            &text,
            &["requires"],
        ),
    }
}
