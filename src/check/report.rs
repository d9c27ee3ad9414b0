//! The result of a check: transitions, each with one verdict per applicable rule, plus
//! change-wide verdicts (`policy-change`, `schema`). Stable JSON; see docs/cli.md.

use crate::diag::Diagnostic;
use crate::stage_move::StageMove;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// One rule's judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The rule judged (docs/gates.md); serialized by its name (`stage-order`).
    pub rule: crate::check::Rule,
    pub passed: bool,
    /// Why, in one human sentence (both when passing and failing).
    pub reason: String,
    /// Repository-relative file the verdict concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What would make a failing verdict pass, in one or two sentences naming the command
    /// to run or the YAML to add (docs/gates.md); `None` when passing or nothing to suggest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One version's stage change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionReport {
    /// Model, version, stage at the merge base (`None`: new version) and at head (`None`:
    /// deleted), the manifest (serialized as `file`).
    #[serde(flatten, serialize_with = "crate::stage_move::path_as_file")]
    pub moved: StageMove,
    /// True when judged as a rollback (a return to a stage held before on the branch).
    pub rollback: bool,
    pub verdicts: Vec<Verdict>,
    /// When only time gates (`window`, `soak`) fail: the earliest instant they could all pass
    /// (the window's next opening, the end of the soak). A re-check is due then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// When a `window` gate passes: the instant it closes (deploy before then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_until: Option<DateTime<Utc>>,
}

impl std::ops::Deref for TransitionReport {
    type Target = StageMove;
    fn deref(&self) -> &StageMove {
        &self.moved
    }
}

impl TransitionReport {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}

/// The whole judgement of base...head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub base: String,
    pub merge_base: String,
    pub head: String,
    /// Registry folder, repository-relative.
    pub registry: String,
    pub transitions: Vec<TransitionReport>,
    /// Verdicts not tied to one version: `policy-change`, registry-wide `schema` errors.
    /// A failing one here blocks every model.
    pub change: Vec<Verdict>,
    /// Model-level verdicts (e.g. `policy-change` of one `model.yaml`, a model's schema
    /// errors): a failing one blocks that model.
    pub models: BTreeMap<String, Vec<Verdict>>,
    /// Located parse/validation errors found at head.
    pub errors: Vec<Diagnostic>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.change.iter().all(|v| v.passed)
            && self.models.values().flatten().all(|v| v.passed)
            && self.transitions.iter().all(|t| t.passed())
    }

    /// True when a change-wide verdict failed: nothing new may deploy.
    pub fn blocks_all(&self) -> bool {
        self.change.iter().any(|v| !v.passed)
    }

    /// Models with a failing verdict, each with the failing reasons (`rule: reason`).
    pub fn blocked_models(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (m, vs) in &self.models {
            for v in vs.iter().filter(|v| !v.passed) {
                out.entry(m.clone())
                    .or_default()
                    .push(format!("{}: {}", v.rule, v.reason));
            }
        }
        for t in &self.transitions {
            for v in t.verdicts.iter().filter(|v| !v.passed) {
                out.entry(t.model.clone()).or_default().push(format!(
                    "{}@{}: {}: {}",
                    t.model, t.version, v.rule, v.reason
                ));
            }
        }
        out
    }
}
