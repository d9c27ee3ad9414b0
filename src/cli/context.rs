//! Shared state of one CLI invocation: global flags, the opened repository and the
//! registry folder, resolved once at the edge.

use super::{Format, GlobalArgs};
use anyhow::{bail, Result};
use baton::registry::{Loader, Registry};
use git2::{Commit, Repository};

pub struct Context {
    pub args: GlobalArgs,
}

impl Context {
    pub fn new(args: GlobalArgs) -> Self {
        Context { args }
    }

    /// Refuse the check-only formats for verbs that only speak text and JSON.
    pub fn text_or_json(&self) -> Result<Format> {
        match self.args.format {
            f @ (Format::Text | Format::Json) => Ok(f),
            other => bail!("--format {other:?} is only available for `check`; use text or json"),
        }
    }

    pub fn open_repo(&self) -> Result<Repository> {
        Ok(baton::repo::open(&self.args.repo)?)
    }

    /// Registry folder at `commit`: --path, or discovered.
    pub fn registry_root(&self, repo: &Repository, commit: &Commit, rev: &str) -> Result<String> {
        Ok(baton::repo::registry_root(
            repo,
            commit,
            rev,
            self.args.path.as_deref(),
        )?)
    }

    /// Open the repository and load the registry at `rev`.
    pub fn load(&self, rev: &str) -> Result<(Repository, Registry)> {
        let repo = self.open_repo()?;
        let reg = {
            let commit = baton::repo::resolve_commit(&repo, rev)?;
            let root = self.registry_root(&repo, &commit, rev)?;
            Loader::new().load(&repo, commit.id(), &root)?
        };
        Ok((repo, reg))
    }
}

/// Print a JSON value, pretty, followed by a newline.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
