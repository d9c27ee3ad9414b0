//! The gates engine (SPEC §2–§3): judge the change base...head, one verdict per gate per
//! transition. Shared by `baton check` (pre-merge) and the controller (what landed).

pub mod report;

pub use report::{CheckReport, TransitionReport, Verdict};

use crate::repo::RepoError;
use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use thiserror::Error;

/// Errors that stop a check from producing a verdict (exit 2 at the CLI).
#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("github: {0}")]
    Github(String),
}

/// Where forge (GitHub) reviews come from, when used.
#[derive(Debug, Clone)]
pub struct GithubSource {
    /// `owner/repo`.
    pub repo: String,
    pub pr: u64,
    pub token: Option<String>,
    /// API base, default `https://api.github.com`.
    pub api_url: String,
}

/// Inputs of a check besides the two revisions.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Registry folder (`--path`); discovered at base when `None`.
    pub path: Option<String>,
    /// The clock for `window` and `soak`.
    pub now: DateTime<Utc>,
    pub github: Option<GithubSource>,
}

/// Judge the change `merge-base(base, head)...head`.
pub fn judge(
    repo: &Repository,
    base: Oid,
    head: Oid,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let _ = (repo, base, head, opts);
    Err(CheckError::Github(
        "the gates engine is being built (issue 3)".into(),
    ))
}
