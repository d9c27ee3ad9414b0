//! The rules of docs/gates.md, one module per gate. Each is a pure function from a transition and
//! pre-fetched [`Facts`] to verdicts; [`judge_transition`] decides which rules apply.

pub mod approvals;
pub mod artifact;
pub mod delete;
pub mod evidence;
pub mod exclusive;
pub mod immutable;
pub mod metric;
pub mod policy_change;
pub mod requires;
pub mod rollback;
pub mod schema;
pub mod soak;
pub mod stage_order;
pub mod verification;
pub mod window;

use super::approvals::Evidence;
use super::change::{ModelPair, Transition};
use super::report::{TransitionReport, Verdict};
use super::rule::Rule;
use super::snapshot::ModelView;
use crate::history::StageEvent;
use crate::manifest::{Gate, Policy};
use crate::registry::files::ArtifactFile;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A version at head that requires another model's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    pub model: String,
    pub version: String,
    /// The required model and version.
    pub requires: (String, String),
    pub path: String,
}

/// Everything a gate may look at, gathered at the edge before judging.
pub struct Facts<'a> {
    /// Policy from the base side.
    pub policy: &'a Policy,
    /// Owners of the transition's model, from the base side.
    pub owners: &'a [String],
    /// The transition's model at the old side (merge-base) and at head.
    pub old_model: Option<&'a ModelView>,
    pub head_model: Option<&'a ModelView>,
    /// Models loaded at head: the changed ones, what their versions require, and the models
    /// of the `dependents`.
    pub head_models: &'a BTreeMap<String, Arc<ModelView>>,
    /// Versions at head that require a version some environment stops running.
    pub dependents: &'a [Dependent],
    /// Stage events of this version on the base branch's first-parent history, newest first.
    pub history: &'a [StageEvent],
    /// Every label of the transition's model that ever existed on that history.
    pub labels_ever: &'a BTreeSet<String>,
    /// The newest earlier tenure of this same build in the transition's target stage whose
    /// entering change passed that stage's gates (judged by the engine beforehand); `Some`
    /// makes the transition a rollback (docs/gates.md, `rollback`).
    pub accepted_tenure: Option<&'a rollback::Held>,
    /// Whether stage-entry times come from the daemon's acceptance record (`baton serve`)
    /// rather than from commit dates (`baton check`).
    pub daemon_clock: bool,
    pub now: DateTime<Utc>,
    pub evidence: &'a Evidence,
    /// Registry folder, repository-relative.
    pub root: &'a str,
    /// Every model whose folder the change touched: name -> (old side, head).
    pub changed: &'a BTreeMap<String, ModelPair>,
    /// In-registry artifact files at head (repository-relative path) of the versions in a
    /// deployed stage after the change.
    pub artifacts: &'a BTreeMap<String, ArtifactFile>,
}

/// A verdict for `rule`.
pub fn verdict(rule: Rule, passed: bool, reason: impl Into<String>) -> Verdict {
    Verdict {
        rule,
        passed,
        reason: reason.into(),
        file: None,
        line: None,
        hint: None,
    }
}

/// `v` with `hint` (what would make it pass) when it fails; a passing verdict needs none.
pub fn hinted(mut v: Verdict, hint: impl Into<String>) -> Verdict {
    if !v.passed {
        v.hint = Some(hint.into());
    }
    v
}

/// Attach a file and the line of `key` in `text` (when found).
pub fn located(mut v: Verdict, file: &str, text: &str, key: &[&str]) -> Verdict {
    v.file = Some(file.to_owned());
    v.line = crate::manifest::locate::find_key(text, key).map(|(l, _)| l);
    v
}

/// Verdicts without a line point at the manifest's `stage` line (where the move is).
fn locate_at_stage(t: &Transition, report: &mut TransitionReport) {
    let Some(new) = &t.new else { return };
    let line = crate::manifest::locate::find_key(&new.text, &["stage"]).map(|(l, _)| l);
    for v in report.verdicts.iter_mut().filter(|v| v.line.is_none()) {
        v.file.get_or_insert_with(|| t.path.clone());
        v.line = line;
    }
}

/// Judge one transition: the rules that apply to it, in a stable order.
pub fn judge_transition(t: &Transition, f: &Facts) -> TransitionReport {
    let mut report = judge_rules(t, f);
    locate_at_stage(t, &mut report);
    report
}

