//! Noticing new commits: `notify` on the branch's ref file of a local repository (its loose ref
//! or packed-refs; writes only), and for `--url` a bare clone refreshed by `git fetch`.

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use thiserror::Error;

/// What wakes the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The branch's ref file was written (or a webhook arrived for a local repository): run a
    /// pass if the branch head moved.
    Changed,
    /// Fetch from the remote now (webhook).
    Fetch,
    /// Run a pass now, whether the head moved or not (an Alertmanager alert came in).
    Pass,
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

/// The files whose writes can move `branch`: its loose ref and `packed-refs`.
#[derive(Debug, Clone)]
pub struct RefFiles {
    pub loose: PathBuf,
    pub packed: PathBuf,
}

impl RefFiles {
    pub fn new(common_dir: &Path, branch: &str) -> Self {
        RefFiles {
            loose: common_dir.join("refs").join("heads").join(branch),
            packed: common_dir.join("packed-refs"),
        }
    }

    /// True when `ev` writes one of the files: a create, a data or name change (git writes
    /// `<ref>.lock` and renames it over the ref), or a remove. Reads, opens, closes and
    /// metadata changes never count: the controller's own reads of the ref would wake it.
    pub fn written_by(&self, ev: &notify::Event) -> bool {
        let writes = matches!(
            ev.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
        );
        writes
            && ev
                .paths
                .iter()
                .any(|p| p == &self.loose || p == &self.packed)
    }
}

/// Watch the ref files of `branch` in the repository whose common dir is `common_dir`
/// (`refs/heads` recursively, for branch names with folders, and the common dir itself for
/// `packed-refs`). Keep the returned watcher alive.
pub fn watch_refs(
    common_dir: &Path,
    branch: &str,
    tx: Sender<Trigger>,
) -> Result<notify::RecommendedWatcher, WatchError> {
    let heads = common_dir.join("refs").join("heads");
    let files = RefFiles::new(common_dir, branch);
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if files.written_by(&ev) {
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
    Ok(w)
}

/// `git <args>` outside any repository (the clone is named by `-C` or the arguments).
fn git(args: &[&str]) -> Result<(), WatchError> {
    crate::gitcli::GitCli::anywhere()
        .run(args)
        .map(|_| ())
        .map_err(|e| {
            let (args, message) = e.into_parts(args);
            WatchError::Git { args, message }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode,
    };

    fn ev(kind: EventKind, paths: &[&Path]) -> notify::Event {
        let mut e = notify::Event::new(kind);
        for p in paths {
            e = e.add_path(p.to_path_buf());
        }
        e
    }

    #[test]
    fn only_writes_of_the_branch_ref_or_packed_refs_count() {
        let git = Path::new("/repo/.git");
        let f = RefFiles::new(git, "main");
        let main = git.join("refs/heads/main");
        let lock = git.join("refs/heads/main.lock");
        let other = git.join("refs/heads/feature");
        let packed = git.join("packed-refs");
        // Reads of the ref (the controller's own `find_reference`) never count.
        for k in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Any,
            EventKind::Other,
        ] {
            assert!(!f.written_by(&ev(k, &[&main])), "{k:?}");
        }
        // Git's lock-and-rename, a direct write, a delete (pack-refs), packed-refs updates.
        for (k, paths) in [
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                vec![&*lock, &*main],
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                vec![&*main],
            ),
            (
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                vec![&*main],
            ),
            (EventKind::Create(CreateKind::File), vec![&*main]),
            (EventKind::Remove(RemoveKind::File), vec![&*main]),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                vec![&*packed],
            ),
        ] {
            assert!(f.written_by(&ev(k, &paths)), "{k:?} {paths:?}");
        }
        // Other branches, lock files alone, HEAD: not this branch.
        for p in [&other, &lock, &git.join("HEAD"), &git.join("index")] {
            let k = EventKind::Modify(ModifyKind::Data(DataChange::Any));
            assert!(!f.written_by(&ev(k, &[p])), "{p:?}");
        }
        // Branch names with folders.
        let f = RefFiles::new(git, "release/v2");
        let k = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(f.written_by(&ev(k, &[&git.join("refs/heads/release/v2")])));
    }
}
