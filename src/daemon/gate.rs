//! Re-checking what landed, as pure functions over a gates report: which models pass, which
//! are blocked (with reasons) and which wait for a deploy window; plus the helpers the
//! controller uses to hold back models (changed models, unmet `requires`).

use super::release::Release;
use crate::check::gates::window;
use crate::check::CheckReport;
use crate::check::Rule;
use crate::manifest::{Gate, Policy};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Blocked => "blocked",
            HoldKind::Waiting => "waiting",
        }
    }
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

    /// A held verdict with `note` added to its reasons (a pass stays a pass).
    pub fn with_note(self, note: Option<String>) -> Self {
        match (self, note) {
            (
                ModelVerdict::Hold {
                    kind,
                    mut reasons,
                    until,
                },
                Some(n),
            ) => {
                reasons.push(n);
                ModelVerdict::Hold {
                    kind,
                    reasons,
                    until,
                }
            }
            (v, _) => v,
        }
    }

    /// This verdict with more blocking reasons (none: unchanged).
    pub fn and_blocked(self, more: impl IntoIterator<Item = String>) -> Self {
        let more: Vec<String> = more.into_iter().collect();
        if more.is_empty() {
            return self;
        }
        match self {
            ModelVerdict::Pass => ModelVerdict::blocked(more),
            ModelVerdict::Hold { mut reasons, .. } => {
                reasons.extend(more);
                ModelVerdict::blocked(reasons)
            }
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
/// With `change_wide`, a failing change-wide verdict (policy, head schema) blocks the model
/// too; the daemon judges the policy on its own baseline and passes `false`.
pub fn classify(
    report: &CheckReport,
    model: &str,
    policy: Option<&Policy>,
    now: DateTime<Utc>,
    change_wide: bool,
) -> ModelVerdict {
    let mut reasons = Vec::new();
    let mut only_time = true;
    let mut windows = Vec::new();
    let mut not_before: Option<DateTime<Utc>> = None;
    for v in report.change.iter().filter(|v| change_wide && !v.passed) {
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
            if v.rule == Rule::Soak {
                // Time fixes it: the engine says when (`not_before`).
            } else if v.rule == Rule::Window {
                if let Some(stage) = t.to.as_deref().and_then(|s| policy?.stage(s)) {
                    windows.extend(stage.gates.iter().filter_map(|g| match g {
                        Gate::Window(w) => Some(w),
                        _ => None,
                    }));
                }
            } else {
                only_time = false;
            }
            let to =
                t.to.as_deref()
                    .map(|s| format!(" -> {s}"))
                    .unwrap_or_default();
            reasons.push(format!(
                "{}@{}{to}: {}: {}{}",
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

/// environment -> model -> release.
pub type Effective = BTreeMap<String, BTreeMap<String, Release>>;

/// Models to hold so that no environment runs a version without the versions it requires,
/// in both directions (pure): where an unmet requirement appears between what ran `before`
/// this pass and what would run `after`, hold the side that is changing — the requiring model
/// when it is about to switch, else the required model that is about to leave the version a
/// version kept running requires. Reasons name both ends.
pub fn requires_holds(before: &Effective, after: &Effective) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let none = BTreeMap::new();
    for (env, releases) in after {
        let was = before.get(env).unwrap_or(&none);
        let changing = |m: &str| match (releases.get(m), was.get(m)) {
            (Some(a), Some(b)) => !a.same_content(b),
            (None, None) => false,
            _ => true,
        };
        for (m, rel) in releases {
            for v in &rel.versions {
                for (dep, ver) in &v.requires {
                    let ok = releases
                        .get(dep)
                        .is_some_and(|r| r.versions.iter().any(|x| &x.version == ver));
                    if ok {
                        continue;
                    }
                    let runs = releases
                        .get(dep)
                        .map(|r| format!("would run {}", r.label()))
                        .unwrap_or_else(|| "would not run it".into());
                    if changing(m) {
                        out.entry(m.clone()).or_default().push(format!(
                            "requires: {m}@{} needs {dep}@{ver} in {env}, which {runs} (held back)",
                            v.version
                        ));
                    } else if changing(dep) {
                        out.entry(dep.clone()).or_default().push(format!(
                            "requires: {m}@{} keeps running in {env} and needs {dep}@{ver}, which {dep} {runs} (held back)",
                            v.version
                        ));
                    }
                }
            }
        }
    }
    out
}

/// The `requires` holds of a pass, run to a fixed point (pure, given `effective`): what would
/// run under `held` is read again after each round of new holds ([`requires_holds`]), since
/// holding one model can break what another needs. Each round only adds holds, made by `hold`
/// from a model and its reasons, so it ends; models already held keep their hold.
pub fn requires_fixed_point<H, E>(
    before: &Effective,
    held: &mut BTreeMap<String, H>,
    mut effective: impl FnMut(&BTreeMap<String, H>) -> Result<std::sync::Arc<Effective>, E>,
    mut hold: impl FnMut(&str, Vec<String>) -> H,
) -> Result<(), E> {
    loop {
        let after = effective(held)?;
        let fresh: Vec<(String, Vec<String>)> = requires_holds(before, &after)
            .into_iter()
            .filter(|(m, _)| !held.contains_key(m))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for (m, reasons) in fresh {
            let h = hold(&m, reasons);
            held.insert(m, h);
        }
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

    fn verdict(rule: crate::check::Rule, passed: bool) -> Verdict {
        Verdict {
            rule,
            passed,
            reason: format!("{rule} says so"),
            file: None,
            line: None,
            hint: None,
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
            moved: crate::stage_move::StageMove {
                model: model.into(),
                version: "4".into(),
                from: Some("staging".into()),
                to: Some("production".into()),
                path: String::new(),
            },
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
                vec![verdict(Rule::Approvals, false), verdict(Rule::Metric, true)],
            ),
            t("b", vec![verdict(Rule::Metric, true)]),
            t("c", vec![verdict(Rule::Window, false)]),
        ]);
        let now = Utc::now();
        assert!(matches!(
            classify(&r, "a", None, now, true),
            ModelVerdict::Hold {
                kind: HoldKind::Blocked,
                ..
            }
        ));
        assert_eq!(classify(&r, "b", None, now, true), ModelVerdict::Pass);
        assert!(matches!(
            classify(&r, "c", None, now, true),
            ModelVerdict::Hold {
                kind: HoldKind::Waiting,
                ..
            }
        ));
        assert_eq!(classify(&r, "zzz", None, now, true), ModelVerdict::Pass);
    }

    #[test]
    fn change_wide_failures_block_everyone() {
        let mut r = report(vec![]);
        r.change.push(verdict(Rule::PolicyChange, false));
        assert!(matches!(
            classify(&r, "any", None, Utc::now(), true),
            ModelVerdict::Hold {
                kind: HoldKind::Blocked,
                ..
            }
        ));
    }

    #[test]
    fn requires_holds_hold_the_side_that_changes() {
        let mut fraud6 = crate::daemon::release::test_release("fraud", &[("6", 'f', 100)]);
        fraud6.versions[0].requires.insert("enc".into(), "8".into());
        let enc8 = crate::daemon::release::test_release("enc", &[("8", 'e', 100)]);
        let enc7 = crate::daemon::release::test_release("enc", &[("7", 'd', 100)]);
        let env = |f: &Release, e: &Release| -> Effective {
            BTreeMap::from([(
                "prod".to_owned(),
                BTreeMap::from([
                    ("fraud".to_owned(), f.clone()),
                    ("enc".to_owned(), e.clone()),
                ]),
            )])
        };
        // fraud keeps running 6 (needs enc 8); enc is about to switch to 7: hold enc.
        let h = requires_holds(&env(&fraud6, &enc8), &env(&fraud6, &enc7));
        assert_eq!(h.keys().collect::<Vec<_>>(), vec!["enc"], "{h:?}");
        assert!(h["enc"][0].contains("fraud@6 keeps running"), "{h:?}");
        // fraud is about to switch to 6 while enc runs 7 and stays: hold fraud.
        let fraud5 = crate::daemon::release::test_release("fraud", &[("5", 'g', 100)]);
        let h = requires_holds(&env(&fraud5, &enc7), &env(&fraud6, &enc7));
        assert_eq!(h.keys().collect::<Vec<_>>(), vec!["fraud"], "{h:?}");
        // Nothing changes: nothing to hold.
        assert!(requires_holds(&env(&fraud6, &enc7), &env(&fraud6, &enc7)).is_empty());
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

    #[test]
    fn requires_holds_cascade_to_a_fixed_point() {
        use crate::daemon::release::test_release;
        // a@2 needs b@2, b@2 needs c@2; c is held (its own gates failed) at c@1.
        let rel = |m: &str, v: &str, c: char, needs: Option<(&str, &str)>| {
            let mut r = test_release(m, &[(v, c, 100)]);
            if let Some((d, dv)) = needs {
                r.versions[0].requires.insert(d.into(), dv.into());
            }
            r
        };
        let env = |rs: Vec<Release>| -> Effective {
            BTreeMap::from([(
                "prod".to_owned(),
                rs.into_iter().map(|r| (r.model.clone(), r)).collect(),
            )])
        };
        let before = env(vec![
            rel("a", "1", 'a', None),
            rel("b", "1", 'b', None),
            rel("c", "1", 'c', None),
        ]);
        let head = env(vec![
            rel("a", "2", 'd', Some(("b", "2"))),
            rel("b", "2", 'e', Some(("c", "2"))),
            rel("c", "2", 'f', None),
        ]);
        let mut held: BTreeMap<String, Vec<String>> = BTreeMap::from([("c".into(), vec![])]);
        let mut rounds = 0;
        let r: Result<(), ()> = requires_fixed_point(
            &before,
            &mut held,
            |h| {
                rounds += 1;
                // A held model runs what it ran before; the others what the head says.
                let prod = head["prod"]
                    .iter()
                    .map(|(m, r)| {
                        let src = if h.contains_key(m) { &before } else { &head };
                        (m.clone(), src["prod"].get(m).unwrap_or(r).clone())
                    })
                    .collect();
                Ok(std::sync::Arc::new(BTreeMap::from([("prod".into(), prod)])))
            },
            |_, reasons| reasons,
        );
        r.unwrap();
        assert_eq!(held.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(held["b"][0].contains("needs c@2"), "{held:?}");
        assert!(held["a"][0].contains("needs b@2"), "{held:?}");
        assert_eq!(rounds, 3, "b, then a, then nothing new");
        assert!(held["c"].is_empty(), "an existing hold is kept as it was");
    }
}
