//! Deployment targets, pluggable by the environment's `target.kind`: a [`Target`] reports
//! what it runs ([`Observed`]), stages verified artifacts, and switches releases.

pub mod local;

use super::artifact::{ArtifactError, ArtifactSource};
use super::release::{DeploymentRecord, Release};
use crate::manifest::policy::{TargetKind, TargetSpec};
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

/// The result of a switch: what was there before and what the health check examines.
#[derive(Debug, Clone)]
pub struct Switched {
    pub previous: Option<DeploymentRecord>,
    /// Path of the primary version's artifact, for `BATON_ARTIFACT`.
    pub artifact: PathBuf,
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
}

/// Build the target of one environment; `state_dir` roots local targets.
pub fn build(env: &str, spec: &TargetSpec, state_dir: &Path) -> Box<dyn Target> {
    match spec.kind {
        TargetKind::Local => Box::new(local::LocalTarget::new(
            env,
            &state_dir.join("deploy").join(&spec.path),
        )),
    }
}
