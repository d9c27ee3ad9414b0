//! The `kserve` target's I/O half: a working clone of the GitOps repository under
//! `<state-dir>/targets/<env>/gitops/`, driven by the git CLI (fetch, add, commit, push).
//!
//! Every command is `git -C <clone> ...` run without a shell, never prompting
//! (`GIT_TERMINAL_PROMPT=0`, no stdin), with hooks and commit signing off. Reading
//! the fetched branch goes through libgit2 on the same clone: one `git fetch` per pass,
//! however many models the folder holds.

use crate::gitcli::{GitCli, GitCliError};
use git2::{ObjectType, Oid, Repository};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Who commits when the daemon's environment names nobody (`GIT_AUTHOR_NAME`...).
pub const DEFAULT_NAME: &str = "baton";
pub const DEFAULT_EMAIL: &str = "baton@localhost";

#[derive(Debug, Error)]
pub enum GitError {
    #[error(transparent)]
    Cli(#[from] GitCliError),
    #[error("git {args} failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("reading the clone: {0}")]
    Read(#[from] git2::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GitError + '_ {
    move |source| GitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the GitOps repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A URL git reaches (`https://`, `ssh://`, `file://`, scp-like `git@host:path`).
    Url(String),
    /// A repository on this host (absolute path).
    Local(PathBuf),
    /// A path relative to the state dir: created (bare) on first use when missing.
    UnderState(PathBuf),
}

impl Remote {
    /// Resolve `repo` as written in the target block. A relative local path is relative to
    /// the state dir and must stay inside it (docs/targets.md).
    pub fn parse(repo: &str, state_dir: &Path) -> Result<Remote, String> {
        if repo.contains("://") || is_scp_like(repo) {
            return Ok(Remote::Url(repo.to_owned()));
        }
        if Path::new(repo).is_absolute() {
            return Ok(Remote::Local(PathBuf::from(repo)));
        }
        let rel = crate::registry::invariants::safe_relative(repo).map_err(|why| {
            format!("repo `{repo}`: {why} (a relative repo is a folder of the state dir)")
        })?;
        let first = rel.split('/').next().unwrap_or_default();
        if ["targets", "deploy"].contains(&first) {
            return Err(format!(
                "repo `{repo}`: `{first}/` of the state dir is baton's own (deployed files and clones)"
            ));
        }
        Ok(Remote::UnderState(state_dir.join(rel)))
    }

    /// What `git remote` is given.
    pub fn location(&self) -> &OsStr {
        match self {
            Remote::Url(u) => OsStr::new(u),
            Remote::Local(p) | Remote::UnderState(p) => p.as_os_str(),
        }
    }
}

/// `user@host:path` or `host:path` (git's scp-like syntax): a colon before any slash.
fn is_scp_like(s: &str) -> bool {
    match s.find(':') {
        Some(i) => i > 0 && !s[..i].contains('/'),
        None => false,
    }
}

/// The git CLI on a clone only baton writes (see [`GitCli::isolated`]), committing as
/// [`DEFAULT_NAME`] unless the daemon's environment names somebody.
fn clone_git(dir: &Path) -> GitCli {
    GitCli::in_dir(dir)
        .isolated()
        .default_identity(DEFAULT_NAME, DEFAULT_EMAIL)
}

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    Done,
    /// The remote moved on (`[rejected] (fetch first)` / `(non-fast-forward)`): fetch,
    /// replay and try again.
    Behind,
}

/// Read `git push --porcelain` output: `!\t<src>:<dst>\t[rejected] (fetch first)`.
pub fn push_result(stdout: &str) -> Option<Pushed> {
    for line in stdout.lines() {
        let mut f = line.split('\t');
        let (Some(flag), Some(_refs), summary) = (f.next(), f.next(), f.next().unwrap_or(""))
        else {
            continue;
        };
        match flag {
            "!" if summary.starts_with("[rejected]") => return Some(Pushed::Behind),
            "!" => return None,
            "*" | " " | "+" | "=" | "-" => return Some(Pushed::Done),
            _ => {}
        }
    }
    None
}

/// One file in the owned folder at the fetched tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file: its blob id.
    File(Oid),
    /// A symbolic link, a folder or a submodule where a file should be.
    NotAFile,
}

/// The owned folder as the branch has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folder {
    /// The tip commit (`None`: the branch does not exist yet).
    pub tip: Option<Oid>,
    /// The folder's tree (`None`: no such folder).
    pub tree: Option<Oid>,
    /// `<name>` -> entry, for every top-level entry of the folder.
    pub entries: BTreeMap<String, Entry>,
}

