//! Re-checking what landed, as pure functions over a gates report: which models pass, which
//! are blocked (with reasons) and which wait for a deploy window; plus the helpers the
//! controller uses to hold back models (changed models, unmet `requires`).

use super::release::Release;
use crate::check::gates::window;
use crate::check::CheckReport;
use crate::manifest::{Gate, Policy};
use crate::registry::Registry;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a model is held at its last good baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldKind {
    /// Failed gates (or does not parse): waits for a later commit.
    Blocked,
    /// Only time gates fail (a closed deploy window, a soak not yet served): goes ahead
    /// when time allows (`until`), re-checked at every resync.
    Waiting,
}

/// The judgement of one model for one change.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelVerdict {
    Pass,
    Hold {
        kind: HoldKind,
        reasons: Vec<String>,
        until: Option<DateTime<Utc>>,
    },
}

impl ModelVerdict {
    pub fn blocked(reasons: Vec<String>) -> Self {
        ModelVerdict::Hold {
            kind: HoldKind::Blocked,
            reasons,
            until: None,
        }
    }
}

fn loc(file: &Option<String>, line: Option<usize>) -> String {
    match (file, line) {
        (Some(f), Some(l)) => format!(" ({f}:{l})"),
        (Some(f), None) => format!(" ({f})"),
        _ => String::new(),
    }
}

/// Classify `model` in `report`: blocked, waiting (only `window` / `soak` fail) or pass.
/// `policy` (the base side's) locates window gates when the engine gives no `not_before`.
pub fn classify(
    report: &CheckReport,
    model: &str,
    policy: Option<&Policy>,
    now: DateTime<Utc>,
) -> ModelVerdict {
    let mut reasons = Vec::new();
    let mut only_time = true;
    let mut windows = Vec::new();
    let mut not_before: Option<DateTime<Utc>> = None;
    for v in report.change.iter().filter(|v| !v.passed) {
        only_time = false;
        reasons.push(format!("{}: {}{}", v.rule, v.reason, loc(&v.file, v.line)));
    }
    for v in report
        .models
        .get(model)
        .into_iter()
        .flatten()
        .filter(|v| !v.passed)
    {
        only_time = false;
        reasons.push(format!("{}: {}{}", v.rule, v.reason, loc(&v.file, v.line)));
    }
    for t in report.transitions.iter().filter(|t| t.model == model) {
        if let Some(nb) = t.not_before {
            not_before = not_before.max(Some(nb));
        }
        for v in t.verdicts.iter().filter(|v| !v.passed) {
            if v.rule == "soak" {
                // Time fixes it: the engine says when (`not_before`).
            } else if v.rule == "window" {
                if let Some(stage) = t.to.as_deref().and_then(|s| policy?.stage(s)) {
                    windows.extend(stage.gates.iter().filter_map(|g| match g {
                        Gate::Window(w) => Some(w),
                        _ => None,
                    }));
                }
            } else {
                only_time = false;
            }
            reasons.push(format!(
                "{}@{}: {}: {}{}",
                t.model,
                t.version,
                v.rule,
                v.reason,
                loc(&v.file, v.line)
            ));
        }
    }
    if reasons.is_empty() {
        return ModelVerdict::Pass;
    }
    if only_time {
        let until = not_before.or_else(|| window::wait_until(&windows, now));
        return ModelVerdict::Hold {
            kind: HoldKind::Waiting,
            reasons,
            until,
        };
    }
    ModelVerdict::blocked(reasons)
}

/// Models whose files differ between two registries (all of them when the policy changed).
pub fn changed_models(a: &Registry, b: &Registry) -> BTreeSet<String> {
    let names: BTreeSet<&String> = a.models.keys().chain(b.models.keys()).collect();
    let policy_changed = a.policy_blob != b.policy_blob;
    names
        .into_iter()
        .filter(|m| policy_changed || !same_entry(a, b, m))
        .cloned()
        .collect()
}

