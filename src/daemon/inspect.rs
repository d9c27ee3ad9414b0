//! Reading a state dir from outside the daemon (`baton status --state-dir`): desired state at
//! a revision, what each target runs on disk, and the daemon's own reasons from status.json;
//! or the state dir alone, when there is no repository or its head does not parse.

use super::plan::in_place;
use super::release::{releases_of, Release};
use super::state::{read_json, PersistedState, StateError};
use super::target::{self, Observed};
use super::view::{self, EnvironmentView, HeldView, ModelView, StatusView, SyncStatus};
use crate::registry::desired::desired_state;
use crate::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn ensure_dir(state_dir: &Path) -> Result<(), StateError> {
    if state_dir.is_dir() {
        return Ok(());
    }
    Err(StateError::Io {
        path: state_dir.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such state dir"),
    })
}

/// What the state dir alone says: the daemon's last published status (`status.json`), or,
/// before it wrote one, the head and holds of `state.json`. Neither is an error: not a
/// baton state dir.
pub fn from_state_dir(state_dir: &Path) -> Result<StatusView, StateError> {
    ensure_dir(state_dir)?;
    if let Some(s) = read_json::<StatusView>(&state_dir.join("status.json"))? {
        return Ok(s);
    }
    let path = state_dir.join("state.json");
    let Some(st) = read_json::<PersistedState>(&path)? else {
        return Err(StateError::Corrupt {
            path: state_dir.to_path_buf(),
            message: "no status.json or state.json here (has `baton serve` run on it?)".into(),
        });
    };
    Ok(StatusView {
        branch: st.branch,
        registry: st.registry,
        head: st.head,
        held: st
            .held
            .into_iter()
            .map(|(model, h)| HeldView {
                model,
                kind: h.kind,
                baseline: h.baseline,
                reasons: h.reasons,
                until: h.until,
                offending: h.offending,
                author: h.author,
                since: Some(h.since),
            })
            .collect(),
        ..Default::default()
    })
}

/// What `baton status --state-dir DIR` shows, for the registry `reg`.
pub fn inspect(reg: &Registry, state_dir: &Path) -> Result<StatusView, StateError> {
    ensure_dir(state_dir)?;
    let daemon: Option<StatusView> = read_json(&state_dir.join("status.json"))?;
    let commit = reg.commit.to_string();
    let mut envs = Vec::new();
    let Some(policy) = &reg.policy else {
        return Ok(daemon.unwrap_or_default());
    };
    let desired = desired_state(reg);
    for (name, spec) in &policy.environments {
        let wanted: BTreeMap<String, Release> = desired
            .get(name)
            .map(|d| releases_of(d, &commit, &reg.root))
            .unwrap_or_default();
        let cx = target::BuildContext {
            state_dir,
            read_only: true,
        };
        let (describe, observed) = match target::from_spec(name, &spec.target, &cx) {
            Ok(mut t) => (t.describe(), t.observe().unwrap_or_default()),
            Err(e) => (
                format!("{} ({e})", spec.target.kind.as_str()),
                BTreeMap::new(),
            ),
        };
        let prior = daemon
            .as_ref()
            .and_then(|d| d.environments.iter().find(|e| &e.name == name));
        envs.push(merge(
            name,
            &spec.stage,
            &describe,
            &wanted,
            &observed,
            prior,
        ));
    }
    let mut out = daemon.unwrap_or_default();
    out.environments = envs;
    Ok(out)
}

/// Desired vs observed for one environment; the daemon's view explains what is not synced.
pub fn merge(
    name: &str,
    stage: &str,
    target: &str,
    wanted: &BTreeMap<String, Release>,
    observed: &BTreeMap<String, Observed>,
    daemon: Option<&EnvironmentView>,
) -> EnvironmentView {
    let names: BTreeSet<&String> = wanted.keys().chain(observed.keys()).collect();
    let models = names
        .into_iter()
        .map(|m| {
            let d = wanted.get(m);
            let o = observed.get(m);
            let synced = match (d, o) {
                (Some(d), Some(o)) => in_place(d, o),
                (None, o) => o.is_none_or(|o| o.record.is_none() && o.current.is_none()),
                (Some(_), None) => false,
            };
            let prior = daemon.and_then(|e| e.models.iter().find(|x| &x.model == m));
            let rec = o.and_then(|o| o.record.as_ref());
            let (sync, reasons, waiting_until) = if synced {
                (SyncStatus::Synced, vec![], None)
            } else {
                match prior.filter(|p| p.sync != SyncStatus::Synced) {
                    Some(p) => (p.sync, p.reasons.clone(), p.waiting_until),
                    None => (
                        SyncStatus::OutOfSync,
                        o.map(|o| o.drift.clone()).unwrap_or_default(),
                        None,
                    ),
                }
            };
            ModelView {
                model: m.clone(),
                desired: view::versions(d),
                deployed: view::versions(rec.map(|r| &r.release)),
                sync,
                health: prior.map(|p| p.health).unwrap_or(if rec.is_some() {
                    view::Health::Healthy
                } else {
                    view::Health::Unknown
                }),
                reasons,
                waiting_until,
                deployed_commit: rec.map(|r| r.commit.clone()),
                deployed_at: rec.map(|r| r.time),
                verification: prior.and_then(|p| p.verification.clone()),
            }
        })
        .collect();
    EnvironmentView {
        name: name.to_owned(),
        stage: stage.to_owned(),
        target: target.to_owned(),
        models,
    }
}
