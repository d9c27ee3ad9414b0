//! Read a [`Registry`] from a commit's git objects. Parsed manifests are cached by blob id and
//! whole model folders by tree id, so reloading a later revision parses only what changed.

use super::{ModelEntry, Registry, VersionEntry, VersionKey};
use crate::diag::Diagnostic;
use crate::manifest::{
    parse_model, parse_policy, parse_version, ParseError, Policy, VersionManifest,
};
use crate::repo::{join, RepoError};
use git2::{ObjectType, Oid, Repository, Tree};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

type Parsed = Arc<Result<Arc<VersionManifest>, ParseError>>;

/// Counters from the last [`Loader::load`], for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Version manifests parsed (cache misses).
    pub parsed: usize,
    /// Model folders reused whole from the cache.
    pub reused_models: usize,
}

/// Loads registries from git, keeping parsed manifests across loads.
#[derive(Default)]
pub struct Loader {
    blobs: HashMap<Oid, (u64, Parsed)>,
    models: HashMap<(String, Oid), (u64, Arc<ModelEntry>)>,
    policies: HashMap<Oid, (u64, Result<Arc<Policy>, ParseError>)>,
    clean_trees: HashMap<Oid, u64>,
    generation: u64,
    /// Statistics of the most recent load.
    pub stats: LoadStats,
}

/// Loads older than this many generations are dropped from the cache.
const KEEP_GENERATIONS: u64 = 4;
/// Below this many manifests to parse, parse on the calling thread.
const PARALLEL_THRESHOLD: usize = 512;

struct PendingModel {
    name: String,
    key: (String, Oid),
    manifest: Option<(Oid, Result<crate::manifest::ModelManifest, ParseError>)>,
    versions: Vec<(String, String, Oid)>,
    diagnostics: Vec<Diagnostic>,
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Read the registry rooted at `root` (repository-relative folder) in `commit`.
    pub fn load(
        &mut self,
        repo: &Repository,
        commit: Oid,
        root: &str,
    ) -> Result<Registry, RepoError> {
        self.generation += 1;
        self.stats = LoadStats::default();
        let gen = self.generation;
        let commit_obj = repo.find_commit(commit)?;
        let top = commit_obj.tree()?;
        let tree = if root.is_empty() {
            top
        } else {
            match top.get_path(Path::new(root)) {
                Ok(e) if e.kind() == Some(ObjectType::Tree) => repo.find_tree(e.id())?,
                _ => {
                    return Err(RepoError::PathNotFound {
                        path: root.to_owned(),
                        rev: commit.to_string(),
                    })
                }
            }
        };

        let mut diagnostics = Vec::new();
        let (policy, policy_blob) = self.load_policy(repo, &tree, root, gen, &mut diagnostics)?;

        // Layout: special entries anywhere outside models/, and models/ itself.
        let mut pending = Vec::new();
        let mut reused: BTreeMap<String, Arc<ModelEntry>> = BTreeMap::new();
        for e in tree.iter() {
            let name = e.name().unwrap_or_default().to_owned();
            let path = join(root, &name);
            if let Some(d) = special_entry(&e, &path) {
                diagnostics.push(d);
                continue;
            }
            if name == "models" {
                if e.kind() != Some(ObjectType::Tree) {
                    diagnostics.push(Diagnostic::new(&path, "`models` must be a folder"));
                    continue;
                }
                let models_tree = repo.find_tree(e.id())?;
                for m in models_tree.iter() {
                    let mname = m.name().unwrap_or_default().to_owned();
                    let mpath = join(&path, &mname);
                    if let Some(d) = special_entry(&m, &mpath) {
                        diagnostics.push(d);
                        continue;
                    }
                    if m.kind() != Some(ObjectType::Tree) {
                        diagnostics.push(Diagnostic::new(
                            &mpath,
                            "unexpected file in models/ (each model is a folder models/<model>/)",
                        ));
                        continue;
                    }
                    let key = (mpath.clone(), m.id());
                    if let Some(entry) = self.models.get_mut(&key) {
                        entry.0 = gen;
                        self.stats.reused_models += 1;
                        reused.insert(mname, entry.1.clone());
                        continue;
                    }
                    pending.push(walk_model(
                        repo,
                        &mname,
                        &mpath,
                        key,
                        &repo.find_tree(m.id())?,
                    )?);
                }
            } else if e.kind() == Some(ObjectType::Tree) {
                self.scan_special(repo, e.id(), &path, gen, &mut diagnostics)?;
            }
        }

        self.parse_pending(repo, &pending, gen)?;

        let mut models = reused;
        for p in pending {
            let key = p.key.clone();
            let entry = Arc::new(self.assemble(p));
            self.models.insert(key, (gen, entry.clone()));
            models.insert(entry.name.clone(), entry);
        }
        self.prune();
        diagnostics.sort();
        Ok(Registry {
            commit,
            root: root.to_owned(),
            tree: tree.id(),
            policy,
            policy_blob,
            models,
            diagnostics,
        })
    }

