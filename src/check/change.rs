//! The change between two registry snapshots: which version manifests were added, moved,
//! edited or deleted, and which policy files changed. Equal subtrees are skipped by id.

use super::snapshot::{ModelCache, ModelView, Snapshot, VersionFile};
use crate::repo::RepoError;
use git2::Repository;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A model folder on the old side and at head (either may be missing).
pub type ModelPair = (Option<Arc<ModelView>>, Option<Arc<ModelView>>);

/// One version manifest that differs between the old side and head.
#[derive(Debug, Clone)]
pub struct Transition {
    pub model: String,
    pub version: String,
    /// Repository-relative path of the manifest (head side, or old side when deleted).
    pub file: String,
    pub old: Option<VersionFile>,
    pub new: Option<VersionFile>,
}

impl Transition {
    /// Stage on the old side (`None`: new version, or unparsable at base).
    pub fn from(&self) -> Option<&str> {
        self.old
            .as_ref()
            .and_then(|v| v.manifest())
            .map(|m| m.stage.as_str())
    }

    /// Stage at head (`None`: deleted, or unparsable at head).
    pub fn to(&self) -> Option<&str> {
        self.new
            .as_ref()
            .and_then(|v| v.manifest())
            .map(|m| m.stage.as_str())
    }

    pub fn is_delete(&self) -> bool {
        self.new.is_none()
    }

    pub fn is_new(&self) -> bool {
        self.old.is_none()
    }

    /// True when the version changes stage (not a same-stage edit).
    pub fn moves(&self) -> bool {
        self.old.is_none() || self.new.is_none() || self.from() != self.to()
    }
}

/// Everything that differs between the old registry and head.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub transitions: Vec<Transition>,
    /// `baton.yaml` differs (or appeared / disappeared).
    pub policy_changed: bool,
    /// The allowed-signers file (path per base policy) differs.
    pub signers_changed: bool,
    /// Models whose `model.yaml` differs.
    pub model_manifests: Vec<String>,
    /// Models whose folder differs, loaded on both sides: name -> (old, head).
    pub models: BTreeMap<String, ModelPair>,
}

/// Diff `old` against `head`; `signers` is the registry-relative signers path (base policy).
pub fn diff(
    repo: &Repository,
    old: &mut Snapshot,
    head: &mut Snapshot,
    cache: &mut ModelCache,
    signers: Option<&str>,
) -> Result<Change, RepoError> {
    let mut change = Change {
        policy_changed: old.policy_blob != head.policy_blob,
        signers_changed: signers.is_some_and(|s| old.blob(s) != head.blob(s)),
        ..Change::default()
    };
    let old_tree = old.tree.as_ref().map(|t| t.id());
    let head_tree = head.tree.as_ref().map(|t| t.id());
    if old_tree == head_tree {
        return Ok(change);
    }
    let mut names: BTreeMap<String, (Option<git2::Oid>, Option<git2::Oid>)> = BTreeMap::new();
    let mut note = |n: &str| {
        if !names.contains_key(n) {
            names.insert(n.to_owned(), (old.model_tree(n), head.model_tree(n)));
        }
    };
    match (old.models_tree(), head.models_tree()) {
        (Some(a), Some(b)) if a.id() != b.id() => {
            for name in changed_entries(a, b) {
                note(&name);
            }
        }
        (Some(_), Some(_)) => {}
        (a, b) => {
            for t in a.into_iter().chain(b) {
                for e in t.iter() {
                    if let Some(n) = e.name() {
                        note(n);
                    }
                }
            }
        }
    }
    for (name, (a, b)) in names {
        if a == b {
            continue;
        }
        let om = old.model(repo, &name, cache)?;
        let hm = head.model(repo, &name, cache)?;
        if om.as_ref().and_then(|m| m.manifest_blob) != hm.as_ref().and_then(|m| m.manifest_blob) {
            change.model_manifests.push(name.clone());
        }
        let empty = BTreeMap::new();
        let ov = om.as_ref().map_or(&empty, |m| &m.versions);
        let hv = hm.as_ref().map_or(&empty, |m| &m.versions);
        let mut labels: Vec<_> = ov.keys().chain(hv.keys()).cloned().collect();
        labels.sort();
        labels.dedup();
        for label in labels {
            let (o, h) = (ov.get(&label), hv.get(&label));
            if o.map(|v| v.blob) == h.map(|v| v.blob) {
                continue;
            }
            let file = h.or(o).map(|v| v.path.clone()).unwrap_or_default();
            change.transitions.push(Transition {
                model: name.clone(),
                version: label.0.clone(),
                file,
                old: o.cloned(),
                new: h.cloned(),
            });
        }
        change.models.insert(name, (om, hm));
    }
    Ok(change)
}

/// Git's tree order: names compare bytewise, a folder as if its name ended in `/`.
fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {}
        o => return o,
    }
    let end = |s: &[u8], tree: bool| s.get(n).copied().unwrap_or(if tree { b'/' } else { 0 });
    end(a, a_tree).cmp(&end(b, b_tree))
}

/// Names of entries that differ between two sorted trees (added, removed or changed id),
/// by one merge-join pass without loading any subtree.
pub fn changed_entries(a: &git2::Tree, b: &git2::Tree) -> Vec<String> {
    let is_tree = |e: &git2::TreeEntry| e.kind() == Some(git2::ObjectType::Tree);
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let name = |e: &git2::TreeEntry| String::from_utf8_lossy(e.name_bytes()).into_owned();
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => {
                match git_order(x.name_bytes(), is_tree(&x), y.name_bytes(), is_tree(&y)) {
                    Ordering::Less => {
                        out.push(name(&x));
                        i += 1;
                    }
                    Ordering::Greater => {
                        out.push(name(&y));
                        j += 1;
                    }
                    Ordering::Equal => {
                        if x.id() != y.id() || x.filemode() != y.filemode() {
                            out.push(name(&x));
                        }
                        i += 1;
                        j += 1;
                    }
                }
            }
            (Some(x), None) => {
                out.push(name(&x));
                i += 1;
            }
            (None, Some(y)) => {
                out.push(name(&y));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}
