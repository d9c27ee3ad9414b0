//! The dashboard's reads, on blocking threads: the registry at the accepted head (cached per
//! head), the daemon's soak clock (`state.json`), `events.jsonl` and each model's git history.
//!
//! Every read goes through the dashboard's own read-only `git2::Repository` handles (a small
//! pool), never the controller's; parsed folders come from the controller's shared cache.

use super::trail::{self, TrailInput, TrailRow};
use super::view::CommitMeta;
use crate::audit::Approvals;
use crate::daemon::events::Event;
use crate::daemon::state::Entered;
use crate::daemon::view::StatusView;
use crate::history::HistoryWalker;
use crate::registry::{Cache, Loader, Registry};
use crate::repo::RepoError;
use git2::{Oid, Repository};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use thiserror::Error;

/// Repository handles kept for reuse.
const POOL: usize = 2;
/// Registries kept loaded.
const KEEP_REGISTRIES: usize = 3;
/// The model page reads at most this much of the end of `events.jsonl`.
const EVENTS_TAIL: u64 = 8 << 20;

#[derive(Debug, Error)]
pub enum DataError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// The registry last loaded, and for which (head, registry folder).
struct Snapshot {
    loader: Loader,
    /// (commit, registry folder, registry), oldest first.
    current: Vec<(String, String, Option<Arc<Registry>>)>,
}

/// `state.json`'s soak clock, as last read, with the file's (mtime, length).
type EnteredCache = Option<((SystemTime, u64), Arc<Vec<Entered>>)>;

/// Where the dashboard reads from.
pub struct Sources {
    repo: PathBuf,
    state_dir: PathBuf,
    pool: Mutex<Vec<Repository>>,
    snapshot: Mutex<Snapshot>,
    entered: Mutex<EnteredCache>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sources {
    /// For the daemon watching `repo` (its clone with `--url`), keeping state in `state_dir`,
    /// reading registries through `cache` (the controller's).
    pub fn new(repo: &Path, state_dir: &Path, cache: Cache) -> Self {
        Sources {
            repo: repo.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            snapshot: Mutex::new(Snapshot {
                loader: Loader::with_cache(cache),
                current: Vec::new(),
            }),
            entered: Mutex::new(None),
        }
    }

    /// Run `f` with a pooled repository handle (opened when none is free).
    fn with_repo<T>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, DataError>,
    ) -> Result<T, DataError> {
        let repo = match lock(&self.pool).pop() {
            Some(r) => r,
            None => crate::repo::open(&self.repo)?,
        };
        let out = f(&repo);
        let mut pool = lock(&self.pool);
        if pool.len() < POOL {
            pool.push(repo);
        }
        out
    }

    /// The registry at the status's accepted head (`None` before the first pass, or when
    /// the registry folder is absent there).
    pub fn registry(&self, status: &StatusView) -> Result<Option<Arc<Registry>>, DataError> {
        match status.head.as_deref() {
            Some(head) => self.registry_at(head, &status.registry),
            None => Ok(None),
        }
    }