fn judge_rules(t: &Transition, f: &Facts) -> TransitionReport {
    let mut report = TransitionReport {
        moved: t.moved.clone(),
        rollback: false,
        verdicts: Vec::new(),
        not_before: None,
        open_until: None,
    };
    let v = &mut report.verdicts;
    if t.is_delete() {
        v.push(delete::judge(t, f));
        return report;
    }
    let schema = schema::judge(t, f);
    let schema_ok = schema.passed;
    v.push(schema);
    if !schema_ok {
        return report;
    }
    let held = rollback::held_before(t, f);
    report.rollback = held.is_some();
    let v = &mut report.verdicts;
    v.push(stage_order::judge(t, f, held.as_ref()));
    if t.old.as_ref().is_some_and(|o| o.manifest().is_some()) {
        v.push(immutable::judge(t, held.is_some()));
    } else if t.is_new() {
        v.push(immutable::judge_new_label(t, f.labels_ever));
    }
    v.push(exclusive::judge(t, f));
    v.push(requires::judge(t, f));
    v.extend(artifact::judge(t, f));
    let to = t.to().unwrap_or_default();
    let Some(stage) = f.policy.stage(to) else {
        return report;
    };
    let mut waits: Vec<DateTime<Utc>> = Vec::new();
    // Leaving a deployed stage empty (an undeploy) needs that stage's approvals and respects
    // its deploy window; a promotion onwards is judged by the next stage's gates instead.
    if let Some(from) = t.from().filter(|f| Some(*f) != t.to()) {
        if is_undeploy(t, f, from) {
            if let Some(fs) = f.policy.stage(from) {
                for g in &fs.gates {
                    match g {
                        Gate::Approvals(a) => v.push(approvals::judge_for(t, f, a, to, from)),
                        Gate::Window(w) => {
                            let state = window::evaluate(w, f.now);
                            if let Some(at) = state.opens_at.filter(|_| !state.open) {
                                waits.push(at);
                            }
                            let mut verdict = window::judge(w, &state);
                            verdict.reason = format!("undeploy from `{from}`: {}", verdict.reason);
                            v.push(verdict);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if !t.moves() {
        // A traffic shift inside a canary stage: raising a share or making a version the
        // primary needs the stage's approvals; lowering a share is containment.
        if f.policy.is_deployed(to) && is_traffic_shift(t) {
            for g in &stage.gates {
                if let Gate::Approvals(a) = g {
                    let mut verdict = approvals::judge(t, f, a);
                    verdict.reason = format!("traffic shift: {}", verdict.reason);
                    v.push(verdict);
                }
            }
        }
        return finish(report, waits);
    }
    if stage.terminal {
        return finish(report, waits);
    }
    if let Some(h) = &held {
        v.push(rollback::judge(t, f, h));
    }
    // A rollback too: the failed build stays out of the stage.
    v.extend(verification::judge(t, f, to));
    for g in &stage.gates {
        match g {
            Gate::Metric(m) if held.is_none() => v.push(metric::judge(t, f, m)),
            Gate::Metric(_) => {}
            Gate::Evidence(name) if held.is_none() => v.push(evidence::judge(t, name)),
            Gate::Evidence(_) => {}
            Gate::Soak(s) if held.is_none() => {
                let (verdict, at) = soak::judge(t, f, s);
                if let Some(at) = at.filter(|_| !verdict.passed) {
                    waits.push(at);
                }
                v.push(verdict);
            }
            Gate::Soak(_) => {}
            Gate::Window(w) if held.is_none() => {
                let state = window::evaluate(w, f.now);
                if state.open {
                    report.open_until = match (report.open_until, state.closes_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                } else if let Some(at) = state.opens_at {
                    waits.push(at);
                }
                v.push(window::judge(w, &state));
            }
            Gate::Window(_) => {}
            Gate::Approvals(a) if held.is_none() => v.push(approvals::judge(t, f, a)),
            Gate::Approvals(_) => {}
        }
    }
    finish(report, waits)
}

/// When only time gates fail, the earliest instant they could all pass.
fn finish(mut report: TransitionReport, waits: Vec<DateTime<Utc>>) -> TransitionReport {
    let time_only = report
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .all(|v| v.rule.is_time());
    if !waits.is_empty() && time_only {
        report.not_before = waits.into_iter().max();
    }
    report
}

/// True when `t` takes its version out of deployed stage `from`, leaving the model no version
/// there, other than by a promotion to the next stage (which the next stage's gates judge).
fn is_undeploy(t: &Transition, f: &Facts, from: &str) -> bool {
    if !f.policy.is_deployed(from) {
        return false;
    }
    if let (Some(to), Some(fi)) = (t.to(), f.policy.stage_index(from)) {
        let forward = f
            .policy
            .stage_index(to)
            .is_some_and(|ti| ti > fi && !f.policy.stages[ti].terminal);
        if forward {
            return false;
        }
    }
    f.head_model
        .is_none_or(|m| m.in_stage(from).next().is_none())
}

/// A same-stage edit that raises the version's traffic share or makes it the primary (the
/// version without `traffic`).
pub fn is_traffic_shift(t: &Transition) -> bool {
    let (Some(old), Some(new)) = (
        t.old.as_ref().and_then(|o| o.manifest()),
        t.new.as_ref().and_then(|n| n.manifest()),
    ) else {
        return false;
    };
    match (old.traffic, new.traffic) {
        (Some(a), Some(b)) => b > a,
        (Some(_), None) => true,
        _ => false,
    }
}
