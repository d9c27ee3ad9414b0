//! What each environment runs (docs/registry-format.md, "What an environment runs"): the one
//! pure rule behind `baton status`, the controller's plan and the `requires` gate.

use super::invariants::traffic_split;
use super::Registry;
use crate::manifest::{Policy, VersionManifest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One version an environment should serve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredVersion {
    pub version: String,
    /// Percent of traffic (100 outside canary stages).
    pub traffic: u32,
    /// The later stage the version is kept from when the environment's own stage holds no
    /// version of the model (`None`: the version is in the environment's stage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_from: Option<String>,
    #[serde(skip)]
    pub manifest: Arc<VersionManifest>,
    /// Repository-relative path of the manifest.
    #[serde(skip)]
    pub path: String,
}

/// What one environment should run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentDesired {
    pub stage: String,
    /// Model -> versions (one, or several in a canary stage), natural version order.
    pub models: BTreeMap<String, Vec<DesiredVersion>>,
}

/// One version an environment runs of one model, as found by [`model_runs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index into the versions given to [`model_runs`].
    pub index: usize,
    /// Percent of traffic.
    pub traffic: u32,
    /// True when the version is not in the environment's stage but kept from a later one.
    pub kept: bool,
}

/// What an environment deploying `stage` runs of one model whose parsed versions are
/// `versions` (natural version order):
///
/// * the versions in `stage`, with their traffic split;
/// * when `stage` holds none, the primary version (the one without `traffic`, or the only
///   one) of the nearest later non-terminal stage that holds a version of the model, at 100%;
/// * otherwise nothing: the model is not deployed there.
///
/// A later stage with several versions and no single primary (an invalid registry, which
/// `validate` and `exclusive` report) yields its first version without `traffic`, else its
/// first version, so the answer is always deterministic.
pub fn model_runs(policy: &Policy, stage: &str, versions: &[&VersionManifest]) -> Vec<Run> {
    let in_stage: Vec<usize> = (0..versions.len())
        .filter(|&i| versions[i].stage == stage)
        .collect();
    if !in_stage.is_empty() {
        let manifests: Vec<&VersionManifest> = in_stage.iter().map(|&i| versions[i]).collect();
        return in_stage
            .iter()
            .zip(traffic_split(&manifests))
            .map(|(&index, (_, traffic))| Run {
                index,
                traffic,
                kept: false,
            })
            .collect();
    }
    let Some(pos) = policy.stage_index(stage) else {
        return Vec::new();
    };
    for later in policy.stages[pos + 1..].iter().filter(|s| !s.terminal) {
        let held: Vec<usize> = (0..versions.len())
            .filter(|&i| versions[i].stage == later.name)
            .collect();
        let Some(&first) = held.first() else {
            continue;
        };
        let primary = held
            .iter()
            .copied()
            .find(|&i| versions[i].traffic.is_none())
            .unwrap_or(first);
        return vec![Run {
            index: primary,
            traffic: 100,
            kept: true,
        }];
    }
    Vec::new()
}

