//! The pure heart of reconciliation: compare what an environment should run (intent) with
//! what its target reports (observed) and list the steps, in dependency order.

use super::release::Release;
use super::target::Observed;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Why a switch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchKind {
    /// A different release than the one in place (runs the health check).
    Deploy,
    /// The release is the one in place but the target drifted (current, artifact, record).
    Repair,
}

/// One change to apply to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Switch {
        model: String,
        release: Release,
        kind: SwitchKind,
        /// What drifted (for repairs).
        drift: Vec<String>,
    },
    /// The model left the environment's stage.
    Undeploy { model: String },
}

impl Step {
    pub fn model(&self) -> &str {
        match self {
            Step::Switch { model, .. } | Step::Undeploy { model } => model,
        }
    }
}

/// True when the target runs exactly `intent` with nothing drifted.
pub fn in_place(intent: &Release, obs: &Observed) -> bool {
    obs.drift.is_empty()
        && obs.current.as_deref() == Some(intent.primary().sha256.as_str())
        && obs
            .record
            .as_ref()
            .is_some_and(|r| r.release.same_content(intent))
}

/// The steps that make `observed` match `intent`: switches in dependency order (a
/// version's `requires` first), then undeploys of models no longer wanted.
pub fn plan(
    intent: &BTreeMap<String, Release>,
    observed: &BTreeMap<String, Observed>,
) -> Vec<Step> {
    let empty = Observed::default();
    let mut switches: BTreeMap<&str, Step> = BTreeMap::new();
    for (model, rel) in intent {
        let obs = observed.get(model).unwrap_or(&empty);
        if in_place(rel, obs) {
            continue;
        }
        // The same release, or a lost record while `current` is right: a repair.
        let same = match &obs.record {
            Some(r) => r.release.same_content(rel),
            None => obs.current.as_deref() == Some(rel.primary().sha256.as_str()),
        };
        let kind = if same {
            SwitchKind::Repair
        } else {
            SwitchKind::Deploy
        };
        let mut drift = obs.drift.clone();
        if same && obs.record.is_none() {
            drift.push("deployment.json is missing".to_owned());
        }
        if same && obs.current.as_deref() != Some(rel.primary().sha256.as_str()) {
            drift.push(match &obs.current {
                None => "`current` is missing or dangling".to_owned(),
                Some(d) => format!("`current` points at {} instead", &d[..d.len().min(12)]),
            });
        }
        switches.insert(
            model,
            Step::Switch {
                model: model.clone(),
                release: rel.clone(),
                kind,
                drift,
            },
        );
    }
    let mut out = dependency_order(intent, switches);
    for (model, obs) in observed {
        if !intent.contains_key(model) && (obs.record.is_some() || obs.current.is_some()) {
            out.push(Step::Undeploy {
                model: model.clone(),
            });
        }
    }
    out
}

