//! Find what to revert for `baton rollback`: the first-parent commit that put an environment's
//! current version(s) of a model in place (the newest entry of a current holder into the stage).

use super::AuthoringError;
use crate::history::{HistoryWalker, StageEvent};
use crate::registry::desired::desired_state;
use crate::registry::Registry;
use git2::{Oid, Repository};

/// The commit to revert and what it did.
#[derive(Debug, Clone)]
pub struct Target {
    pub commit: Oid,
    /// True for a merge commit (revert with `-m 1`: the mainline is the first parent).
    pub merge: bool,
    /// The event that put the version in place.
    pub event: StageEvent,
}

/// The commit that put `model`'s current version(s) in `env` in place at `reg`'s commit.
pub fn find(
    repo: &Repository,
    reg: &Registry,
    model: &str,
    env: &str,
) -> Result<Target, AuthoringError> {
    let invalid = |m: String| AuthoringError::Invalid(m);
    let policy = reg
        .policy
        .as_ref()
        .ok_or_else(|| invalid("baton.yaml does not parse at HEAD".into()))?;
    let spec = policy.environments.get(env).ok_or_else(|| {
        invalid(format!(
            "unknown environment `{env}` (environments: {})",
            policy
                .environments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if reg.model(model).is_none() {
        return Err(invalid(format!("unknown model `{model}`")));
    }
    let desired = desired_state(reg);
    let running = desired
        .get(env)
        .and_then(|e| e.models.get(model))
        .cloned()
        .unwrap_or_default();
    // A version kept from a later stage (docs/registry-format.md) was put in place by the
    // promotion out of this stage; rolling that back is the later stage's rollback.
    if let Some(kept) = running
        .iter()
        .find_map(|v| Some((&v.version, v.kept_from.as_ref()?)))
    {
        return Err(AuthoringError::Refused(format!(
            "{model} has no version in `{}`: environment `{env}` keeps running {} from stage `{}`, so there is nothing of its own to roll back",
            spec.stage, kept.0, kept.1
        )));
    }
    let current: Vec<String> = running.iter().map(|v| v.version.clone()).collect();
    if current.is_empty() {
        return Err(AuthoringError::Refused(format!(
            "{model} has no version in `{}` (environment `{env}`): nothing to roll back",
            spec.stage
        )));
    }
    let events = HistoryWalker::new().model_history(repo, reg.commit, &reg.root, model, None)?;
    let event = events
        .into_iter()
        .find(|e| e.to.as_deref() == Some(spec.stage.as_str()) && current.contains(&e.version))
        .ok_or_else(|| {
            AuthoringError::Refused(format!(
                "no commit on the first-parent history put {model} {} in `{}`",
                current.join(", "),
                spec.stage
            ))
        })?;
    let commit = repo.find_commit(event.commit)?;
    if commit.parent_count() == 0 {
        return Err(AuthoringError::Refused(format!(
            "{model} {} has been in `{}` since the first commit; there is nothing to revert to",
            event.version, spec.stage
        )));
    }
    Ok(Target {
        commit: event.commit,
        merge: commit.parent_count() > 1,
        event,
    })
}
