//! Stage transitions from git history: walk a branch's first-parent history and diff each
//! commit's version manifests against its parent. Feeds `baton history`, `soak` and `rollback`.

use crate::manifest::parse_version;
use crate::repo::{join, RepoError};
use crate::stage_move::StageMove;
use chrono::{DateTime, TimeZone, Utc};
use git2::{ObjectType, Oid, Repository, Sort, Tree};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

impl std::ops::Deref for StageEvent {
    type Target = StageMove;
    fn deref(&self) -> &StageMove {
        &self.moved
    }
}

/// One version's stage change, as landed on the branch by one commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageEvent {
    #[serde(serialize_with = "ser_oid")]
    pub commit: Oid,
    /// Committer time of the commit: when the change landed on the branch.
    pub time: DateTime<Utc>,
    /// `Name <email>` of the commit's author.
    pub author: String,
    /// The author's name alone.
    pub author_name: String,
    /// The author's e-mail alone.
    pub author_email: String,
    pub subject: String,
    /// Model, version, stage before the commit (`None`: the version was registered by it)
    /// and after (`None`: the manifest was deleted), the manifest's path.
    #[serde(flatten)]
    pub moved: StageMove,
    /// Number of parents of the commit (2 or more: a merge, whose second parents bring the
    /// reviewed branch).
    pub parents: usize,
}

fn ser_oid<S: serde::Serializer>(o: &Oid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&o.to_string())
}

/// Walks first-parent history, caching the stage read from each manifest blob, each commit's
/// `models/` tree and which model folders differ between two `models/` trees, so walking the
/// history of one model inflates a big `models/` tree once per commit per process, not once
/// per commit per model asked (a daemon judging a burst asks about a different model each time).
#[derive(Default)]
pub struct HistoryWalker {
    stages: HashMap<Oid, Option<String>>,
    /// commit -> its registry's `models/` tree (None: absent), per registry root.
    models_trees: HashMap<(Oid, String), Option<Oid>>,
    /// (older `models/` tree, newer) -> names of the model folders that differ.
    touched: HashMap<(Oid, Oid), std::sync::Arc<std::collections::HashSet<String>>>,
}

/// Cache sizes past which the walker's commit and tree caches are emptied.
const WALK_CACHE_LIMIT: usize = 200_000;

/// What the walk knows about one version file: present, with its last stage that parsed
/// (`None` while it never parsed).
type Known = BTreeMap<String, Option<String>>;