/// Cut `steps` (in dependency order) into waves: a step starts a new wave when it requires a
/// model switched in the current one, so a wave's switches can take effect together (one
/// commit for `kserve`) and a version's `requires` are in place and healthy before it.
pub fn waves(steps: Vec<Step>) -> Vec<Vec<Step>> {
    let mut out: Vec<Vec<Step>> = Vec::new();
    let mut cur: Vec<Step> = Vec::new();
    let mut in_cur: BTreeSet<String> = BTreeSet::new();
    for s in steps {
        let needs_cur = match &s {
            Step::Switch { release, .. } => release
                .versions
                .iter()
                .flat_map(|v| v.requires.keys())
                .any(|d| in_cur.contains(d)),
            Step::Undeploy { .. } => false,
        };
        if needs_cur {
            out.push(std::mem::take(&mut cur));
            in_cur.clear();
        }
        in_cur.insert(s.model().to_owned());
        cur.push(s);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Kahn's algorithm over `requires` among the models being switched; ties by name, cycles
/// (rejected by validation anyway) fall back to name order.
fn dependency_order(
    intent: &BTreeMap<String, Release>,
    mut switches: BTreeMap<&str, Step>,
) -> Vec<Step> {
    let deps = |m: &str| -> BTreeSet<String> {
        intent
            .get(m)
            .map(|r| {
                r.versions
                    .iter()
                    .flat_map(|v| v.requires.keys().cloned())
                    .filter(|d| d != m)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::with_capacity(switches.len());
    while !switches.is_empty() {
        let ready: Vec<&str> = switches
            .keys()
            .copied()
            .filter(|m| deps(m).iter().all(|d| !switches.contains_key(d.as_str())))
            .collect();
        let take = if ready.is_empty() {
            vec![*switches.keys().next().unwrap()]
        } else {
            ready
        };
        for m in take {
            out.push(switches.remove(m).unwrap());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use crate::daemon::target::test_deployed as deployed;

    #[test]
    fn nothing_to_do_when_in_place() {
        let r = test_release("a", &[("1", 'a', 100)]);
        let intent = BTreeMap::from([("a".to_owned(), r.clone())]);
        let obs = BTreeMap::from([("a".to_owned(), deployed(&r))]);
        assert!(plan(&intent, &obs).is_empty());
    }

    #[test]
    fn new_version_is_a_deploy_and_drift_a_repair() {
        let old = test_release("a", &[("1", 'a', 100)]);
        let new = test_release("a", &[("2", 'b', 100)]);
        let intent = BTreeMap::from([("a".to_owned(), new.clone())]);
        let obs = BTreeMap::from([("a".to_owned(), deployed(&old))]);
        let steps = plan(&intent, &obs);
        assert!(matches!(
            &steps[0],
            Step::Switch {
                kind: SwitchKind::Deploy,
                ..
            }
        ));

        let mut drifted = deployed(&new);
        drifted.current = None;
        let obs = BTreeMap::from([("a".to_owned(), drifted)]);
        let steps = plan(&intent, &obs);
        match &steps[0] {
            Step::Switch { kind, drift, .. } => {
                assert_eq!(*kind, SwitchKind::Repair);
                assert_eq!(drift.len(), 1);
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn requires_switch_first_and_leavers_are_undeployed() {
        let mut fraud = test_release("fraud", &[("4", 'f', 100)]);
        fraud.versions[0]
            .requires
            .insert("encoder".into(), "8".into());
        let enc = test_release("encoder", &[("8", 'e', 100)]);
        let old = test_release("zzz", &[("1", 'z', 100)]);
        let intent = BTreeMap::from([("fraud".to_owned(), fraud), ("encoder".to_owned(), enc)]);
        let obs = BTreeMap::from([("zzz".to_owned(), deployed(&old))]);
        let order: Vec<_> = plan(&intent, &obs)
            .iter()
            .map(|s| s.model().to_owned())
            .collect();
        assert_eq!(order, ["encoder", "fraud", "zzz"]);
    }

    #[test]
    fn a_wave_never_holds_a_model_and_what_it_requires() {
        let mut fraud = test_release("fraud", &[("4", 'f', 100)]);
        fraud.versions[0]
            .requires
            .insert("encoder".into(), "8".into());
        let enc = test_release("encoder", &[("8", 'e', 100)]);
        let other = test_release("other", &[("1", 'o', 100)]);
        let intent = BTreeMap::from([
            ("fraud".to_owned(), fraud),
            ("encoder".to_owned(), enc),
            ("other".to_owned(), other),
        ]);
        let waves: Vec<Vec<String>> = waves(plan(&intent, &BTreeMap::new()))
            .iter()
            .map(|w| w.iter().map(|s| s.model().to_owned()).collect())
            .collect();
        assert_eq!(waves, [vec!["encoder", "other"], vec!["fraud"]]);
    }

    #[test]
    fn traffic_change_is_a_deploy() {
        let a = test_release("a", &[("1", 'a', 90), ("2", 'b', 10)]);
        let b = test_release("a", &[("1", 'a', 50), ("2", 'b', 50)]);
        let intent = BTreeMap::from([("a".to_owned(), b)]);
        let obs = BTreeMap::from([("a".to_owned(), deployed(&a))]);
        assert_eq!(plan(&intent, &obs).len(), 1);
    }
}
