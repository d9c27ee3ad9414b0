//! [`RegistryFiles`](super::invariants::RegistryFiles) backed by a commit's git tree.

use super::invariants::RegistryFiles;
use git2::{ObjectType, Oid, Repository, Tree};
use std::path::Path;

/// Answers file questions from one commit's tree.
pub struct GitFiles<'r> {
    repo: &'r Repository,
    tree: Tree<'r>,
}

impl<'r> GitFiles<'r> {
    pub fn new(repo: &'r Repository, commit: Oid) -> Result<Self, git2::Error> {
        let tree = repo.find_commit(commit)?.tree()?;
        Ok(GitFiles { repo, tree })
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

    fn text(&self, blob: Oid) -> Option<String> {
        let b = self.repo.find_blob(blob).ok()?;
        String::from_utf8(b.content().to_vec()).ok()
    }
}
