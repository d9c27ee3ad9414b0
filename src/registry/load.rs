//! Read a [`Registry`] from a commit's git objects, through the shared [`Cache`] (folders by
//! tree id, manifests by blob id), so reloading a later revision parses only what changed.

use super::cache::{Cache, Objects};
use super::folder::{self, not_utf8, special_entry};
use super::{ModelEntry, Registry};
use crate::diag::Diagnostic;
use crate::manifest::Policy;
use crate::repo::{join, RepoError};
use git2::{ObjectType, Oid, Repository};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters from the last [`Loader::load`], for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Version manifests parsed (cache misses).
    pub parsed: usize,
    /// Model folders reused whole from the cache.
    pub reused_models: usize,
}

/// Loads registries from git, keeping parsed manifests across loads.
///
/// Caching: a model folder whose tree id is unchanged is reused whole (no walk, no parse): by
/// position from the previous load's `models/` listing, else from the shared [`Cache`]; a
/// changed folder is walked and only blobs absent from that folder's previous tree are read
/// and parsed. Cache entries unused for a few loads are dropped.
#[derive(Default)]
pub struct Loader {
    cache: Cache,
    /// The last load's `models/` folder, walked in step with the next one.
    listing: Option<Listing>,
    /// Statistics of the most recent load.
    pub stats: LoadStats,
}

/// Below this many model folders to walk, work on the calling thread only.
const PARALLEL_THRESHOLD: usize = 64;
/// Model folders a worker takes at a time.
const BATCH: usize = 32;
/// Batches a worker reads through one repository handle before opening a fresh one.
const REOPEN_AFTER: usize = 16;

/// A model folder to (re)load: folder name, repository-relative path, tree id, and its
/// position in the new [`Listing`].
struct Todo {
    name: String,
    path: String,
    tree: Oid,
    slot: usize,
}

/// The model folders of the last load's `models/` folder, in tree order.
struct Listing {
    /// Repository-relative path of the `models` folder.
    dir: String,
    /// Folder names, concatenated (one allocation, read in order).
    names: String,
    entries: Vec<Listed>,
}

struct Listed {
    /// Range of the folder name in [`Listing::names`].
    name: (u32, u32),
    tree: Oid,
    /// `None` while the folder is being built (and once the next load took it over).
    entry: Option<Arc<ModelEntry>>,
}

impl Listed {
    fn name<'a>(&self, names: &'a str) -> &'a str {
        &names[self.name.0 as usize..self.name.1 as usize]
    }
}

/// Append a folder to a listing under construction.
fn push_listed(
    listing: &mut Vec<Listed>,
    names: &mut String,
    name: &str,
    tree: Oid,
    entry: Option<Arc<ModelEntry>>,
) {
    let start = names.len() as u32;
    names.push_str(name);
    listing.push(Listed {
        name: (start, names.len() as u32),
        tree,
        entry,
    });
}

impl Loader {
    /// A loader with a cache of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// A loader reading through `cache`, shared with other readers of the same repository.
    pub fn with_cache(cache: Cache) -> Self {
        Loader {
            cache,
            ..Self::default()
        }
    }