fn same_entry(a: &Registry, b: &Registry, m: &str) -> bool {
    match (a.models.get(m), b.models.get(m)) {
        (Some(x), Some(y)) => {
            std::sync::Arc::ptr_eq(x, y)
                || (x.manifest_blob == y.manifest_blob
                    && x.diagnostics == y.diagnostics
                    && x.versions.len() == y.versions.len()
                    && x.versions
                        .iter()
                        .zip(y.versions.iter())
                        .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.blob == v2.blob))
        }
        (None, None) => true,
        _ => false,
    }
}

/// Per model, the `requires` its releases name that their environment will not run.
pub fn unmet_requires(
    envs: &BTreeMap<String, BTreeMap<String, Release>>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (env, releases) in envs {
        for (m, rel) in releases {
            for v in &rel.versions {
                for (dep, ver) in &v.requires {
                    let ok = releases
                        .get(dep)
                        .is_some_and(|r| r.versions.iter().any(|x| &x.version == ver));
                    if !ok {
                        let runs = releases
                            .get(dep)
                            .map(|r| format!("runs {}", r.label()))
                            .unwrap_or_else(|| "does not run it".into());
                        out.entry(m.clone()).or_default().push(format!(
                            "requires: {m}@{} needs {dep}@{ver} in {env}, which {runs} (held back)",
                            v.version
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{TransitionReport, Verdict};

    fn verdict(rule: &str, passed: bool) -> Verdict {
        Verdict {
            rule: rule.into(),
            passed,
            reason: format!("{rule} says so"),
            file: None,
            line: None,
        }
    }

    fn report(transitions: Vec<TransitionReport>) -> CheckReport {
        CheckReport {
            base: "b".into(),
            merge_base: "b".into(),
            head: "h".into(),
            registry: String::new(),
            transitions,
            change: vec![],
            models: BTreeMap::new(),
            errors: vec![],
        }
    }

    fn t(model: &str, verdicts: Vec<Verdict>) -> TransitionReport {
        TransitionReport {
            model: model.into(),
            version: "4".into(),
            from: Some("staging".into()),
            to: Some("production".into()),
            file: String::new(),
            rollback: false,
            verdicts,
            not_before: None,
            open_until: None,
        }
    }

    #[test]
    fn blocks_per_model_and_waits_for_windows() {
        let r = report(vec![
            t(
                "a",
                vec![verdict("approvals", false), verdict("metric", true)],
            ),
            t("b", vec![verdict("metric", true)]),
            t("c", vec![verdict("window", false)]),
        ]);
        let now = Utc::now();
        assert!(matches!(
            classify(&r, "a", None, now),
            ModelVerdict::Hold {
                kind: HoldKind::Blocked,
                ..
            }
        ));
        assert_eq!(classify(&r, "b", None, now), ModelVerdict::Pass);
        assert!(matches!(
            classify(&r, "c", None, now),
            ModelVerdict::Hold {
                kind: HoldKind::Waiting,
                ..
            }
        ));
        assert_eq!(classify(&r, "zzz", None, now), ModelVerdict::Pass);
    }

    #[test]
    fn change_wide_failures_block_everyone() {
        let mut r = report(vec![]);
        r.change.push(verdict("policy-change", false));
        assert!(matches!(
            classify(&r, "any", None, Utc::now()),
            ModelVerdict::Hold {
                kind: HoldKind::Blocked,
                ..
            }
        ));
    }

    #[test]
    fn unmet_requires_are_found() {
        let mut fraud = crate::daemon::release::test_release("fraud", &[("4", 'f', 100)]);
        fraud.versions[0].requires.insert("enc".into(), "8".into());
        let enc = crate::daemon::release::test_release("enc", &[("7", 'e', 100)]);
        let envs = BTreeMap::from([(
            "prod".to_owned(),
            BTreeMap::from([("fraud".to_owned(), fraud), ("enc".to_owned(), enc)]),
        )]);
        let u = unmet_requires(&envs);
        assert_eq!(u.len(), 1);
        assert!(u["fraud"][0].contains("enc@8"), "{:?}", u);
    }
}