impl HistoryWalker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stage transition of `model` (optionally one `version`) on the first-parent
    /// history of `head`, newest commit first (versions of one commit in natural order).
    /// `root` is the registry folder.
    ///
    /// A manifest that does not parse at some commit keeps its last stage that did: a broken
    /// edit followed by its fix yields one transition (or none), never a bogus `(deleted)`.
    pub fn model_history(
        &mut self,
        repo: &Repository,
        head: Oid,
        root: &str,
        model: &str,
        version: Option<&str>,
    ) -> Result<Vec<StageEvent>, RepoError> {
        Ok(self
            .model_history_and_labels(repo, head, root, model, version)?
            .0)
    }

    /// [`Self::model_history`], plus every version label whose `<label>.yaml` file existed at
    /// some commit of that first-parent history (parsed or not): labels are never reused.
    pub fn model_history_and_labels(
        &mut self,
        repo: &Repository,
        head: Oid,
        root: &str,
        model: &str,
        version: Option<&str>,
    ) -> Result<(Vec<StageEvent>, std::collections::BTreeSet<String>), RepoError> {
        let mut labels = std::collections::BTreeSet::new();
        let dir = join(root, &format!("models/{model}/versions"));
        let mut walk = repo.revwalk()?;
        walk.push(head)?;
        walk.simplify_first_parent()?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        let mut groups: Vec<Vec<StageEvent>> = Vec::new();
        let mut known: Known = BTreeMap::new();
        let mut last_tree: Option<Oid> = None;
        let mut prev: Vec<(String, Oid)> = Vec::new();
        let mut prev_models: Option<Option<Oid>> = None;
        if self.models_trees.len() > WALK_CACHE_LIMIT || self.touched.len() > WALK_CACHE_LIMIT {
            self.models_trees.clear();
            self.touched.clear();
        }
        for id in walk {
            let id = id?;
            let commit = repo.find_commit(id)?;
            // Skip commits whose `models/` tree did not change this model's folder.
            let models = self.models_tree(repo, &commit, root)?;
            let relevant = match (prev_models, models) {
                (None, _) => true,
                (Some(a), b) if a == b => false,
                (Some(Some(a)), Some(b)) => self.touched(repo, a, b)?.contains(model),
                _ => true,
            };
            prev_models = Some(models);
            if !relevant {
                continue;
            }
            let tree = subtree(repo, &commit.tree()?, &dir)?;
            let tree_id = tree.as_ref().map(|t| t.id());
            if tree_id == last_tree {
                continue;
            }
            last_tree = tree_id;
            let cur = manifest_entries(tree.as_ref(), version);
            for (name, _) in &cur {
                if let Some(label) = name.strip_suffix(".yaml") {
                    if !labels.contains(label) {
                        labels.insert(label.to_owned());
                    }
                }
            }
            let mut changed = Vec::new();
            for (label, blob) in changed_entries(&prev, &cur) {
                let stage = match blob {
                    Some(oid) => Some(self.stage_of(repo, oid)?),
                    None => None,
                };
                changed.push((label, stage));
            }
            prev = cur;
            let changes = apply_changes(&mut known, changed);
            if changes.is_empty() {
                continue;
            }
            let author = commit.author();
            let name = author.name().unwrap_or("?").to_owned();
            let email = author.email().unwrap_or("?").to_owned();
            let subject = commit.summary().unwrap_or_default().to_owned();
            let time = to_utc(commit.committer().when());
            groups.push(
                changes
                    .into_iter()
                    .map(|(label, from, to)| StageEvent {
                        commit: id,
                        time,
                        author: format!("{name} <{email}>"),
                        author_name: name.clone(),
                        author_email: email.clone(),
                        subject: subject.clone(),
                        moved: StageMove {
                            model: model.to_owned(),
                            path: join(&dir, &format!("{label}.yaml")),
                            version: label,
                            from,
                            to,
                        },
                        parents: commit.parent_count(),
                    })
                    .collect(),
            );
        }
        Ok((groups.into_iter().rev().flatten().collect(), labels))
    }

    /// The `models/` tree of the registry at `root` in `commit` (cached by commit).
    fn models_tree(
        &mut self,
        repo: &Repository,
        commit: &git2::Commit,
        root: &str,
    ) -> Result<Option<Oid>, RepoError> {
        let key = (commit.id(), root.to_owned());
        if let Some(hit) = self.models_trees.get(&key) {
            return Ok(*hit);
        }
        let t = subtree(repo, &commit.tree()?, &join(root, "models"))?.map(|t| t.id());
        self.models_trees.insert(key, t);
        Ok(t)
    }

    /// The model folders that differ between two `models/` trees (cached by the pair).
    fn touched(
        &mut self,
        repo: &Repository,
        a: Oid,
        b: Oid,
    ) -> Result<std::sync::Arc<std::collections::HashSet<String>>, RepoError> {
        if let Some(hit) = self.touched.get(&(a, b)) {
            return Ok(hit.clone());
        }
        let (ta, tb) = (repo.find_tree(a)?, repo.find_tree(b)?);
        let set: std::collections::HashSet<String> =
            crate::check::change::changed_entries(&ta, &tb)
                .into_iter()
                .collect();
        let set = std::sync::Arc::new(set);
        self.touched.insert((a, b), set.clone());
        Ok(set)
    }

    /// The stage in a manifest blob (None when it does not parse), cached by blob id.
    fn stage_of(&mut self, repo: &Repository, blob: Oid) -> Result<Option<String>, RepoError> {
        if let Some(s) = self.stages.get(&blob) {
            return Ok(s.clone());
        }
        let b = repo.find_blob(blob)?;
        let s = parse_version(b.content()).ok().map(|m| m.stage);
        self.stages.insert(blob, s.clone());
        Ok(s)
    }
}

/// `(file name, blob id)` of the `<label>.yaml` regular files in `tree`, in tree order.
fn manifest_entries(tree: Option<&Tree>, only: Option<&str>) -> Vec<(String, Oid)> {
    let Some(tree) = tree else {
        return Vec::new();
    };
    tree.iter()
        .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000)
        .filter_map(|e| {
            let name = e.name()?;
            let label = name.strip_suffix(".yaml")?;
            if only.is_some_and(|v| v != label) {
                return None;
            }
            Some((name.to_owned(), e.id()))
        })
        .collect()
}

