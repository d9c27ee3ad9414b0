//! Git plumbing at the edge: open the repository, resolve revisions, locate the registry
//! folder inside a commit's tree, and read files from git objects (never the working tree).

use git2::{Commit, ObjectType, Oid, Repository, Tree};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Environment errors: these exit with code 2.
#[derive(Debug, Error)]
pub enum RepoError {
    #[error("{path}: not a git repository (or any parent): {message}")]
    NotARepository { path: PathBuf, message: String },
    #[error("unknown revision `{rev}`: {message}")]
    UnknownRevision { rev: String, message: String },
    #[error("no baton.yaml found in the tree at {rev}; pass --path to name the registry folder")]
    NoRegistry { rev: String },
    #[error("several registries in the tree at {rev} ({found}); pass --path to pick one")]
    AmbiguousRegistry { rev: String, found: String },
    #[error("--path `{path}`: no baton.yaml at {rev}")]
    PathNotFound { path: String, rev: String },
    #[error("repository has no working directory (bare); {what} needs one")]
    Bare { what: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Open the repository containing `dir` (searching parents, like git).
pub fn open(dir: &Path) -> Result<Repository, RepoError> {
    Repository::discover(dir).map_err(|e| RepoError::NotARepository {
        path: dir.to_path_buf(),
        message: e.message().to_owned(),
    })
}

/// Resolve a revision (branch, tag, sha, `HEAD~2`, ...) to a commit.
pub fn resolve_commit<'r>(repo: &'r Repository, rev: &str) -> Result<Commit<'r>, RepoError> {
    let unknown = |e: git2::Error| RepoError::UnknownRevision {
        rev: rev.to_owned(),
        message: e.message().to_owned(),
    };
    if repo
        .head()
        .is_err_and(|e| e.code() == git2::ErrorCode::UnbornBranch)
        && rev == "HEAD"
    {
        return Err(RepoError::UnknownRevision {
            rev: rev.to_owned(),
            message: "the repository has no commits yet".to_owned(),
        });
    }
    repo.revparse_single(rev)
        .map_err(unknown)?
        .peel_to_commit()
        .map_err(unknown)
}

/// Normalise a `--path` value: strip `./` and trailing slashes; `.` is the root.
pub fn normalize_subdir(p: &str) -> String {
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Join a registry root and a relative path into a repository-relative path.
pub fn join(root: &str, rel: &str) -> String {
    if root.is_empty() {
        rel.to_owned()
    } else {
        format!("{root}/{rel}")
    }
}

/// Find the registry folder in `commit`: `--path` when given, else the root when it holds
/// `baton.yaml`, else the single folder (at most three levels deep) that does.
pub fn registry_root(
    repo: &Repository,
    commit: &Commit,
    rev: &str,
    path: Option<&str>,
) -> Result<String, RepoError> {
    let tree = commit.tree()?;
    if let Some(p) = path {
        let root = normalize_subdir(p);
        return if tree_blob(repo, &tree, &join(&root, "baton.yaml"))?.is_some() {
            Ok(root)
        } else {
            Err(RepoError::PathNotFound {
                path: p.to_owned(),
                rev: rev.to_owned(),
            })
        };
    }
    if tree.get_name("baton.yaml").is_some() {
        return Ok(String::new());
    }
    let mut found = Vec::new();
    find_policies(repo, &tree, "", 0, &mut found)?;
    match found.len() {
        0 => Err(RepoError::NoRegistry {
            rev: rev.to_owned(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(RepoError::AmbiguousRegistry {
            rev: rev.to_owned(),
            found: found.join(", "),
        }),
    }
}

fn find_policies(
    repo: &Repository,
    tree: &Tree,
    prefix: &str,
    depth: usize,
    found: &mut Vec<String>,
) -> Result<(), RepoError> {
    if depth >= 3 {
        return Ok(());
    }
    for e in tree.iter() {
        if e.kind() != Some(ObjectType::Tree) {
            continue;
        }
        let name = e.name().unwrap_or_default();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let sub = repo.find_tree(e.id())?;
        let path = join(prefix, name);
        if sub.get_name("baton.yaml").is_some() {
            found.push(path);
        } else {
            find_policies(repo, &sub, &path, depth + 1, found)?;
        }
    }
    Ok(())
}

/// The blob id at `path` in `tree`, if it is a regular file.
pub fn tree_blob(repo: &Repository, tree: &Tree, path: &str) -> Result<Option<Oid>, RepoError> {
    let _ = repo;
    match tree.get_path(Path::new(path)) {
        Ok(e) if e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000 => Ok(Some(e.id())),
        Ok(_) => Ok(None),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Read the file at `path` in the commit's tree.
pub fn read_file(
    repo: &Repository,
    commit: &Commit,
    path: &str,
) -> Result<Option<Vec<u8>>, RepoError> {
    let tree = commit.tree()?;
    match tree_blob(repo, &tree, path)? {
        Some(oid) => Ok(Some(repo.find_blob(oid)?.content().to_vec())),
        None => Ok(None),
    }
}
