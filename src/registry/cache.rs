//! The one cache of parsed registry objects that every reader of a repository shares: model
//! folders by tree id, version manifests by blob id (through the folder they were last read in),
//! policies by blob id. The eager [`super::Loader`], `check`'s lazy snapshots and the dashboard
//! hand out the same `Arc<ModelFolder>` for the same folder, so each blob is parsed once.

use super::folder::{self, ModelFolder, ParsedBlob};
use crate::manifest::{parse_policy, ParseError, Policy};
use crate::repo::RepoError;
use git2::{Odb, Oid, Repository};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A handle on one shared cache (cheap to clone; every clone sees the same entries).
#[derive(Clone, Default)]
pub struct Cache(Arc<Mutex<Objects>>);

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Exclusive access for one read (a load, a snapshot's folder). A reader that panicked
    /// while holding it left only whole entries behind (each is inserted complete), so a
    /// poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, Objects> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Version manifests parsed through this cache so far (tests and benchmarks).
    pub fn parsed(&self) -> usize {
        self.lock().parsed
    }
}

/// A cached model folder and the generation it was last used in.
struct Cached {
    gen: u64,
    folder: Arc<ModelFolder>,
}

/// What a [`Cache`] holds.
#[derive(Default)]
pub struct Objects {
    /// Model folders by tree id (one path per tree: a folder carries its paths).
    folders: HashMap<Oid, Cached>,
    /// Folder path -> tree id of the folder most recently read at that path: a changed folder
    /// reuses the manifests of its previous version by blob id.
    latest: HashMap<String, Oid>,
    policies: HashMap<Oid, (u64, Result<Arc<Policy>, ParseError>)>,
    /// Trees outside `models/` known to hold no symlink, submodule or non-UTF-8 name.
    clean_trees: HashMap<Oid, u64>,
    /// Bumped by every full load; entries unused for [`KEEP_GENERATIONS`] are dropped.
    generation: u64,
    parsed: usize,
}

/// Cache entries unused for this many loads are dropped (unless still in use elsewhere).
const KEEP_GENERATIONS: u64 = 4;

impl Objects {
    /// Start a full load: a new generation.
    pub(crate) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The folder read from `tree` at `path`, when cached.
    pub fn folder(&mut self, path: &str, tree: Oid) -> Option<Arc<ModelFolder>> {
        let gen = self.generation;
        let c = self.folders.get_mut(&tree)?;
        if c.folder.path != path {
            return None;
        }
        c.gen = gen;
        Some(c.folder.clone())
    }

    /// Walk the folder `name` at `path` (tree `tree`) and parse the version blobs the folder's
    /// previous version did not have. Shared access only, so loader threads build in parallel;
    /// the caller [`Objects::insert`]s the result. Returns the folder and the blobs parsed.
    pub(crate) fn build(
        &self,
        repo: &Repository,
        odb: &Odb,
        name: &str,
        path: &str,
        tree: Oid,
    ) -> Result<(ModelFolder, usize), RepoError> {
        let previous: HashMap<Oid, ParsedBlob> = self
            .latest
            .get(path)
            .and_then(|t| self.folders.get(t))
            .map(|c| {
                c.folder
                    .versions
                    .values()
                    .map(|v| (v.blob, v.parsed.clone()))
                    .collect()
            })
            .unwrap_or_default();
        folder::walk(repo, odb, name, path, tree, &|oid| {
            previous.get(&oid).cloned()
        })
    }

    /// Remember a built folder (and that `parsed` manifests were parsed for it).
    pub(crate) fn insert(&mut self, folder: Arc<ModelFolder>, parsed: usize) {
        self.parsed += parsed;
        self.latest.insert(folder.path.clone(), folder.tree);
        self.folders.insert(
            folder.tree,
            Cached {
                gen: self.generation,
                folder,
            },
        );
    }

    /// The folder at `path` in `tree`: cached, or built and remembered.
    pub fn folder_or_build(
        &mut self,
        repo: &Repository,
        name: &str,
        path: &str,
        tree: Oid,
    ) -> Result<Arc<ModelFolder>, RepoError> {
        if let Some(f) = self.folder(path, tree) {
            return Ok(f);
        }
        let (f, parsed) = self.build(repo, &repo.odb()?, name, path, tree)?;
        let f = Arc::new(f);
        self.insert(f.clone(), parsed);
        Ok(f)
    }

    /// The policy in blob `oid`, parsed once.
    pub fn policy(
        &mut self,
        repo: &Repository,
        oid: Oid,
    ) -> Result<Result<Arc<Policy>, ParseError>, RepoError> {
        let gen = self.generation;
        if let Some(hit) = self.policies.get_mut(&oid) {
            hit.0 = gen;
            return Ok(hit.1.clone());
        }
        let blob = repo.find_blob(oid)?;
        let r = parse_policy(blob.content()).map(Arc::new);
        self.policies.insert(oid, (gen, r.clone()));
        Ok(r)
    }

    /// Whether `tree` was found clean before (and mark it used).
    pub(crate) fn is_clean(&mut self, tree: Oid) -> bool {
        let gen = self.generation;
        match self.clean_trees.get_mut(&tree) {
            Some(g) => {
                *g = gen;
                true
            }
            None => false,
        }
    }

    pub(crate) fn mark_clean(&mut self, tree: Oid) {
        self.clean_trees.insert(tree, self.generation);
    }

    /// Drop entries unused for [`KEEP_GENERATIONS`] loads, except folders still held elsewhere
    /// (a loader's listing, a registry someone keeps): dropping those would free nothing and
    /// lose their manifests for the next version of the folder. `live` bounds how big the
    /// cache may grow before a full pass runs outside the every-few-loads schedule.
    pub(crate) fn prune(&mut self, live: usize) {
        if !self.generation.is_multiple_of(KEEP_GENERATIONS)
            && self.folders.len() <= live.saturating_add(256)
        {
            return;
        }
        let floor = self.generation.saturating_sub(KEEP_GENERATIONS);
        let before = self.folders.len();
        self.folders
            .retain(|_, c| c.gen > floor || Arc::strong_count(&c.folder) > 1);
        if self.folders.len() != before {
            let folders = &self.folders;
            self.latest.retain(|_, t| folders.contains_key(t));
        }
        self.policies.retain(|_, v| v.0 > floor);
        self.clean_trees.retain(|_, g| *g > floor);
    }
}
