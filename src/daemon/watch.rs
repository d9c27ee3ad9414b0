//! Noticing new commits: `notify` on a local repository's ref files (loose branch refs,
//! packed-refs, HEAD), and for `--url` a bare clone in the state dir refreshed by `git fetch`.

use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Sender;
use thiserror::Error;

/// What wakes the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A ref file changed (or a webhook arrived for a local repository).
    Changed,
    /// Fetch from the remote now (webhook).
    Fetch,
    /// Shut down after the step in flight.
    Stop,
}

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
    #[error("watching {path}: {message}")]
    Notify { path: PathBuf, message: String },
}

/// Watch `.git/refs/heads` (recursively) and `.git` itself (packed-refs, HEAD) of the
/// repository at `git_dir` / `common_dir`. Keep the returned watcher alive.
pub fn watch_refs(
    git_dir: &Path,
    common_dir: &Path,
    tx: Sender<Trigger>,
) -> Result<notify::RecommendedWatcher, WatchError> {
    let heads = common_dir.join("refs").join("heads");
    let heads_c = heads.clone();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let relevant = ev.paths.iter().any(|p| {
                p.starts_with(&heads_c)
                    || p.file_name()
                        .is_some_and(|n| n == "packed-refs" || n == "HEAD")
            });
            if relevant {
                let _ = tx.send(Trigger::Changed);
            }
        }
    })
    .map_err(|e| WatchError::Notify {
        path: heads.clone(),
        message: e.to_string(),
    })?;
    let mut add = |p: &Path, mode| {
        w.watch(p, mode).map_err(|e| WatchError::Notify {
            path: p.to_path_buf(),
            message: e.to_string(),
        })
    };
    add(&heads, RecursiveMode::Recursive)?;
    add(common_dir, RecursiveMode::NonRecursive)?;
    if git_dir != common_dir {
        add(git_dir, RecursiveMode::NonRecursive)?;
    }
    Ok(w)
}

fn git(args: &[&str]) -> Result<(), WatchError> {
    let out = Command::new("git")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| WatchError::Git {
            args: args.join(" "),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(WatchError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Make sure `dir` is a bare clone of `url` holding `branch`.
pub fn ensure_clone(url: &str, dir: &Path, branch: &str) -> Result<(), WatchError> {
    if dir.join("HEAD").exists() {
        return fetch(dir, branch);
    }
    let d = dir.to_string_lossy();
    git(&[
        "clone",
        "--quiet",
        "--bare",
        "--single-branch",
        "--branch",
        branch,
        "--",
        url,
        &d,
    ])
}

/// `git fetch` the branch into the bare clone (force: the remote is the truth).
pub fn fetch(dir: &Path, branch: &str) -> Result<(), WatchError> {
    let d = dir.to_string_lossy();
    let spec = format!("+refs/heads/{branch}:refs/heads/{branch}");
    git(&["-C", &d, "fetch", "--quiet", "--prune", "origin", &spec])
}