    /// Read the registry rooted at `root` (repository-relative folder) in `commit`.
    pub fn load(
        &mut self,
        repo: &Repository,
        commit: Oid,
        root: &str,
    ) -> Result<Registry, RepoError> {
        crate::gitopts::init();
        self.stats = LoadStats::default();
        let cache = self.cache.clone();
        let mut objects = cache.lock();
        objects.next_generation();
        let commit_obj = repo.find_commit(commit)?;
        let top = commit_obj.tree()?;
        let tree = if root.is_empty() {
            top
        } else {
            match top.get_path(Path::new(root)) {
                Ok(e) if e.kind() == Some(ObjectType::Tree) => repo.find_tree(e.id())?,
                // Absent (or not a folder) is a value for the caller; a failed read is not.
                Err(e) if e.code() != git2::ErrorCode::NotFound => return Err(e.into()),
                _ => {
                    return Err(RepoError::PathNotFound {
                        path: root.to_owned(),
                        rev: commit.to_string(),
                    })
                }
            }
        };

        let mut diagnostics = Vec::new();
        let (policy, policy_blob) = load_policy(&mut objects, repo, &tree, root, &mut diagnostics)?;

        // Layout: special entries anywhere outside models/, and models/ itself.
        let mut todo = Vec::new();
        let mut models: Vec<(String, Arc<ModelEntry>)> = Vec::new();
        let mut listing: Vec<Listed> = Vec::new();
        let mut listing_names = String::new();
        let mut listing_dir = None;
        for e in tree.iter() {
            let Some(name) = e.name() else {
                diagnostics.push(not_utf8(root, &e));
                continue;
            };
            let path = join(root, name);
            if let Some(d) = special_entry(&e, &path) {
                diagnostics.push(d);
                continue;
            }
            if name == "models" {
                // (`path` moves into `listing_dir` below.)
                if e.kind() != Some(ObjectType::Tree) {
                    diagnostics.push(Diagnostic::new(&path, "`models` must be a folder"));
                    continue;
                }
                let models_tree = repo.find_tree(e.id())?;
                models.reserve(models_tree.len());
                // Walk the previous load's listing of this folder in step with this one:
                // unchanged folders match by position, without hash lookups.
                let mut prev = self.listing.take().filter(|l| l.dir == path);
                let (prev_names, prev) = match prev.as_mut() {
                    Some(l) => (l.names.as_str(), l.entries.as_mut_slice()),
                    None => ("", &mut [][..]),
                };
                let mut j = 0;
                for m in models_tree.iter() {
                    // Never a model named "" or by a lossy name: a layout error instead.
                    let Some(mname) = m.name() else {
                        diagnostics.push(not_utf8(&path, &m));
                        continue;
                    };
                    if m.kind() == Some(ObjectType::Tree) {
                        let mut hit = None;
                        let end = prev.len().min(j + 2);
                        if let Some(k) = (j..end).find(|&k| prev[k].name(prev_names) == mname) {
                            j = k + 1;
                            if prev[k].tree == m.id() {
                                hit = prev[k].entry.take();
                            }
                        }
                        if hit.is_none() {
                            // Another revision's (or reader's) folder with the same content.
                            hit = objects.folder(&join(&path, mname), m.id());
                        }
                        if let Some(entry) = hit {
                            self.stats.reused_models += 1;
                            models.push((mname.to_owned(), entry.clone()));
                            push_listed(
                                &mut listing,
                                &mut listing_names,
                                mname,
                                m.id(),
                                Some(entry),
                            );
                            continue;
                        }
                    }
                    let mpath = join(&path, mname);
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
                    todo.push(Todo {
                        name: mname.to_owned(),
                        path: mpath,
                        tree: m.id(),
                        slot: listing.len(),
                    });
                    push_listed(&mut listing, &mut listing_names, mname, m.id(), None);
                }
                listing_dir = Some(path);
            } else if e.kind() == Some(ObjectType::Tree) {
                folder::scan_layout(repo, e.id(), &path, &mut diagnostics, Some(&mut objects))?;
            }
        }

        for ((folder, parsed), t) in build_models(&objects, repo, &todo)?.into_iter().zip(&todo) {
            self.stats.parsed += parsed;
            models.push((folder.name.clone(), folder.clone()));
            listing[t.slot].entry = Some(folder.clone());
            objects.insert(folder, parsed);
        }
        self.listing = listing_dir.map(|dir| Listing {
            dir,
            names: listing_names,
            entries: listing,
        });
        // Bulk-built from a (nearly) sorted list: cheaper than 10,000 single inserts.
        let models: BTreeMap<String, Arc<ModelEntry>> = models.into_iter().collect();
        objects.prune(self.listing.as_ref().map_or(0, |l| l.entries.len()));
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
}

fn load_policy(
    objects: &mut Objects,
    repo: &Repository,
    tree: &git2::Tree,
    root: &str,
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
    match objects.policy(repo, oid)? {
        Ok(p) => Ok((Some(p), Some(oid))),
        Err(e) => {
            diagnostics.push(e.into_diagnostic(path));
            Ok((None, Some(oid)))
        }
    }
}

/// Walk, read and parse the model folders in `todo`, on several threads when there are
/// many. Returns each built folder with the number of version blobs it had to parse.
fn build_models(
    objects: &Objects,
    repo: &Repository,
    todo: &[Todo],
) -> Result<Vec<(Arc<ModelEntry>, usize)>, RepoError> {
    let build = |r: &Repository, odb: &git2::Odb, t: &Todo| {
        objects
            .build(r, odb, &t.name, &t.path, t.tree)
            .map(|(f, n)| (Arc::new(f), n))
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(todo.len().div_ceil(BATCH));
    if todo.len() < PARALLEL_THRESHOLD || threads < 2 {
        let odb = repo.odb()?;
        return todo.iter().map(|t| build(repo, &odb, t)).collect();
    }
    // Workers take batches of folders in order; results are reassembled by batch index.
    // Each worker reads through its own repository handle, reopened every few batches so
    // libgit2's object cache (trees read once) does not grow with the registry.
    let next = AtomicUsize::new(0);
    let git_dir = repo.path().to_path_buf();
    let work = || -> Result<Vec<Batch>, RepoError> {
        let mut out = Vec::new();
        let mut handle: Option<(Repository, usize)> = None;
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            let Some(batch) = todo.chunks(BATCH).nth(b) else {
                return Ok(out);
            };
            if handle.as_ref().is_none_or(|h| h.1 >= REOPEN_AFTER) {
                drop(handle.take()); // close the old handle (and its cache) first
                handle = Some((Repository::open(&git_dir)?, 0));
            }
            let (r, used) = handle.as_mut().expect("opened above");
            *used += 1;
            let odb = r.odb()?;
            let built = batch
                .iter()
                .map(|t| build(r, &odb, t))
                .collect::<Result<Vec<_>, _>>()?;
            out.push((b, built));
        }
    };
    let mut batches = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work()?;
        for h in handles {
            all.extend(h.join().expect("loader thread panicked")?);
        }
        Ok::<_, RepoError>(all)
    })?;
    batches.sort_unstable_by_key(|(b, _)| *b);
    Ok(batches.into_iter().flat_map(|(_, v)| v).collect())
}

/// A batch index and the folders built from it (with their parse counts).
type Batch = (usize, Vec<(Arc<ModelEntry>, usize)>);
