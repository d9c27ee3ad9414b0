//! Plan a promotion (pure): move one version to a stage and make room as the stage requires —
//! archive the previous holder of an exclusive stage, or split traffic in a canary stage.

use super::edit::{set_stage, set_traffic};
use super::AuthoringError;
use crate::manifest::{Policy, VersionManifest};
use crate::registry::invariants::occupancy_problems;
use serde::Serialize;
use std::collections::BTreeMap;

/// A version manifest as found in the working tree.
#[derive(Debug, Clone)]
pub struct VersionText {
    pub label: String,
    /// Repository-relative path.
    pub path: String,
    pub text: String,
    pub manifest: VersionManifest,
}

/// One manifest edit of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub file: String,
    pub version: String,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<u32>,
    /// The new file content.
    #[serde(skip)]
    pub text: String,
}

/// The edits of one promotion and a commit message describing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub model: String,
    pub version: String,
    pub to: String,
    pub edits: Vec<Edit>,
    /// First line of the commit message.
    pub title: String,
}

impl Plan {
    /// A commit message: the title, one line per edit, and where it came from.
    pub fn message(&self) -> String {
        let mut m = format!("{}\n\n", self.title);
        for e in &self.edits {
            m.push_str(&format!(
                "- {} {}: {} -> {}{}\n",
                self.model,
                e.version,
                e.from,
                e.to,
                e.traffic
                    .map(|t| format!(" ({t}% traffic)"))
                    .unwrap_or_default()
            ));
        }
        m.push_str("\nMade by `baton promote`; `baton check` judges it against the gates.\n");
        m
    }
}