/// The working clone of one environment.
pub struct Checkout {
    pub dir: PathBuf,
    git: GitCli,
    repo: Option<Repository>,
    branch: String,
    /// The owned folder, relative, normalised.
    path: String,
    remote: Remote,
    /// The remote itself, when it is a repository on this host (read-only).
    local_remote: Option<Repository>,
    /// The commit worktree and index were last set to, with nothing written since.
    synced: Option<Option<Oid>>,
}

impl Checkout {
    pub fn new(dir: &Path, remote: Remote, branch: &str, path: &str) -> Self {
        Checkout {
            dir: dir.to_path_buf(),
            git: clone_git(dir),
            repo: None,
            branch: branch.to_owned(),
            path: path.to_owned(),
            remote,
            local_remote: None,
            synced: None,
        }
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// True when the clone has been made.
    pub fn exists(&self) -> bool {
        real_dir(&self.dir.join(".git"))
    }

    /// Make the clone (and a missing repository under the state dir) if needed, and point
    /// `origin` at the configured repository.
    pub fn ensure(&mut self) -> Result<(), GitError> {
        if self.repo.is_some() {
            return Ok(());
        }
        match &self.remote {
            Remote::Local(p) if !p.exists() => {
                return Err(GitError::Refused(format!(
                    "GitOps repository {} does not exist (only a relative `repo`, under the state dir, is created)",
                    p.display()
                )))
            }
            Remote::UnderState(p) if !p.exists() => {
                fs_dirs(p.parent().unwrap_or(p))?;
                let parent = p.parent().unwrap_or(p);
                clone_git(parent).run(&[
                    OsStr::new("init"),
                    OsStr::new("-q"),
                    OsStr::new("--bare"),
                    OsStr::new("-b"),
                    OsStr::new(&self.branch),
                    p.as_os_str(),
                ])?;
                tracing::info!(repo = %p.display(), "created the GitOps repository under the state dir");
            }
            _ => {}
        }
        if !self.exists() {
            fs_dirs(&self.dir)?;
            // No template: no hooks copied into the clone.
            self.git
                .run(&["init", "-q", "--template=", "-b", &self.branch])?;
            self.git.run(&[
                OsStr::new("remote"),
                OsStr::new("add"),
                OsStr::new("origin"),
                self.remote.location(),
            ])?;
        } else {
            self.git.run(&[
                OsStr::new("remote"),
                OsStr::new("set-url"),
                OsStr::new("origin"),
                self.remote.location(),
            ])?;
        }
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        self.git
            .run(&["config", "--replace-all", "remote.origin.fetch", &refspec])?;
        self.repo = Some(Repository::open(&self.dir)?);
        self.synced = None;
        Ok(())
    }

    /// Open the clone for reading only (never creating anything); `None` when not made yet.
    pub fn open_read_only(&mut self) -> Result<bool, GitError> {
        if self.repo.is_none() && self.exists() {
            self.repo = Some(Repository::open(&self.dir)?);
        }
        Ok(self.repo.is_some())
    }

    /// Fetch the branch. A branch the remote does not have (yet) is not an error: the
    /// tracking ref is dropped and the first push creates the branch.
    pub fn fetch(&mut self) -> Result<(), GitError> {
        if self.local_up_to_date() {
            return Ok(());
        }
        let out = self.git.output(
            &[
                "fetch",
                "-q",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-auto-maintenance",
                "--no-show-forced-updates",
                "origin",
            ],
            None,
        )?;
        if out.success {
            if let Some(r) = &self.repo {
                r.odb()?.refresh()?;
            }
            return Ok(());
        }
        if out.stderr.contains("couldn't find remote ref") {
            self.git
                .output(&["update-ref", "-d", &self.tracking_ref()], None)?;
            return Ok(());
        }
        Err(GitError::Failed {
            args: "fetch origin".into(),
            status: "non-zero exit".into(),
            stderr: out.stderr,
        })
    }

    /// True when the remote is a repository on this host whose branch is where the tracking
    /// ref already is (read with libgit2: an idle pass over a local remote spawns nothing).
    fn local_up_to_date(&mut self) -> bool {
        let path = match &self.remote {
            Remote::Local(p) | Remote::UnderState(p) => p.clone(),
            Remote::Url(_) => return false,
        };
        if self.local_remote.is_none() {
            self.local_remote = Repository::open_bare(&path)
                .or_else(|_| Repository::open(&path))
                .ok();
        }
        let Some(remote) = &self.local_remote else {
            return false;
        };
        let theirs = match remote.find_reference(&format!("refs/heads/{}", self.branch)) {
            Ok(r) => r.target(),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(_) => return false,
        };
        matches!(self.tip(), Ok(ours) if ours == theirs)
    }

    fn repo(&self) -> Result<&Repository, GitError> {
        self.repo
            .as_ref()
            .ok_or_else(|| GitError::Refused("the GitOps clone is not open".into()))
    }

    /// The fetched tip of the branch, if the branch exists.
    pub fn tip(&self) -> Result<Option<Oid>, GitError> {
        let repo = self.repo()?;
        let tip = match repo.find_reference(&self.tracking_ref()) {
            Ok(r) => Some(r.peel_to_commit()?.id()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        Ok(tip)
    }

    /// The owned folder at the fetched tip.
    pub fn folder(&self) -> Result<Folder, GitError> {
        let repo = self.repo()?;
        let Some(tip) = self.tip()? else {
            return Ok(Folder::default());
        };
        let root = repo.find_commit(tip)?.tree()?;
        let mut out = Folder {
            tip: Some(tip),
            ..Default::default()
        };
        let entry = match root.get_path(Path::new(&self.path)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        if entry.kind() != Some(ObjectType::Tree) {
            // A file or link where the folder should be: nothing baton rendered is there;
            // the next commit replaces it with the folder.
            return Ok(out);
        }
        let tree = repo.find_tree(entry.id())?;
        out.tree = Some(tree.id());
        for e in tree.iter() {
            let Ok(name) = std::str::from_utf8(e.name_bytes()) else {
                continue;
            };
            let kind = match e.filemode() {
                0o100644 | 0o100755 => Entry::File(e.id()),
                _ => Entry::NotAFile,
            };
            out.entries.insert(name.to_owned(), kind);
        }
        Ok(out)
    }

    /// The content of blob `id`.
    pub fn blob(&self, id: Oid) -> Result<Vec<u8>, GitError> {
        Ok(self.repo()?.find_blob(id)?.content().to_vec())
    }

    /// Set worktree and index to `tip` (an empty tree when the branch does not exist),
    /// removing anything else; skipped when they already are and nothing was written since.
    pub fn reset(&mut self, tip: Option<Oid>) -> Result<(), GitError> {
        if self.synced == Some(tip) {
            return Ok(());
        }
        let head = format!("refs/heads/{}", self.branch);
        self.git.run(&["symbolic-ref", "HEAD", &head])?;
        match tip {
            Some(t) => {
                self.git.run(&["reset", "-q", "--hard", &t.to_string()])?;
            }
            None => {
                let _ = self.git.output(&["update-ref", "-d", &head], None)?;
                self.git.run(&["read-tree", "--empty"])?;
            }
        }
        self.git.run(&["clean", "-q", "-ffdx"])?;
        self.synced = Some(tip);
        Ok(())
    }

    /// The worktree's copy of the owned folder, made a real folder: a symbolic link or a file
    /// in its place is removed (baton owns the folder); a link or file among its parents is
    /// refused (those belong to others, and writing through a link could leave the clone).
    pub fn owned_dir(&mut self) -> Result<PathBuf, GitError> {
        self.synced = None;
        let mut dir = self.dir.clone();
        let parts: Vec<&str> = self.path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            dir.push(part);
            let last = i + 1 == parts.len();
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => continue,
                Ok(_) if last => std::fs::remove_file(&dir).map_err(io(&dir))?,
                Ok(_) => {
                    return Err(GitError::Refused(format!(
                        "`{}` in the GitOps repository is not a folder (a link or a file); baton writes only under `{}`",
                        parts[..=i].join("/"),
                        self.path
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&dir)(e)),
            }
            std::fs::create_dir(&dir).map_err(io(&dir))?;
        }
        Ok(dir)
    }

    /// Write `bytes` as `<owned>/<name>` (a link in its place is replaced, never followed).
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), GitError> {
        let p = self.owned_dir()?.join(name);
        remove_entry(&p)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(io(&p))?;
        f.write_all(bytes).map_err(io(&p))
    }

    /// Remove `<owned>/<name>` (nothing when it is not there).
    pub fn remove(&mut self, name: &str) -> Result<(), GitError> {
        let p = self.owned_dir()?.join(name);
        remove_entry(&p)
    }

    /// Stage the owned folder and commit it with `message`; false when nothing changed.
    pub fn commit(&mut self, message: &str) -> Result<bool, GitError> {
        self.synced = None;
        // Every blob straight into one pack ("bulk checkin") rather than a loose object file
        // each: a pass that rewrites 1,000 models writes one file, not 1,000.
        self.git.run(&[
            "-c",
            "core.bigFileThreshold=1",
            "add",
            "-A",
            "--",
            &self.path,
        ])?;
        let diff = self
            .git
            .output(&["diff", "--cached", "--quiet", "--exit-code"], None)?;
        if diff.success {
            return Ok(false);
        }
        if !diff.stderr.is_empty() {
            return Err(GitError::Failed {
                args: "diff --cached".into(),
                status: "non-zero exit".into(),
                stderr: diff.stderr,
            });
        }
        self.git.run_input(
            &["commit", "-q", "--no-verify", "-F", "-"],
            Some(message.as_bytes()),
        )?;
        Ok(true)
    }

    /// Push the local branch to the remote branch (never forced).
    pub fn push(&mut self) -> Result<Pushed, GitError> {
        let dst = format!("HEAD:refs/heads/{}", self.branch);
        let crate::gitcli::Output {
            success: ok,
            stdout,
            stderr,
        } = self.git.output(
            &["push", "--porcelain", "--no-verify", "origin", &dst],
            None,
        )?;
        match push_result(&stdout) {
            Some(Pushed::Done) if ok => {
                // The push updated the tracking ref: worktree, index and tip agree.
                self.synced = Some(self.tip()?);
                Ok(Pushed::Done)
            }
            Some(Pushed::Behind) => Ok(Pushed::Behind),
            _ => Err(GitError::Failed {
                args: format!("push origin {dst}"),
                status: if ok {
                    "no result".into()
                } else {
                    "non-zero exit".into()
                },
                stderr: format!("{} {}", stdout.trim(), stderr).trim().to_owned(),
            }),
        }
    }
}

fn real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir())
}

/// Create `p` and its parents; `p` itself must end up a real folder, not a link to one.
fn fs_dirs(p: &Path) -> Result<(), GitError> {
    std::fs::create_dir_all(p).map_err(io(p))?;
    if !real_dir(p) {
        return Err(GitError::Refused(format!(
            "{} is not a folder (a symbolic link?)",
            p.display()
        )));
    }
    Ok(())
}

/// Remove a file or link at `p` (the link itself); a folder in its place too.
fn remove_entry(p: &Path) -> Result<(), GitError> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(p).map_err(io(p)),
        Ok(_) => std::fs::remove_file(p).map_err(io(p)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(p)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_locations() {
        let s = Path::new("/state");
        for url in [
            "git@github.com:acme/ml-deploy.git",
            "https://github.com/acme/ml-deploy.git",
            "ssh://git@h/x.git",
            "file:///srv/gitops.git",
            "host:repo",
        ] {
            assert_eq!(Remote::parse(url, s), Ok(Remote::Url(url.into())), "{url}");
        }
        assert_eq!(
            Remote::parse("/srv/gitops.git", s),
            Ok(Remote::Local("/srv/gitops.git".into()))
        );
        assert_eq!(
            Remote::parse("./gitops.git/", s),
            Ok(Remote::UnderState("/state/gitops.git".into()))
        );
        assert!(Remote::parse("../elsewhere.git", s).is_err());
        assert!(Remote::parse("targets/prod/gitops", s).is_err());
        assert!(Remote::parse("deploy/x.git", s).is_err());
        assert!(Remote::parse("a/../../b", s).is_err());
        // A colon after a slash is a path, as git reads it.
        assert_eq!(
            Remote::parse("dir/with:colon", s),
            Ok(Remote::UnderState("/state/dir/with:colon".into()))
        );
    }

    #[test]
    fn porcelain_push_results() {
        assert_eq!(
            push_result("To r\n*\tHEAD:refs/heads/main\t[new branch]\nDone\n"),
            Some(Pushed::Done)
        );
        assert_eq!(
            push_result("To r\n \tHEAD:refs/heads/main\ta..b\nDone\n"),
            Some(Pushed::Done)
        );
        assert_eq!(
            push_result("To r\n!\tHEAD:refs/heads/main\t[rejected] (fetch first)\nDone\n"),
            Some(Pushed::Behind)
        );
        assert_eq!(
            push_result("!\tHEAD:refs/heads/main\t[remote rejected] (pre-receive hook declined)\n"),
            None
        );
        assert_eq!(push_result(""), None);
    }
}
