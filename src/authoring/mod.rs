//! Authoring verbs' logic (`promote`, `approve`, `rollback`): pure planning of manifest edits
//! and history look-ups, with git at the edge ([`git`]). The CLI only parses flags and prints.

pub mod approve;
pub mod edit;
pub mod git;
pub mod init;
pub mod promote;
pub mod rollback;

use thiserror::Error;

/// Why an authoring verb could not do its job (exit 2 at the CLI unless noted).
#[derive(Debug, Error)]
pub enum AuthoringError {
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}")]
    Parse(crate::diag::Diagnostic),
    /// The request does not make sense for this registry (unknown model, stage, ...).
    #[error("{0}")]
    Invalid(String),
    /// The registry's rules refuse the request (exit 1): already there, stage would be invalid.
    #[error("{0}")]
    Refused(String),
    /// A git command failed.
    #[error("`git {args}` failed: {stderr}")]
    Command { args: String, stderr: String },
}
