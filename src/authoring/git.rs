//! The git CLI at the edge of the authoring verbs: branch, add, commit (signed with the
//! user's own configuration) and revert, run in the repository's working tree.

use super::AuthoringError;
use std::path::Path;
use std::process::Command;

/// Run `git <args>` in `dir`; returns trimmed stdout.
pub fn run(dir: &Path, args: &[&str]) -> Result<String, AuthoringError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| AuthoringError::Command {
            args: args.join(" "),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(AuthoringError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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
