//! `requires` as a co-deployment constraint (docs/gates.md): every environment runs what the
//! versions it runs require, judged with [`model_runs`], the rule the daemon deploys by.

use super::{hinted, located, verdict, Facts};
use crate::check::change::{ModelPair, Transition};
use crate::check::report::Verdict;
use crate::check::snapshot::ModelView;
use crate::check::Rule;
use crate::manifest::{Policy, VersionManifest};
use crate::registry::desired::model_runs;

// The rule: after the change, every environment that runs a version also runs each version it
// `requires`, and no environment stops running a version that a version it keeps running
// requires.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One version an environment runs: its label, manifest, and whether it is kept from a later
/// stage (not in the environment's own stage).
struct Running<'a> {
    label: &'a str,
    manifest: &'a VersionManifest,
    kept: bool,
}

/// What an environment deploying `stage` runs of a model folder (nothing when absent).
fn runs<'a>(policy: &Policy, stage: &str, view: Option<&'a ModelView>) -> Vec<Running<'a>> {
    let Some(view) = view else {
        return Vec::new();
    };
    let parsed: Vec<(&'a str, &'a VersionManifest)> = view
        .versions
        .values()
        .filter_map(|v| Some((v.label.as_str(), v.manifest()?)))
        .collect();
    let manifests: Vec<&VersionManifest> = parsed.iter().map(|(_, m)| *m).collect();
    model_runs(policy, stage, &manifests)
        .into_iter()
        .map(|r| Running {
            label: parsed[r.index].0,
            manifest: parsed[r.index].1,
            kept: r.kept,
        })
        .collect()
}

fn labels(rs: &[Running]) -> BTreeSet<String> {
    rs.iter().map(|r| r.label.to_owned()).collect()
}

/// Per (model, version): the environments that stop running it with the change, over the
/// changed models (only a model's own folder decides what runs of it).
pub fn stopped(
    policy: &Policy,
    changed: &BTreeMap<String, ModelPair>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (name, (old, head)) in changed {
        for spec in policy.environments.values() {
            let before = labels(&runs(policy, &spec.stage, old.as_deref()));
            let after = labels(&runs(policy, &spec.stage, head.as_deref()));
            for v in before.difference(&after) {
                out.insert((name.clone(), v.clone()));
            }
        }
    }
    out
}

/// The models whose head folders the rule reads besides the changed ones: what the changed
/// models' versions require.
pub fn partners(changed: &BTreeMap<String, ModelPair>) -> BTreeSet<String> {
    changed
        .values()
        .filter_map(|(_, h)| h.as_deref())
        .flat_map(|h| h.versions.values())
        .filter_map(|v| v.manifest())
        .flat_map(|m| m.requires.keys().cloned())
        .collect()
}

/// A model's folder at the old side: the changed models' own, else the same as at head.
fn old_view<'a>(f: &'a Facts, model: &str) -> Option<&'a ModelView> {
    match f.changed.get(model) {
        Some((old, _)) => old.as_deref(),
        None => head_view(f, model),
    }
}

fn head_view<'a>(f: &'a Facts, model: &str) -> Option<&'a ModelView> {
    f.head_models.get(model).map(Arc::as_ref)
}

/// `m@v`, with where it comes from when an environment keeps it from a later stage.
fn shown(model: &str, r: &Running) -> String {
    match r.kept {
        true => format!("{model}@{} (kept from `{}`)", r.label, r.manifest.stage),
        false => format!("{model}@{}", r.label),
    }
}

/// Why `model@version` is not what environment `env` runs at head.
fn absent_because(f: &Facts, model: &str, version: &str) -> String {
    match head_view(f, model).and_then(|m| m.version(version)) {
        None => "it is not registered at head".into(),
        Some(v) => match v.manifest() {
            None => "its manifest does not parse at head".into(),
            Some(m) => format!("it is in `{}`", m.stage),
        },
    }
}

pub fn judge(t: &Transition, f: &Facts) -> Verdict {
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    let model = t.model.as_str();
    // A version with its own transition answers for itself; a version that starts or stops
    // running only because its model's folder changed (the §1.3 fallback) is answered for by
    // every transition of the model.
    let changed_label = |label: &str| {
        let blob = |side: Option<&ModelView>| side.and_then(|m| m.version(label)).map(|v| v.blob);
        blob(f.old_model) != blob(f.head_model)
    };
    let ours = |label: &str| label == t.version || !changed_label(label);
    let mut problems = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    let mut held = Vec::new();
    let mut own_forward_problem = false;
    for (env, spec) in &f.policy.environments {
        let stage = spec.stage.as_str();
        let before = runs(f.policy, stage, f.old_model);
        let after = runs(f.policy, stage, f.head_model);
        let (was, is) = (labels(&before), labels(&after));
        // Forward: what the environment starts running has its requirements beside it.
        for r in after
            .iter()
            .filter(|r| !was.contains(r.label) && ours(r.label))
        {
            for (rm, rv) in &r.manifest.requires {
                let there = labels(&runs(f.policy, stage, head_view(f, rm)));
                if there.contains(rv) {
                    if r.label == t.version {
                        held.push(format!("{rm}@{rv} runs in `{env}` too"));
                    }
                    continue;
                }
                let why = absent_because(f, rm, rv);
                let promote = format!("`baton promote {rm} {rv} --to {stage}`");
                hints.push(match head_view(f, rm).and_then(|m| m.version(rv)) {
                    None => format!("register {rm} {rv} first, then run {promote} on this branch"),
                    Some(_) => format!("run {promote} on this branch and commit it (promote does not move requirements along)"),
                });
                if r.label == t.version && !r.kept {
                    own_forward_problem = true;
                    problems.push(format!(
                        "environment `{env}` runs it after the change but not {rm}@{rv}, which it requires ({why})"
                    ));
                } else {
                    problems.push(format!(
                        "environment `{env}` starts running {} but not {rm}@{rv}, which that requires ({why})",
                        shown(model, r)
                    ));
                }
            }
        }
        // Reverse: what it stops running is not required by what it keeps running.
        for r in before
            .iter()
            .filter(|r| !is.contains(r.label) && ours(r.label))
        {
            for d in f
                .dependents
                .iter()
                .filter(|d| d.requires.0 == model && d.requires.1 == r.label)
            {
                let kept = |side: Option<&ModelView>| {
                    labels(&runs(f.policy, stage, side)).contains(&d.version)
                };
                if !(kept(old_view(f, &d.model)) && kept(head_view(f, &d.model))) {
                    continue;
                }
                let what = match r.label == t.version && !r.kept {
                    true => "it".to_owned(),
                    false => shown(model, r),
                };
                problems.push(format!(
                    "environment `{env}` stops running {what} but keeps running {}@{}, which requires {model}@{}",
                    d.model, d.version, r.label
                ));
                hints.push(format!(
                    "move {}@{} out of `{stage}` in the same change (`baton promote {} <version> --to {stage}` for a version that does not need {model}@{}), or keep {model}@{} there",
                    d.model, d.version, d.model, r.label, r.label
                ));
            }
        }
    }
    if problems.is_empty() {
        return match held.is_empty() {
            true => verdict(Rule::Requires, true, "no requirement gained or lost"),
            false => verdict(Rule::Requires, true, held.join("; ")),
        };
    }
    hints.dedup();
    let v = hinted(
        verdict(Rule::Requires, false, problems.join("; ")),
        hints.join("; "),
    );
    match own_forward_problem {
        true => located(v, &t.path, &text, &["requires"]),
        false => v,
    }
}
