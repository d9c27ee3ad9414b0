//! The registries one daemon pass reads, by commit: each commit is loaded once per pass (through
//! one [`Loader`], whose folder and blob caches live across passes); absent is `Ok(None)`.

use super::{Cache, Loader, Registry};
use crate::repo::RepoError;
use git2::{Oid, Repository};
use std::collections::HashMap;
use std::sync::Arc;

/// `(commit, registry root) -> Arc<Registry>` for one pass, over a long-lived [`Loader`].
#[derive(Default)]
pub struct Store {
    loader: Loader,
    pass: HashMap<(Oid, String), Option<Arc<Registry>>>,
    /// Registries loaded (store misses) since the store was made, for tests and benchmarks.
    pub loads: usize,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store loading through `cache`, shared with the other readers of the repository.
    pub fn with_cache(cache: Cache) -> Self {
        Store {
            loader: Loader::with_cache(cache),
            ..Self::default()
        }
    }

    /// Start a new pass: registries are read again (parsed folders are still reused).
    pub fn begin_pass(&mut self) {
        self.pass.clear();
    }

    /// The registry rooted at `root` in `commit`: `Ok(None)` when that folder is absent there;
    /// a failed read is an error.
    pub fn get(
        &mut self,
        repo: &Repository,
        commit: Oid,
        root: &str,
    ) -> Result<Option<Arc<Registry>>, RepoError> {
        let key = (commit, root.to_owned());
        if let Some(hit) = self.pass.get(&key) {
            return Ok(hit.clone());
        }
        let loaded = match self.loader.load(repo, commit, root) {
            Ok(r) => Some(Arc::new(r)),
            Err(RepoError::PathNotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        self.loads += 1;
        self.pass.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// Counters of the loader's most recent load.
    pub fn stats(&self) -> super::load::LoadStats {
        self.loader.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::Signature;

    fn commit(repo: &Repository, files: &[(&str, &str)]) -> Oid {
        let mut idx = repo.index().unwrap();
        for (path, text) in files {
            let full = repo.workdir().unwrap().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, text).unwrap();
            idx.add_path(std::path::Path::new(path)).unwrap();
        }
        idx.write().unwrap();
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let sig = Signature::now("t", "t@example.invalid").unwrap();
        let parents: Vec<_> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &parents)
            .unwrap()
    }

    #[test]
    fn a_pass_loads_each_commit_once_and_absent_is_none() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init(d.path()).unwrap();
        let a = commit(
            &repo,
            &[
                ("reg/baton.yaml", "version: 1\n"),
                ("reg/models/m/model.yaml", "name: m\nowners: [alice]\n"),
            ],
        );
        let b = commit(
            &repo,
            &[("reg/models/n/model.yaml", "name: n\nowners: [bob]\n")],
        );
        let mut store = Store::new();

        store.begin_pass();
        let first = store.get(&repo, a, "reg").unwrap().unwrap();
        let again = store.get(&repo, a, "reg").unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same Arc within a pass");
        assert_eq!(store.get(&repo, b, "reg").unwrap().unwrap().models.len(), 2);
        assert_eq!(store.get(&repo, a, "elsewhere").unwrap().map(|_| ()), None);
        assert_eq!(store.get(&repo, a, "elsewhere").unwrap().map(|_| ()), None);
        assert_eq!(store.loads, 3, "a, b and the absent root, once each");

        store.begin_pass();
        let next = store.get(&repo, b, "reg").unwrap().unwrap();
        assert_eq!(store.loads, 4, "a new pass reads again");
        assert_eq!(
            store.stats().reused_models,
            2,
            "but reuses the parsed folders"
        );
        assert!(Arc::ptr_eq(&next.models["m"], &first.models["m"]));
    }

    #[test]
    fn a_missing_commit_is_an_error_not_absent() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init(d.path()).unwrap();
        let missing = Oid::from_str("1234567890123456789012345678901234567890").unwrap();
        assert!(Store::new().get(&repo, missing, "").is_err());
    }
}
