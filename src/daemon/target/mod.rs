//! Deployment targets as components (docs/targets.md): a validated [`TargetConfig`] is
//! [`build`]t into a [`Target`] that observes what runs, stages, switches and commits.

pub mod command;
pub mod kserve;
pub mod local;
pub mod payload;
pub mod records;
pub mod store;
pub mod webhook;

use super::artifact::{ArtifactError, ArtifactSource};
use super::release::{DeploymentRecord, Release};
use crate::manifest::target::{TargetConfig, TargetSpec};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a target reports about one model it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The deployment record, when present and readable.
    pub record: Option<std::sync::Arc<DeploymentRecord>>,
    /// The digest the live pointer (`current`) resolves to, when it names a stored artifact.
    pub current: Option<String>,
    /// Drift found (a modified artifact, a missing record...), one sentence each.
    pub drift: Vec<String>,
}

/// What a target observes when it runs `r` untouched (tests of the plan and intent stages).
#[cfg(test)]
pub(crate) fn test_deployed(r: &Release) -> Observed {
    Observed {
        record: Some(std::sync::Arc::new(DeploymentRecord::new(
            "prod",
            r,
            chrono::Utc::now(),
        ))),
        current: Some(r.primary().sha256.clone()),
        drift: vec![],
    }
}

/// The result of a switch: what was there before and what the health check examines.
#[derive(Debug, Clone)]
pub struct Switched {
    pub previous: Option<DeploymentRecord>,
    /// The primary version's artifact for `BATON_ARTIFACT`: a local path where the target
    /// put the bytes, else the artifact's URI.
    pub artifact: String,
}

/// What one [`Target::commit`] makes take effect, for commit messages and logs.
#[derive(Debug, Clone, Default)]
pub struct PassSummary {
    pub env: String,
    /// The registry commit the releases were read from (the newest among them).
    pub registry_commit: String,
    /// `model@label` of each switch, `model (undeployed)` of each undeploy, in order.
    pub changes: Vec<String>,
}

/// Where a target's files live on the daemon's host.
#[derive(Debug, Clone)]
pub struct BuildContext<'a> {
    /// The daemon's state dir (`deploy/` for `local`, clones and records for the others).
    pub state_dir: &'a Path,
    /// True for `baton status`: observe only, never write to a remote.
    pub read_only: bool,
}

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("target refused: {0}")]
    Config(String),
    #[error("this build of baton has no `{0}` target")]
    Unsupported(&'static str),
    /// Anything else a target kind reports (a refused request, a failed push...).
    #[error("{0}")]
    Other(String),
}

impl TargetError {
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TargetError + '_ {
        move |source| TargetError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A place an environment deploys to.
pub trait Target: Send {
    /// Where it deploys, for logs and status (`local /abs/path`).
    fn describe(&self) -> String;
    /// What runs now, per model.
    fn observe(&mut self) -> Result<BTreeMap<String, Observed>, TargetError>;
    /// Make every artifact of `release` available and verified (idempotent).
    fn stage(&mut self, release: &Release, source: &dyn ArtifactSource) -> Result<(), TargetError>;
    /// Put a staged `release` in place atomically and record it.
    fn switch(&mut self, release: &Release, now: DateTime<Utc>) -> Result<Switched, TargetError>;
    /// Remove a model from the target.
    fn undeploy(&mut self, model: &str) -> Result<(), TargetError>;
    /// Make the switches and undeploys since the last call take effect together (`kserve`:
    /// one commit and push per pass). On an error none of them took effect, and the target
    /// forgets them. Targets that apply each switch at once have nothing to do.
    fn commit(&mut self, _summary: &PassSummary) -> Result<(), TargetError> {
        Ok(())
    }
}

/// Build the target of environment `env` from its validated config.
pub fn build(
    env: &str,
    config: &TargetConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Target>, TargetError> {
    match config {
        TargetConfig::Local(c) => Ok(Box::new(
            local::LocalTarget::new(env, &cx.state_dir.join("deploy").join(&c.path))
                .with_reload(c.reload.clone(), cx.state_dir),
        )),
        TargetConfig::Webhook(c) => Ok(Box::new(webhook::WebhookTarget::new(env, c, cx)?)),
        TargetConfig::Command(c) => Ok(Box::new(command::CommandTarget::new(env, c, cx)?)),
        TargetConfig::Kserve(c) => Ok(Box::new(kserve::KserveTarget::new(
            env,
            c,
            cx.state_dir,
            cx.read_only,
        )?)),
    }
}

/// Validate `spec` and build it: the one way the daemon and `status` get a target.
pub fn from_spec(
    env: &str,
    spec: &TargetSpec,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Target>, TargetError> {
    let config = spec.config().map_err(|problems| {
        TargetError::Config(
            problems
                .into_iter()
                .map(|p| p.message)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    build(env, &config, cx)
}