    /// The registry at `commit` (the few last loaded are kept: the accepted head and the
    /// baselines of held models).
    pub fn registry_at(
        &self,
        commit: &str,
        root: &str,
    ) -> Result<Option<Arc<Registry>>, DataError> {
        let mut snap = lock(&self.snapshot);
        if let Some((_, _, reg)) = snap
            .current
            .iter()
            .find(|(h, r, _)| h == commit && r == root)
        {
            return Ok(reg.clone());
        }
        let oid = Oid::from_str(commit)?;
        let loader = &mut snap.loader;
        let reg = self.with_repo(|repo| match loader.load(repo, oid, root) {
            Ok(r) => Ok(Some(Arc::new(r))),
            Err(RepoError::PathNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        })?;
        if snap.current.len() >= KEEP_REGISTRIES {
            snap.current.remove(0);
        }
        snap.current
            .push((commit.to_owned(), root.to_owned(), reg.clone()));
        Ok(reg)
    }

    /// When the daemon accepted each version into each stage (its soak clock), from
    /// `state.json`; empty when it cannot be read (the pages then leave times out).
    pub fn entered(&self) -> Arc<Vec<Entered>> {
        #[derive(Deserialize)]
        struct OnlyEntered {
            #[serde(default)]
            entered: Vec<Entered>,
        }
        let path = self.state_dir.join("state.json");
        let stamp = std::fs::metadata(&path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut cache = lock(&self.entered);
        if let (Some(s), Some((cached, v))) = (stamp, cache.as_ref()) {
            if s == *cached {
                return v.clone();
            }
        }
        let v = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<OnlyEntered>(&b).ok())
            .map(|o| Arc::new(o.entered))
            .unwrap_or_default();
        if let Some(s) = stamp {
            *cache = Some((s, v.clone()));
        }
        v
    }

    /// Author (`Name <email>`) and subject of each commit that exists.
    pub fn commit_meta<'a>(
        &self,
        commits: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, CommitMeta>, DataError> {
        let commits: Vec<&str> = commits.into_iter().collect();
        if commits.is_empty() {
            return Ok(HashMap::new());
        }
        self.with_repo(|repo| {
            let mut out = HashMap::new();
            for c in commits {
                let Some(commit) = Oid::from_str(c).ok().and_then(|o| repo.find_commit(o).ok())
                else {
                    continue;
                };
                let a = commit.author();
                out.insert(
                    c.to_owned(),
                    CommitMeta {
                        author: format!(
                            "{} <{}>",
                            a.name().unwrap_or("?"),
                            a.email().unwrap_or("?")
                        ),
                        subject: commit.summary().unwrap_or_default().to_owned(),
                    },
                );
            }
            Ok(out)
        })
    }

    /// The daemon's events about `model` from the end of `events.jsonl`, oldest first.
    pub fn model_events(&self, model: &str) -> Vec<Event> {
        let Ok(mut f) = std::fs::File::open(self.state_dir.join("events.jsonl")) else {
            return Vec::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let skip_partial = len > EVENTS_TAIL;
        if skip_partial && f.seek(SeekFrom::Start(len - EVENTS_TAIL)).is_err() {
            return Vec::new();
        }
        let needle = format!("\"model\":{}", serde_json::Value::from(model));
        let mut lines = BufReader::new(f.take(EVENTS_TAIL)).lines();
        if skip_partial {
            let _ = lines.next();
        }
        lines
            .map_while(Result::ok)
            .filter(|l| l.contains(&needle))
            .filter_map(|l| serde_json::from_str::<Event>(&l).ok())
            .filter(|e| e.model.as_deref() == Some(model))
            .collect()
    }

    /// The audit trail of `model`: every landed stage transition on the branch (its tip when
    /// it descends from the accepted head, else the accepted head), newest first.
    pub fn trail(
        &self,
        model: &str,
        status: &StatusView,
        events: &[Event],
    ) -> Result<Vec<TrailRow>, DataError> {
        let Some(accepted) = status.head.as_deref() else {
            return Ok(Vec::new());
        };
        let accepted = Oid::from_str(accepted)?;
        self.with_repo(|repo| {
            let tip = repo
                .find_reference(&format!("refs/heads/{}", status.branch))
                .ok()
                .and_then(|r| r.target())
                .filter(|t| {
                    *t == accepted || repo.graph_descendant_of(*t, accepted).unwrap_or(false)
                })
                .unwrap_or(accepted);
            let root = &status.registry;
            let transitions = HistoryWalker::new().model_history(repo, tip, root, model, None)?;
            let approvals = Approvals::new(repo, tip, root)?.for_events(&transitions)?;
            let reverted_by = reverts(repo, tip)?;
            let mut memo: HashMap<(String, String), bool> = HashMap::new();
            let mut descends = |a: &str, b: &str| -> bool {
                if a == b {
                    return true;
                }
                *memo.entry((a.to_owned(), b.to_owned())).or_insert_with(|| {
                    match (Oid::from_str(a), Oid::from_str(b)) {
                        (Ok(x), Ok(y)) => repo.graph_descendant_of(x, y).unwrap_or(false),
                        _ => false,
                    }
                })
            };
            Ok(trail::trail(
                &TrailInput {
                    model,
                    transitions: &transitions,
                    approvals: &approvals,
                    status,
                    events,
                    reverted_by: &reverted_by,
                },
                &mut descends,
            ))
        })
    }
}

/// Reverted commit -> the commit reverting it, over the first-parent history of `head`.
fn reverts(repo: &Repository, head: Oid) -> Result<HashMap<String, String>, DataError> {
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    walk.simplify_first_parent()?;
    let mut out = HashMap::new();
    for id in walk {
        let id = id?;
        let c = repo.find_commit(id)?;
        if let Some(of) = trail::reverted_commit(c.message().unwrap_or_default()) {
            out.entry(of).or_insert_with(|| id.to_string());
        }
    }
    Ok(out)
}