    fn load_policy(
        &mut self,
        repo: &Repository,
        tree: &Tree,
        root: &str,
        gen: u64,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<(Option<Arc<Policy>>, Option<Oid>), RepoError> {
        let path = join(root, "baton.yaml");
        let Some(e) = tree.get_name("baton.yaml") else {
            diagnostics.push(Diagnostic::new(
                &path,
                "missing: the registry folder has no baton.yaml",
            ));
            return Ok((None, None));
        };
        if let Some(d) = special_entry(&e, &path) {
            diagnostics.push(d);
            return Ok((None, None));
        }
        let oid = e.id();
        let parsed = match self.policies.get_mut(&oid) {
            Some(hit) => {
                hit.0 = gen;
                hit.1.clone()
            }
            None => {
                let blob = repo.find_blob(oid)?;
                let r = parse_policy(blob.content()).map(Arc::new);
                self.policies.insert(oid, (gen, r.clone()));
                r
            }
        };
        match parsed {
            Ok(p) => Ok((Some(p), Some(oid))),
            Err(e) => {
                diagnostics.push(e.into_diagnostic(path));
                Ok((None, Some(oid)))
            }
        }
    }

    /// Report symlinks and submodules below `tree`; clean trees are remembered by id.
    fn scan_special(
        &mut self,
        repo: &Repository,
        tree: Oid,
        prefix: &str,
        gen: u64,
        out: &mut Vec<Diagnostic>,
    ) -> Result<(), RepoError> {
        if let Some(g) = self.clean_trees.get_mut(&tree) {
            *g = gen;
            return Ok(());
        }
        let before = out.len();
        let t = repo.find_tree(tree)?;
        for e in t.iter() {
            let path = join(prefix, e.name().unwrap_or_default());
            if let Some(d) = special_entry(&e, &path) {
                out.push(d);
            } else if e.kind() == Some(ObjectType::Tree) {
                self.scan_special(repo, e.id(), &path, gen, out)?;
            }
        }
        if out.len() == before {
            self.clean_trees.insert(tree, gen);
        }
        Ok(())
    }

    /// Parse every version blob not yet cached, in parallel when there are many.
    fn parse_pending(
        &mut self,
        repo: &Repository,
        pending: &[PendingModel],
        gen: u64,
    ) -> Result<(), RepoError> {
        let mut todo: Vec<Oid> = Vec::new();
        let mut seen = HashSet::new();
        for p in pending {
            for (_, _, oid) in &p.versions {
                if let Some(hit) = self.blobs.get_mut(oid) {
                    hit.0 = gen;
                } else if seen.insert(*oid) {
                    todo.push(*oid);
                }
            }
        }
        self.stats.parsed = todo.len();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let results: Vec<(Oid, Parsed)> = if todo.len() < PARALLEL_THRESHOLD || threads < 2 {
            parse_blobs(repo, &todo)?
        } else {
            let chunk = todo.len().div_ceil(threads);
            let git_dir = repo.path().to_path_buf();
            std::thread::scope(|s| {
                let handles: Vec<_> = todo
                    .chunks(chunk)
                    .map(|c| {
                        let git_dir = &git_dir;
                        s.spawn(move || -> Result<Vec<(Oid, Parsed)>, RepoError> {
                            let r = Repository::open(git_dir)?;
                            parse_blobs(&r, c)
                        })
                    })
                    .collect();
                let mut all = Vec::with_capacity(todo.len());
                for h in handles {
                    all.extend(h.join().expect("parser thread panicked")?);
                }
                Ok::<_, RepoError>(all)
            })?
        };
        for (oid, parsed) in results {
            self.blobs.insert(oid, (gen, parsed));
        }
        Ok(())
    }

    fn assemble(&self, p: PendingModel) -> ModelEntry {
        let mut diagnostics = p.diagnostics;
        let manifest_path = join(&p.key.0, "model.yaml");
        let (manifest, manifest_blob) = match p.manifest {
            Some((oid, Ok(m))) => {
                if m.name != p.name {
                    diagnostics.push(
                        Diagnostic::new(
                            &manifest_path,
                            format!(
                                "name `{}` does not match the folder name `{}`",
                                m.name, p.name
                            ),
                        )
                        .at(Some(1), Some(1)),
                    );
                }
                (Some(Arc::new(m)), Some(oid))
            }
            Some((oid, Err(e))) => {
                diagnostics.push(e.into_diagnostic(&manifest_path));
                (None, Some(oid))
            }
            None => {
                diagnostics.push(Diagnostic::new(
                    &manifest_path,
                    "missing: every model folder needs a model.yaml",
                ));
                (None, None)
            }
        };
        let mut versions = BTreeMap::new();
        for (label, path, oid) in p.versions {
            let parsed = &self.blobs.get(&oid).expect("parsed above").1;
            match parsed.as_ref() {
                Ok(v) => {
                    if v.model != p.name {
                        diagnostics.push(
                            Diagnostic::new(
                                &path,
                                format!(
                                    "model `{}` does not match the folder name `{}`",
                                    v.model, p.name
                                ),
                            )
                            .at(Some(1), Some(1)),
                        );
                    }
                    if v.version != label {
                        diagnostics.push(Diagnostic::new(
                            &path,
                            format!(
                                "version `{}` does not match the file name `{label}.yaml`",
                                v.version
                            ),
                        ));
                    }
                    versions.insert(
                        VersionKey(label),
                        VersionEntry {
                            manifest: v.clone(),
                            blob: oid,
                            path,
                        },
                    );
                }
                Err(e) => diagnostics.push(e.clone().into_diagnostic(&path)),
            }
        }
        diagnostics.sort();
        ModelEntry {
            name: p.name,
            manifest,
            manifest_blob,
            versions,
            diagnostics,
        }
    }

    fn prune(&mut self) {
        let floor = self.generation.saturating_sub(KEEP_GENERATIONS);
        self.blobs.retain(|_, v| v.0 > floor);
        self.models.retain(|_, v| v.0 > floor);
        self.policies.retain(|_, v| v.0 > floor);
        self.clean_trees.retain(|_, g| *g > floor);
    }
}

fn parse_blobs(repo: &Repository, oids: &[Oid]) -> Result<Vec<(Oid, Parsed)>, RepoError> {
    let odb = repo.odb()?;
    let mut out = Vec::with_capacity(oids.len());
    for &oid in oids {
        let obj = odb.read(oid)?;
        out.push((oid, Arc::new(parse_version(obj.data()).map(Arc::new))));
    }
    Ok(out)
}

fn special_entry(e: &git2::TreeEntry, path: &str) -> Option<Diagnostic> {
    match (e.kind(), e.filemode()) {
        (_, 0o120000) => Some(Diagnostic::new(
            path,
            "symbolic links are not allowed in the registry",
        )),
        (Some(ObjectType::Commit), _) => Some(Diagnostic::new(
            path,
            "submodules are not allowed in the registry",
        )),
        _ => None,
    }
}

fn walk_model(
    repo: &Repository,
    name: &str,
    path: &str,
    key: (String, Oid),
    tree: &Tree,
) -> Result<PendingModel, RepoError> {
    let mut p = PendingModel {
        name: name.to_owned(),
        key,
        manifest: None,
        versions: Vec::new(),
        diagnostics: Vec::new(),
    };
    if !crate::names::is_model_name(name) {
        p.diagnostics.push(Diagnostic::new(
            path,
            format!("model name `{name}` must be a DNS label: lower-case letters, digits and '-', at most 63"),
        ));
    }
    for e in tree.iter() {
        let ename = e.name().unwrap_or_default();
        let epath = join(path, ename);
        if let Some(d) = special_entry(&e, &epath) {
            p.diagnostics.push(d);
            continue;
        }
        match (ename, e.kind()) {
            ("model.yaml", Some(ObjectType::Blob)) => {
                let blob = repo.find_blob(e.id())?;
                p.manifest = Some((e.id(), parse_model(blob.content())));
            }
            ("versions", Some(ObjectType::Tree)) => {
                for v in repo.find_tree(e.id())?.iter() {
                    let vname = v.name().unwrap_or_default();
                    let vpath = join(&epath, vname);
                    if let Some(d) = special_entry(&v, &vpath) {
                        p.diagnostics.push(d);
                        continue;
                    }
                    let label = match (vname.strip_suffix(".yaml"), v.kind()) {
                        (Some(l), Some(ObjectType::Blob)) => l,
                        _ => {
                            p.diagnostics.push(Diagnostic::new(
                                &vpath,
                                "unexpected entry in versions/ (only <version>.yaml files belong here)",
                            ));
                            continue;
                        }
                    };
                    if !crate::names::is_version_label(label) {
                        p.diagnostics.push(Diagnostic::new(
                            &vpath,
                            format!("version label `{label}` must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,62}}$"),
                        ));
                        continue;
                    }
                    p.versions.push((label.to_owned(), vpath, v.id()));
                }
            }
            ("versions", _) => p
                .diagnostics
                .push(Diagnostic::new(&epath, "`versions` must be a folder")),
            _ => {}
        }
    }
    Ok(p)
}
