//! A lazily loaded view of the registry at one commit: the policy and, on demand, single
//! model folders (through the shared [`Cache`]), so a check parses what the change touches.

use crate::manifest::{ParseError, Policy};
use crate::registry::Cache;
use crate::repo::{join, RepoError};
use git2::{ObjectType, Oid, Repository, Tree};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// One `models/<name>/` folder at one commit: the registry's one model of a model folder.
pub use crate::registry::folder::{ModelFolder as ModelView, ParsedBlob, VersionFile};

/// The registry folder at one commit, read lazily.
pub struct Snapshot<'r> {
    pub commit: Oid,
    /// Registry folder, repository-relative ("" for the root).
    pub root: String,
    /// The registry folder's tree, `None` when the folder is missing at this commit.
    pub tree: Option<Tree<'r>>,
    models: Option<Tree<'r>>,
    pub policy_blob: Option<Oid>,
    pub policy: Option<Result<Arc<Policy>, ParseError>>,
    cache: Cache,
    loaded: BTreeMap<String, Option<Arc<ModelView>>>,
}

impl<'r> Snapshot<'r> {
    /// The registry folder `root` at `commit`, reading folders through `cache`.
    pub fn open(
        repo: &'r Repository,
        commit: Oid,
        root: &str,
        cache: &Cache,
    ) -> Result<Self, RepoError> {
        let top = repo.find_commit(commit)?.tree()?;
        let tree = if root.is_empty() {
            Some(top)
        } else {
            match top.get_path(Path::new(root)) {
                Ok(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
                // Absent (or not a folder); a failed read is an error, never "no registry".
                Err(e) if e.code() != git2::ErrorCode::NotFound => return Err(e.into()),
                _ => None,
            }
        };
        let mut snap = Snapshot {
            commit,
            root: root.to_owned(),
            models: None,
            policy_blob: None,
            policy: None,
            cache: cache.clone(),
            loaded: BTreeMap::new(),
            tree: None,
        };
        if let Some(t) = &tree {
            if let Some(e) = t.get_name("models") {
                if e.kind() == Some(ObjectType::Tree) {
                    snap.models = Some(repo.find_tree(e.id())?);
                }
            }
            if let Some(e) = t.get_name("baton.yaml") {
                if e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000 {
                    snap.policy_blob = Some(e.id());
                    snap.policy = Some(cache.lock().policy(repo, e.id())?);
                }
            }
        }
        snap.tree = tree;
        Ok(snap)
    }

    /// Repository-relative path of a registry-relative path.
    pub fn path(&self, rel: &str) -> String {
        join(&self.root, rel)
    }

    /// The parsed policy, when present and valid.
    pub fn policy(&self) -> Option<&Arc<Policy>> {
        self.policy.as_ref().and_then(|p| p.as_ref().ok())
    }

    /// Tree id of `models/<name>` (None when absent or not a folder).
    pub fn model_tree(&self, name: &str) -> Option<Oid> {
        let e = self.models.as_ref()?.get_name(name)?;
        (e.kind() == Some(ObjectType::Tree)).then(|| e.id())
    }

    /// The `models/` folder's tree, when present.
    pub fn models_tree(&self) -> Option<&Tree<'r>> {
        self.models.as_ref()
    }

    /// Blob id of a registry-relative path.
    pub fn blob(&self, rel: &str) -> Option<Oid> {
        let e = self.tree.as_ref()?.get_path(Path::new(rel)).ok()?;
        (e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000).then(|| e.id())
    }

    /// Load (and remember) the model folder `name`.
    pub fn model(
        &mut self,
        repo: &Repository,
        name: &str,
    ) -> Result<Option<Arc<ModelView>>, RepoError> {
        if let Some(m) = self.loaded.get(name) {
            return Ok(m.clone());
        }
        let loaded = match self.model_tree(name) {
            None => None,
            Some(tree) => {
                let path = self.path(&format!("models/{name}"));
                Some(self.cache.lock().folder_or_build(repo, name, &path, tree)?)
            }
        };
        self.loaded.insert(name.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// Models loaded so far (by [`Snapshot::model`]).
    pub fn loaded(&self) -> impl Iterator<Item = &Arc<ModelView>> {
        self.loaded.values().flatten()
    }
}
