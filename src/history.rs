//! Stage transitions from git history: walk a branch's first-parent history and diff each
//! commit's version manifests against its parent. Feeds `baton history`, `soak` and `rollback`.

use crate::manifest::parse_version;
use crate::repo::{join, RepoError};
use chrono::{DateTime, TimeZone, Utc};
use git2::{ObjectType, Oid, Repository, Sort, Tree};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One version's stage change, as landed on the branch by one commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageEvent {
    #[serde(serialize_with = "ser_oid")]
    pub commit: Oid,
    /// Committer time of the commit: when the change landed on the branch.
    pub time: DateTime<Utc>,
    /// `Name <email>` of the commit's author.
    pub author: String,
    pub subject: String,
    pub model: String,
    pub version: String,
    /// Stage before the commit (`None`: the version was registered by it).
    pub from: Option<String>,
    /// Stage after the commit (`None`: the manifest was deleted).
    pub to: Option<String>,
    /// Repository-relative path of the manifest.
    pub path: String,
}

fn ser_oid<S: serde::Serializer>(o: &Oid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&o.to_string())
}

/// Walks first-parent history, caching the stage read from each manifest blob.
#[derive(Default)]
pub struct HistoryWalker {
    stages: HashMap<Oid, Option<String>>,
}

impl HistoryWalker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stage transition of `model` (optionally one `version`) on the first-parent
    /// history of `head`, newest first. `root` is the registry folder.
    pub fn model_history(
        &mut self,
        repo: &Repository,
        head: Oid,
        root: &str,
        model: &str,
        version: Option<&str>,
    ) -> Result<Vec<StageEvent>, RepoError> {
        let dir = join(root, &format!("models/{model}/versions"));
        let mut walk = repo.revwalk()?;
        walk.push(head)?;
        walk.simplify_first_parent()?;
        walk.set_sorting(Sort::TOPOLOGICAL)?;
        let mut out = Vec::new();
        for id in walk {
            let id = id?;
            let commit = repo.find_commit(id)?;
            let after = subtree(repo, &commit.tree()?, &dir)?;
            let before = match commit.parent(0) {
                Ok(p) => subtree(repo, &p.tree()?, &dir)?,
                Err(_) => None,
            };
            if after.as_ref().map(|t| t.id()) == before.as_ref().map(|t| t.id()) {
                continue;
            }
            let a = self.stages_of(repo, after.as_ref(), version)?;
            let b = self.stages_of(repo, before.as_ref(), version)?;
            let mut labels: Vec<&String> = a.keys().chain(b.keys()).collect();
            labels.sort_by(|x, y| crate::names::natural_cmp(x, y));
            labels.dedup();
            for label in labels {
                let to = a.get(label).cloned().flatten();
                let from = b.get(label).cloned().flatten();
                let present = (a.contains_key(label), b.contains_key(label));
                if to == from && present.0 == present.1 {
                    continue;
                }
                let author = commit.author();
                out.push(StageEvent {
                    commit: id,
                    time: to_utc(commit.committer().when()),
                    author: format!(
                        "{} <{}>",
                        author.name().unwrap_or("?"),
                        author.email().unwrap_or("?")
                    ),
                    subject: commit.summary().unwrap_or_default().to_owned(),
                    model: model.to_owned(),
                    version: label.clone(),
                    from: if present.1 { from } else { None },
                    to: if present.0 { to } else { None },
                    path: join(&dir, &format!("{label}.yaml")),
                });
            }
        }
        Ok(out)
    }

    /// Label -> stage (None when the manifest does not parse) of the versions in `tree`.
    fn stages_of(
        &mut self,
        repo: &Repository,
        tree: Option<&Tree>,
        only: Option<&str>,
    ) -> Result<BTreeMap<String, Option<String>>, RepoError> {
        let mut out = BTreeMap::new();
        let Some(tree) = tree else { return Ok(out) };
        for e in tree.iter() {
            let Some(label) = e.name().and_then(|n| n.strip_suffix(".yaml")) else {
                continue;
            };
            if only.is_some_and(|v| v != label) || e.kind() != Some(ObjectType::Blob) {
                continue;
            }
            let stage = match self.stages.get(&e.id()) {
                Some(s) => s.clone(),
                None => {
                    let blob = repo.find_blob(e.id())?;
                    let s = parse_version(blob.content()).ok().map(|m| m.stage);
                    self.stages.insert(e.id(), s.clone());
                    s
                }
            };
            out.insert(label.to_owned(), stage);
        }
        Ok(out)
    }
}

fn subtree<'r>(repo: &'r Repository, tree: &Tree, path: &str) -> Result<Option<Tree<'r>>, RepoError> {
    match tree.get_path(Path::new(path)) {
        Ok(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(e.id())?)),
        Ok(_) => Ok(None),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A git timestamp as UTC.
pub fn to_utc(t: git2::Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.seconds(), 0).single().unwrap_or_default()
}
