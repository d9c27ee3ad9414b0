//! `schema`: the changed manifest parses, has no unknown fields, matches its file name and
//! names a stage of the base policy; artifact, traffic and `requires` entries are well-formed.

use super::{located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::registry::invariants::{artifact_location, is_sha256, remote_size_problem};

pub fn judge(t: &Transition, f: &Facts) -> Verdict {
    let Some(new) = &t.new else {
        return verdict(Rule::Schema, true, "deleted");
    };
    let m = match &new.parsed {
        Ok(m) => m,
        Err(e) => {
            let mut v = verdict(Rule::Schema, false, e.message.clone());
            v.file = Some(t.path.clone());
            v.line = e.line;
            return v;
        }
    };
    let mut problems: Vec<(String, &[&str])> = Vec::new();
    if m.model != t.model {
        problems.push((
            format!(
                "model `{}` does not match the folder name `{}`",
                m.model, t.model
            ),
            &["model"],
        ));
    }
    if m.version != t.version {
        problems.push((
            format!(
                "version `{}` does not match the file name `{}.yaml`",
                m.version, t.version
            ),
            &["version"],
        ));
    }
    let stage = f.policy.stage(&m.stage);
    if stage.is_none() {
        let known: Vec<&str> = f.policy.stages.iter().map(|s| s.name.as_str()).collect();
        problems.push((
            format!(
                "unknown stage `{}` (stages at base: {})",
                m.stage,
                known.join(", ")
            ),
            &["stage"],
        ));
    }
    if !is_sha256(&m.artifact.sha256) {
        problems.push((
            "artifact.sha256 must be 64 lower-case hex characters".into(),
            &["artifact", "sha256"],
        ));
    }
    if let Err(why) = artifact_location(&m.artifact.uri) {
        problems.push((
            format!("artifact.uri `{}`: {why}", m.artifact.uri),
            &["artifact", "uri"],
        ));
    }
    if let Some(problem) = remote_size_problem(&m.artifact) {
        problems.push((problem, &["artifact"]));
    }
    if let Some(tr) = m.traffic {
        if stage.is_some_and(|s| !s.canary) {
            problems.push((
                format!(
                    "traffic is only allowed in a canary stage; `{}` is not one",
                    m.stage
                ),
                &["traffic"],
            ));
        } else if !(1..=99).contains(&tr) {
            problems.push((
                format!("traffic {tr} must be 1..99 (percent)"),
                &["traffic"],
            ));
        }
    }
    for (rm, rv) in &m.requires {
        if rm == &m.model {
            problems.push((
                "a version cannot require its own model".into(),
                &["requires"],
            ));
            continue;
        }
        match f.head_models.get(rm) {
            None => problems.push((format!("requires unknown model `{rm}`"), &["requires"])),
            Some(model) if model.version(rv).is_none() => problems.push((
                format!("requires `{rm}` version `{rv}`, which is not registered"),
                &["requires"],
            )),
            _ => {}
        }
    }
    match problems.into_iter().next() {
        None => verdict(Rule::Schema, true, "manifest is well-formed"),
        Some((msg, key)) => located(verdict(Rule::Schema, false, msg), &t.path, &new.text, key),
    }
}
