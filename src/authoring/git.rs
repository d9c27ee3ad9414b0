//! The git CLI at the edge of the authoring verbs: branch, add, commit (signed with the
//! user's own configuration) and revert, run in the repository's working tree.

use super::AuthoringError;
use std::path::Path;

/// Run `git <args>` in `dir` with the user's own configuration (identity, signing);
/// returns trimmed stdout.
pub fn run(dir: &Path, args: &[&str]) -> Result<String, AuthoringError> {
    crate::gitcli::GitCli::in_dir(dir)
        .run(args)
        .map(|out| out.trim().to_owned())
        .map_err(|e| {
            let (args, stderr) = e.into_parts(args);
            AuthoringError::Command { args, stderr }
        })
}

/// True when `refs/heads/<name>` exists.
pub fn branch_exists(dir: &Path, name: &str) -> bool {
    run(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{name}"),
        ],
    )
    .is_ok()
}
