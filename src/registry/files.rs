//! [`RegistryFiles`](super::invariants::RegistryFiles) backed by a commit's git tree, and the
//! one lookup of an in-registry artifact file (kind, size, sha256) that `validate` and `check` share.

use super::invariants::RegistryFiles;
use git2::{ObjectType, Oid, Repository, Tree};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

/// What is at an artifact's path in a git tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactFile {
    /// Nothing (or the path runs through something that is not a folder).
    Missing,
    /// Something other than a regular file: `a symbolic link`, `a folder`, `a submodule`.
    NotRegular(&'static str),
    /// A regular file (mode 100644 or 100755).
    Blob {
        blob: Oid,
        size: u64,
        sha256: String,
    },
}

/// Look up `path` (relative to `tree`) and hash the file found there; `digests` caches
/// sha256 by blob id across calls.
pub fn artifact_file(
    repo: &Repository,
    tree: &Tree,
    path: &str,
    digests: &mut HashMap<Oid, String>,
) -> Result<ArtifactFile, git2::Error> {
    let e = match tree.get_path(Path::new(path)) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(ArtifactFile::Missing),
        Err(e) => return Err(e),
    };
    match (e.kind(), e.filemode()) {
        (_, 0o120000) => return Ok(ArtifactFile::NotRegular("a symbolic link")),
        (Some(ObjectType::Tree), _) => return Ok(ArtifactFile::NotRegular("a folder")),
        (Some(ObjectType::Commit), _) => return Ok(ArtifactFile::NotRegular("a submodule")),
        _ => {}
    }
    let odb = repo.odb()?;
    let blob = e.id();
    let (size, _) = odb.read_header(blob)?;
    let sha256 = match digests.get(&blob) {
        Some(d) => d.clone(),
        None => {
            let d = hex::encode(Sha256::digest(odb.read(blob)?.data()));
            digests.insert(blob, d.clone());
            d
        }
    };
    Ok(ArtifactFile::Blob {
        blob,
        size: size as u64,
        sha256,
    })
}

/// Answers file questions from one commit's tree.
pub struct GitFiles<'r> {
    repo: &'r Repository,
    tree: Tree<'r>,
    digests: RefCell<HashMap<Oid, String>>,
}

impl<'r> GitFiles<'r> {
    pub fn new(repo: &'r Repository, commit: Oid) -> Result<Self, git2::Error> {
        let tree = repo.find_commit(commit)?.tree()?;
        Ok(GitFiles {
            repo,
            tree,
            digests: RefCell::new(HashMap::new()),
        })
    }
}

impl RegistryFiles for GitFiles<'_> {
    fn file_size(&self, path: &str) -> Option<u64> {
        let e = self.tree.get_path(Path::new(path)).ok()?;
        if e.kind() != Some(ObjectType::Blob) || e.filemode() == 0o120000 {
            return None;
        }
        let (size, _) = self.repo.odb().ok()?.read_header(e.id()).ok()?;
        Some(size as u64)
    }

    fn file_sha256(&self, path: &str) -> Option<String> {
        let mut digests = self.digests.borrow_mut();
        match artifact_file(self.repo, &self.tree, path, &mut digests).ok()? {
            ArtifactFile::Blob { sha256, .. } => Some(sha256),
            _ => None,
        }
    }

    fn text(&self, blob: Oid) -> Option<String> {
        let b = self.repo.find_blob(blob).ok()?;
        String::from_utf8(b.content().to_vec()).ok()
    }
}
