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
    /// The author's name alone.
    pub author_name: String,
    /// The author's e-mail alone.
    pub author_email: String,
    pub subject: String,
    pub model: String,
    pub version: String,
    /// Stage before the commit (`None`: the version was registered by it).
    pub from: Option<String>,
    /// Stage after the commit (`None`: the manifest was deleted).
    pub to: Option<String>,
    /// Repository-relative path of the manifest.
    pub path: String,
    /// Number of parents of the commit (2 or more: a merge, whose second parents bring the
    /// reviewed branch).
    pub parents: usize,
}

fn ser_oid<S: serde::Serializer>(o: &Oid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&o.to_string())
}

/// Walks first-parent history, caching the stage read from each manifest blob.
#[derive(Default)]
pub struct HistoryWalker {
    stages: HashMap<Oid, Option<String>>,
}

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
        let dir = join(root, &format!("models/{model}/versions"));
        let mut walk = repo.revwalk()?;
        walk.push(head)?;
        walk.simplify_first_parent()?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        let mut groups: Vec<Vec<StageEvent>> = Vec::new();
        let mut known: Known = BTreeMap::new();
        let mut last_tree: Option<Oid> = None;
        for id in walk {
            let id = id?;
            let commit = repo.find_commit(id)?;
            let tree = subtree(repo, &commit.tree()?, &dir)?;
            let tree_id = tree.as_ref().map(|t| t.id());
            if tree_id == last_tree {
                continue;
            }
            last_tree = tree_id;
            let now = self.stages_of(repo, tree.as_ref(), version)?;
            let changes = diff_known(&mut known, &now);
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
                        model: model.to_owned(),
                        path: join(&dir, &format!("{label}.yaml")),
                        version: label,
                        from,
                        to,
                        parents: commit.parent_count(),
                    })
                    .collect(),
            );
        }
        Ok(groups.into_iter().rev().flatten().collect())
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
            if only.is_some_and(|v| v != label)
                || e.kind() != Some(ObjectType::Blob)
                || e.filemode() == 0o120000
            {
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

/// Update `known` to the files in `now` and return the transitions `(label, from, to)` in
/// natural label order. Unparseable files keep their last known stage.
fn diff_known(
    known: &mut Known,
    now: &BTreeMap<String, Option<String>>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    let gone: Vec<String> = known
        .keys()
        .filter(|l| !now.contains_key(*l))
        .cloned()
        .collect();
    for label in gone {
        if let Some(Some(stage)) = known.remove(&label) {
            out.push((label, Some(stage), None));
        }
    }
    for (label, stage) in now {
        match (known.get(label), stage) {
            (None, None) => {
                known.insert(label.clone(), None);
            }
            (Some(_), None) => {}
            (Some(Some(prev)), Some(s)) if prev == s => {}
            (Some(Some(prev)), Some(s)) => {
                out.push((label.clone(), Some(prev.clone()), Some(s.clone())));
                known.insert(label.clone(), Some(s.clone()));
            }
            (None | Some(None), Some(s)) => {
                out.push((label.clone(), None, Some(s.clone())));
                known.insert(label.clone(), Some(s.clone()));
            }
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

    fn map(items: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        items
            .iter()
            .map(|(l, s)| (l.to_string(), s.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn broken_manifest_keeps_last_stage() {
        let mut known = Known::new();
        let ev = diff_known(&mut known, &map(&[("1", Some("dev"))]));
        assert_eq!(ev, vec![("1".into(), None, Some("dev".into()))]);
        assert!(diff_known(&mut known, &map(&[("1", None)])).is_empty());
        let ev = diff_known(&mut known, &map(&[("1", Some("staging"))]));
        assert_eq!(
            ev,
            vec![("1".into(), Some("dev".into()), Some("staging".into()))]
        );
        let ev = diff_known(&mut known, &map(&[]));
        assert_eq!(ev, vec![("1".into(), Some("staging".into()), None)]);
    }

    #[test]
    fn never_parsed_then_parsed_is_a_registration() {
        let mut known = Known::new();
        assert!(diff_known(&mut known, &map(&[("10", None)])).is_empty());
        let ev = diff_known(&mut known, &map(&[("10", Some("dev")), ("9", Some("dev"))]));
        assert_eq!(ev[0].0, "9");
        assert_eq!(ev[1], ("10".into(), None, Some("dev".into())));
        // Deleting a file that never parsed is not a transition.
        assert!(diff_known(
            &mut known,
            &map(&[("9", Some("dev")), ("10", Some("dev")), ("x", None)])
        )
        .is_empty());
        assert!(
            diff_known(&mut known, &map(&[("9", Some("dev")), ("10", Some("dev"))])).is_empty()
        );
    }
}