/// Plan moving `version` of `model` to stage `to` (with `traffic` percent in a canary stage).
pub fn plan(
    policy: &Policy,
    model: &str,
    versions: &[VersionText],
    version: &str,
    to: &str,
    traffic: Option<u32>,
) -> Result<Plan, AuthoringError> {
    let invalid = |m: String| Err(AuthoringError::Invalid(m));
    let refused = |m: String| Err(AuthoringError::Refused(m));
    let Some(stage) = policy.stage(to) else {
        let known: Vec<&str> = policy.stages.iter().map(|s| s.name.as_str()).collect();
        return invalid(format!(
            "unknown stage `{to}` (stages: {})",
            known.join(", ")
        ));
    };
    let Some(target) = versions.iter().find(|v| v.label == version) else {
        return invalid(format!("{model} has no version `{version}`"));
    };
    if let Some(t) = traffic {
        if !stage.canary {
            return invalid(format!("--traffic needs a canary stage; `{to}` is not one"));
        }
        if !(1..=99).contains(&t) {
            return invalid(format!("--traffic {t}: must be 1..99 (percent)"));
        }
    }
    let archive_to = policy
        .stages
        .iter()
        .find(|s| s.terminal)
        .map(|s| s.name.clone());
    // label -> (stage, traffic) after the promotion.
    let mut state: BTreeMap<&str, (String, Option<u32>)> = versions
        .iter()
        .map(|v| {
            (
                v.label.as_str(),
                (v.manifest.stage.clone(), v.manifest.traffic),
            )
        })
        .collect();
    state.insert(
        version,
        (to.to_owned(), if stage.terminal { None } else { traffic }),
    );
    if policy.is_deployed(to) && !stage.terminal && traffic.is_none() {
        for v in versions
            .iter()
            .filter(|v| v.label != version && v.manifest.stage == to)
        {
            let Some(archive) = &archive_to else {
                return refused(format!(
                    "`{to}` holds {model} {}; there is no terminal stage to archive it to",
                    v.label
                ));
            };
            state.insert(v.label.as_str(), (archive.clone(), None));
        }
    }
    // The stage must be valid afterwards.
    let after: Vec<VersionManifest> = versions
        .iter()
        .filter(|v| state[v.label.as_str()].0 == to)
        .map(|v| {
            let mut m = v.manifest.clone();
            m.stage = to.to_owned();
            m.traffic = state[v.label.as_str()].1;
            m
        })
        .collect();
    let refs: Vec<&VersionManifest> = after.iter().collect();
    let problems = occupancy_problems(policy, to, &refs);
    if !problems.is_empty() {
        return refused(problems.join("; "));
    }
    let mut edits = Vec::new();
    // The promoted version first, then the others in natural order.
    let mut order: Vec<&VersionText> = vec![target];
    order.extend(versions.iter().filter(|v| v.label != version));
    for v in order {
        let (new_stage, new_traffic) = &state[v.label.as_str()];
        if *new_stage == v.manifest.stage && *new_traffic == v.manifest.traffic {
            continue;
        }
        let text = set_traffic(&set_stage(&v.text, new_stage), *new_traffic);
        edits.push(Edit {
            file: v.path.clone(),
            version: v.label.clone(),
            from: v.manifest.stage.clone(),
            to: new_stage.clone(),
            traffic: *new_traffic,
            text,
        });
    }
    if edits.is_empty() {
        return refused(format!(
            "{model} {version} is already in `{to}`{}",
            traffic
                .map(|t| format!(" with {t}% traffic"))
                .unwrap_or_default()
        ));
    }
    let title = match traffic {
        Some(t) if !stage.terminal => format!("Promote {model} {version} to {to} ({t}% traffic)"),
        _ => format!("Promote {model} {version} to {to}"),
    };
    Ok(Plan {
        model: model.to_owned(),
        version: version.to_owned(),
        to: to.to_owned(),
        edits,
        title,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_policy, parse_version};

    const POLICY: &str = "version: 1\nstages:\n  - name: development\n  - name: staging\n  - name: production\n    canary: true\n  - name: archived\n    terminal: true\nenvironments:\n  staging: {stage: staging, target: {kind: local, path: s}}\n  production: {stage: production, target: {kind: local, path: p}}\n";

    fn v(label: &str, stage: &str, traffic: Option<u32>) -> VersionText {
        let text = format!(
            "model: m\nversion: \"{label}\"\nstage: {stage}\n{}artifact: {{uri: s3://b/{label}, sha256: x}}\ncreated: 2026-01-01T00:00:00Z\n",
            traffic.map(|t| format!("traffic: {t}\n")).unwrap_or_default()
        );
        VersionText {
            label: label.into(),
            path: format!("models/m/versions/{label}.yaml"),
            manifest: parse_version(text.as_bytes()).unwrap(),
            text,
        }
    }

    #[test]
    fn exclusive_stage_archives_previous_holder() {
        let p = parse_policy(POLICY.as_bytes()).unwrap();
        let vs = [v("1", "staging", None), v("2", "development", None)];
        let plan = plan(&p, "m", &vs, "2", "staging", None).unwrap();
        assert_eq!(plan.edits.len(), 2);
        assert_eq!(
            (plan.edits[0].version.as_str(), plan.edits[0].to.as_str()),
            ("2", "staging")
        );
        assert_eq!(
            (plan.edits[1].version.as_str(), plan.edits[1].to.as_str()),
            ("1", "archived")
        );
    }

    #[test]
    fn canary_splits_then_completes() {
        let p = parse_policy(POLICY.as_bytes()).unwrap();
        let vs = [v("1", "production", None), v("2", "staging", None)];
        let plan1 = plan(&p, "m", &vs, "2", "production", Some(10)).unwrap();
        assert_eq!(plan1.edits.len(), 1);
        assert!(plan1.edits[0]
            .text
            .contains("stage: production\ntraffic: 10\n"));
        let vs = [v("1", "production", None), v("2", "production", Some(10))];
        let plan2 = plan(&p, "m", &vs, "2", "production", None).unwrap();
        assert_eq!(plan2.edits.len(), 2);
        assert!(!plan2.edits[0].text.contains("traffic"));
        assert_eq!(plan2.edits[1].to, "archived");
        assert!(plan(&p, "m", &vs, "2", "production", Some(100)).is_err());
        assert!(plan(&p, "m", &vs, "1", "staging", Some(10)).is_err());
        let err = plan(
            &p,
            "m",
            &[v("1", "production", Some(60)), v("2", "production", None)],
            "3",
            "production",
            None,
        );
        assert!(err.is_err());
    }
}