/// Desired state of every environment in the registry's policy.
pub fn desired_state(reg: &Registry) -> BTreeMap<String, EnvironmentDesired> {
    let mut out = BTreeMap::new();
    let Some(policy) = &reg.policy else {
        return out;
    };
    for (env, spec) in &policy.environments {
        let mut models = BTreeMap::new();
        for (name, model) in &reg.models {
            let entries: Vec<_> = model.parsed().collect();
            let manifests: Vec<&VersionManifest> =
                entries.iter().map(|v| v.manifest.as_ref()).collect();
            let runs = model_runs(policy, &spec.stage, &manifests);
            if runs.is_empty() {
                continue;
            }
            let versions = runs
                .iter()
                .map(|r| {
                    let v = entries[r.index];
                    DesiredVersion {
                        version: v.manifest.version.clone(),
                        traffic: r.traffic,
                        kept_from: r.kept.then(|| v.manifest.stage.clone()),
                        manifest: v.manifest.clone(),
                        path: v.path.clone(),
                    }
                })
                .collect();
            models.insert(name.clone(), versions);
        }
        out.insert(
            env.clone(),
            EnvironmentDesired {
                stage: spec.stage.clone(),
                models,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_policy;

    const POLICY: &str = "version: 1
stages:
  - name: development
  - name: staging
  - name: shadow
  - name: production
    canary: true
  - name: archived
    terminal: true
environments:
  staging: {stage: staging, target: {kind: local, path: staging}}
  production: {stage: production, target: {kind: local, path: production}}
";

    fn policy() -> Policy {
        parse_policy(POLICY.as_bytes()).unwrap()
    }

    fn version(label: &str, stage: &str, traffic: Option<u32>) -> VersionManifest {
        let text = format!(
            "model: m\nversion: \"{label}\"\nstage: {stage}\nartifact:\n  uri: s3://b/{label}\n  sha256: {}\n{}created: 2026-11-01T10:00:00Z\n",
            "a".repeat(64),
            traffic.map(|t| format!("traffic: {t}\n")).unwrap_or_default()
        );
        crate::manifest::parse_version(text.as_bytes()).unwrap()
    }

    /// (label, traffic, kept): one version an environment runs.
    type Row = (String, u32, bool);

    /// (label, traffic, kept) of what an environment deploying `stage` runs.
    fn runs(stage: &str, versions: &[VersionManifest]) -> Vec<Row> {
        let refs: Vec<&VersionManifest> = versions.iter().collect();
        model_runs(&policy(), stage, &refs)
            .into_iter()
            .map(|r| (versions[r.index].version.clone(), r.traffic, r.kept))
            .collect()
    }

    fn row(label: &str, traffic: u32, kept: bool) -> Row {
        (label.to_owned(), traffic, kept)
    }

    #[test]
    fn the_stage_own_versions_run_with_their_split() {
        let vs = [
            version("1", "production", None),
            version("2", "production", Some(10)),
            version("3", "staging", None),
        ];
        assert_eq!(
            runs("production", &vs),
            vec![row("1", 90, false), row("2", 10, false)]
        );
        assert_eq!(runs("staging", &vs), vec![row("3", 100, false)]);
    }

    #[test]
    fn an_empty_stage_keeps_the_primary_of_the_nearest_later_stage() {
        // Table: the versions, then what staging runs.
        let cases: Vec<(Vec<VersionManifest>, Vec<Row>)> = vec![
            // Promoted to production: staging keeps serving it.
            (
                vec![
                    version("1", "archived", None),
                    version("2", "production", None),
                ],
                vec![row("2", 100, true)],
            ),
            // A canary in production: staging keeps the primary, not the canary.
            (
                vec![
                    version("1", "production", None),
                    version("2", "production", Some(10)),
                ],
                vec![row("1", 100, true)],
            ),
            // The nearest later stage wins (shadow before production).
            (
                vec![
                    version("1", "production", None),
                    version("2", "shadow", None),
                ],
                vec![row("2", 100, true)],
            ),
            // Only development and archived versions: not deployed in staging.
            (
                vec![
                    version("1", "archived", None),
                    version("2", "development", None),
                ],
                vec![],
            ),
            // A new candidate in staging replaces the kept version.
            (
                vec![
                    version("1", "production", None),
                    version("2", "staging", None),
                ],
                vec![row("2", 100, false)],
            ),
            // No single primary (invalid): the first without traffic, deterministically.
            (
                vec![
                    version("1", "production", Some(20)),
                    version("2", "production", None),
                    version("3", "production", None),
                ],
                vec![row("2", 100, true)],
            ),
        ];
        for (vs, want) in cases {
            assert_eq!(runs("staging", &vs), want, "{vs:#?}");
        }
    }

    #[test]
    fn earlier_stages_and_unknown_stages_never_fall_back() {
        let vs = [version("1", "staging", None)];
        // Production holds nothing and no non-terminal stage follows it.
        assert_eq!(runs("production", &vs), vec![]);
        assert_eq!(runs("nowhere", &vs), vec![]);
        // Development falls back through staging.
        assert_eq!(runs("development", &vs), vec![row("1", 100, true)]);
    }

    #[test]
    fn desired_state_marks_kept_versions() {
        let p = Arc::new(policy());
        let mut versions = BTreeMap::new();
        for v in [
            version("1", "archived", None),
            version("2", "production", None),
        ] {
            versions.insert(
                super::super::VersionKey(v.version.clone()),
                super::super::VersionFile {
                    label: v.version.clone(),
                    path: format!("models/m/versions/{}.yaml", v.version),
                    blob: git2::Oid::zero(),
                    parsed: Ok(Arc::new(v)),
                },
            );
        }
        let model = super::super::ModelEntry {
            name: "m".into(),
            path: "models/m".into(),
            tree: git2::Oid::zero(),
            manifest: None,
            manifest_blob: None,
            versions,
            layout: vec![],
            diagnostics: vec![],
        };
        let reg = Registry {
            commit: git2::Oid::zero(),
            root: String::new(),
            tree: git2::Oid::zero(),
            policy: Some(p),
            policy_blob: None,
            models: [("m".to_owned(), Arc::new(model))].into_iter().collect(),
            diagnostics: vec![],
        };
        let d = desired_state(&reg);
        let staging = &d["staging"].models["m"];
        assert_eq!(staging.len(), 1);
        assert_eq!(staging[0].version, "2");
        assert_eq!(staging[0].kept_from.as_deref(), Some("production"));
        let production = &d["production"].models["m"];
        assert_eq!(production[0].version, "2");
        assert_eq!(production[0].kept_from, None);
    }
}