/// Labels whose file was added or changed (`Some(blob)`) or removed (`None`) between two
/// entry lists in tree order (merge-join on the file name).
fn changed_entries(prev: &[(String, Oid)], cur: &[(String, Oid)]) -> Vec<(String, Option<Oid>)> {
    let label = |n: &str| n.strip_suffix(".yaml").unwrap_or(n).to_owned();
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < prev.len() || j < cur.len() {
        let ord = match (prev.get(i), cur.get(j)) {
            (Some(a), Some(b)) => a.0.as_bytes().cmp(b.0.as_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                out.push((label(&prev[i].0), None));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push((label(&cur[j].0), Some(cur[j].1)));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if prev[i].1 != cur[j].1 {
                    out.push((label(&cur[j].0), Some(cur[j].1)));
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Apply one commit's changed files to `known` and return the transitions `(label, from, to)`
/// in natural label order. A file is `None` when removed, else its stage (`None` when it does
/// not parse: it keeps its last known stage).
fn apply_changes(
    known: &mut Known,
    changed: Vec<(String, Option<Option<String>>)>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    for (label, now) in changed {
        match now {
            None => {
                if let Some(Some(stage)) = known.remove(&label) {
                    out.push((label, Some(stage), None));
                }
            }
            Some(None) => {
                known.entry(label).or_insert(None);
            }
            Some(Some(s)) => match known.get(&label) {
                Some(Some(prev)) if *prev == s => {}
                Some(Some(prev)) => {
                    out.push((label.clone(), Some(prev.clone()), Some(s.clone())));
                    known.insert(label, Some(s));
                }
                None | Some(None) => {
                    out.push((label.clone(), None, Some(s.clone())));
                    known.insert(label, Some(s));
                }
            },
        }
    }
    out.sort_by(|a, b| crate::names::natural_cmp(&a.0, &b.0));
    out
}

/// Every `<label>.yaml` name that ever appeared in folder `dir` on the first-parent history of
/// `head` (so `register` never reuses the label of a deleted version).
pub fn labels_ever(
    repo: &Repository,
    head: Oid,
    dir: &str,
) -> Result<std::collections::BTreeSet<String>, RepoError> {
    let mut out = std::collections::BTreeSet::new();
    let mut seen_trees = std::collections::HashSet::new();
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    walk.simplify_first_parent()?;
    for id in walk {
        let commit = repo.find_commit(id?)?;
        let Some(tree) = subtree(repo, &commit.tree()?, dir)? else {
            continue;
        };
        if !seen_trees.insert(tree.id()) {
            continue;
        }
        for e in tree.iter() {
            if let Some(label) = e.name().and_then(|n| n.strip_suffix(".yaml")) {
                out.insert(label.to_owned());
            }
        }
    }
    Ok(out)
}

fn subtree<'r>(
    repo: &'r Repository,
    tree: &Tree,
    path: &str,
) -> Result<Option<Tree<'r>>, RepoError> {
    match tree.get_path(Path::new(path)) {
        Ok(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(e.id())?)),
        Ok(_) => Ok(None),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A git timestamp as UTC.
pub fn to_utc(t: git2::Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.seconds(), 0)
        .single()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: Option<&str>) -> Option<Option<String>> {
        Some(s.map(str::to_owned))
    }

    #[test]
    fn broken_manifest_keeps_last_stage() {
        let mut known = Known::new();
        let ev = apply_changes(&mut known, vec![("1".into(), st(Some("dev")))]);
        assert_eq!(ev, vec![("1".into(), None, Some("dev".into()))]);
        assert!(apply_changes(&mut known, vec![("1".into(), st(None))]).is_empty());
        let ev = apply_changes(&mut known, vec![("1".into(), st(Some("staging")))]);
        assert_eq!(
            ev,
            vec![("1".into(), Some("dev".into()), Some("staging".into()))]
        );
        let ev = apply_changes(&mut known, vec![("1".into(), None)]);
        assert_eq!(ev, vec![("1".into(), Some("staging".into()), None)]);
    }

    #[test]
    fn never_parsed_then_parsed_is_a_registration() {
        let mut known = Known::new();
        assert!(apply_changes(&mut known, vec![("10".into(), st(None))]).is_empty());
        let ev = apply_changes(
            &mut known,
            vec![
                ("10".into(), st(Some("dev"))),
                ("9".into(), st(Some("dev"))),
            ],
        );
        assert_eq!(ev[0].0, "9");
        assert_eq!(ev[1], ("10".into(), None, Some("dev".into())));
        // Deleting a file that never parsed is not a transition.
        assert!(apply_changes(&mut known, vec![("x".into(), st(None))]).is_empty());
        assert!(apply_changes(&mut known, vec![("x".into(), None)]).is_empty());
    }

    #[test]
    fn merge_join_in_tree_order() {
        let o = |n: u8| Oid::from_bytes(&[n; 20]).unwrap();
        // Tree order is bytewise on the file name: "1.0.yaml" < "1.yaml" < "10.yaml".
        let prev = vec![
            ("1.0.yaml".to_owned(), o(1)),
            ("1.yaml".to_owned(), o(2)),
            ("2.yaml".to_owned(), o(3)),
        ];
        let cur = vec![
            ("1.yaml".to_owned(), o(9)),
            ("10.yaml".to_owned(), o(4)),
            ("2.yaml".to_owned(), o(3)),
        ];
        assert_eq!(
            changed_entries(&prev, &cur),
            vec![
                ("1.0".to_owned(), None),
                ("1".to_owned(), Some(o(9))),
                ("10".to_owned(), Some(o(4))),
            ]
        );
    }
}
