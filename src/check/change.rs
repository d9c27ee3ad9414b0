//! The change between two registry snapshots: which version manifests were added, moved,
//! edited or deleted, which policy and other files changed. Equal subtrees are skipped by id.

use super::snapshot::{ModelView, Snapshot, VersionFile};
use crate::diag::Diagnostic;
use crate::repo::{join, RepoError};
use crate::stage_move::StageMove;
use git2::{ObjectType, Repository, Tree, TreeEntry};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

/// A model folder on the old side and at head (either may be missing).
pub type ModelPair = (Option<Arc<ModelView>>, Option<Arc<ModelView>>);

/// One version manifest that differs between the old side and head.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Model, version, the stage each side parsed to, the manifest's path.
    pub moved: StageMove,
    pub old: Option<VersionFile>,
    pub new: Option<Side>,
}

impl Deref for Transition {
    type Target = StageMove;
    fn deref(&self) -> &StageMove {
        &self.moved
    }
}

/// The head side of a [`Transition`]: the manifest file and its text, read for the files a
/// change touches only (the gates locate keys in it; the shared cache keeps no text).
#[derive(Debug, Clone)]
pub struct Side {
    pub file: VersionFile,
    pub text: Arc<str>,
}

impl Side {
    /// `file` with its text, read from its blob.
    pub fn read(repo: &Repository, file: &VersionFile) -> Result<Side, RepoError> {
        let blob = repo.find_blob(file.blob)?;
        Ok(Side {
            file: file.clone(),
            text: String::from_utf8_lossy(blob.content()).into(),
        })
    }
}

impl Deref for Side {
    type Target = VersionFile;
    fn deref(&self) -> &VersionFile {
        &self.file
    }
}

impl Transition {
    /// `model`'s version `version` at `path`, from `old` to `new` (either may be absent).
    pub fn new(
        model: &str,
        version: &str,
        path: String,
        old: Option<VersionFile>,
        new: Option<Side>,
    ) -> Self {
        let stage = |f: Option<&VersionFile>| f?.manifest().map(|m| m.stage.clone());
        Transition {
            moved: StageMove {
                model: model.to_owned(),
                version: version.to_owned(),
                from: stage(old.as_ref()),
                to: stage(new.as_deref()),
                path,
            },
            old,
            new,
        }
    }

    /// Stage on the old side (`None`: new version, or unparsable at base).
    pub fn from(&self) -> Option<&str> {
        self.moved.from.as_deref()
    }

    /// Stage at head (`None`: deleted, or unparsable at head).
    pub fn to(&self) -> Option<&str> {
        self.moved.to.as_deref()
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
    /// Registry-relative paths of files other than manifests that the change modified or
    /// deleted (a file at the old side that differs at head): in-registry artifacts among
    /// them are judged by the `artifact` rule.
    pub altered_files: Vec<String>,
    /// Layout errors the change brings in: tree entry names that are not UTF-8.
    pub layout: Vec<Diagnostic>,
}

/// Diff `old` against `head`; `signers` is the registry-relative signers path (base policy).
pub fn diff(
    repo: &Repository,
    old: &mut Snapshot,
    head: &mut Snapshot,
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
    let mut walk = Walk {
        root: head.root.clone(),
        leaves: Vec::new(),
        layout: Vec::new(),
    };
    walk_trees(repo, old.tree.as_ref(), head.tree.as_ref(), "", &mut walk)?;
    let mut names: BTreeMap<String, (Option<git2::Oid>, Option<git2::Oid>)> = BTreeMap::new();
    for leaf in &walk.leaves {
        let mut parts = leaf.path.split('/');
        if let (Some("models"), Some(n)) = (parts.next(), parts.next()) {
            if !names.contains_key(n) {
                names.insert(n.to_owned(), (old.model_tree(n), head.model_tree(n)));
            }
        }
        if leaf.old_file && !is_manifest_path(&leaf.path) {
            change.altered_files.push(leaf.path.clone());
        }
    }
    change.layout = walk.layout;
    for (name, (a, b)) in names {
        if a == b {
            continue;
        }
        let om = old.model(repo, &name)?;
        let hm = head.model(repo, &name)?;
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
            let new = h.map(|f| Side::read(repo, f)).transpose()?;
            change
                .transitions
                .push(Transition::new(&name, &label.0, file, o.cloned(), new));
        }
        change.models.insert(name, (om, hm));
    }
    Ok(change)
}

/// Versions whose manifest did not change but whose in-registry artifact did (`refs`: model and
/// version label, as found by the caller at head) become transitions too, with the same file on
/// both sides, so the `artifact` rule judges them.
pub fn add_artifact_changes(
    repo: &Repository,
    old: &mut Snapshot,
    head: &mut Snapshot,
    change: &mut Change,
    refs: &[(String, String)],
) -> Result<(), RepoError> {
    for (model, version) in refs {
        if change
            .transitions
            .iter()
            .any(|t| &t.model == model && &t.version == version)
        {
            continue;
        }
        let hm = head.model(repo, model)?;
        let Some(new) = hm.as_ref().and_then(|m| m.version(version)) else {
            continue;
        };
        let om = old.model(repo, model)?;
        let old_file = om.as_ref().and_then(|m| m.version(version)).cloned();
        change.transitions.push(Transition::new(
            model,
            version,
            new.path.clone(),
            old_file,
            Some(Side::read(repo, new)?),
        ));
        change.models.entry(model.clone()).or_insert((om, hm));
    }
    Ok(())
}

/// `baton.yaml`, `models/<m>/model.yaml` and `models/<m>/versions/<file>` (registry-relative).
fn is_manifest_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    matches!(
        parts.as_slice(),
        ["baton.yaml"] | ["models", _, "model.yaml"] | ["models", _, "versions", _]
    )
}

/// What [`walk_trees`] found: changed non-folder entries and names that are not UTF-8.
struct Walk {
    /// Registry folder, repository-relative (for diagnostics).
    root: String,
    leaves: Vec<Leaf>,
    layout: Vec<Diagnostic>,
}

/// One changed non-folder entry (registry-relative path).
struct Leaf {
    path: String,
    /// A file (not a folder or submodule) was at this path on the old side.
    old_file: bool,
}

/// Walk two registry trees in step, descending only into subtrees whose ids differ; records
/// every changed non-folder entry, and reports new entries whose name is not UTF-8 (without
/// descending into them).
fn walk_trees(
    repo: &Repository,
    a: Option<&Tree>,
    b: Option<&Tree>,
    rel: &str,
    out: &mut Walk,
) -> Result<(), RepoError> {
    let is_tree = |e: &TreeEntry| e.kind() == Some(ObjectType::Tree);
    let (la, lb) = (a.map_or(0, |t| t.len()), b.map_or(0, |t| t.len()));
    let (mut i, mut j) = (0, 0);
    loop {
        let x = a.filter(|_| i < la).and_then(|t| t.get(i));
        let y = b.filter(|_| j < lb).and_then(|t| t.get(j));
        let (x, y) = match (x, y) {
            (None, None) => break,
            (Some(x), None) => {
                i += 1;
                (Some(x), None)
            }
            (None, Some(y)) => {
                j += 1;
                (None, Some(y))
            }
            (Some(x), Some(y)) => {
                match git_order(x.name_bytes(), is_tree(&x), y.name_bytes(), is_tree(&y)) {
                    Ordering::Less => {
                        i += 1;
                        (Some(x), None)
                    }
                    Ordering::Greater => {
                        j += 1;
                        (None, Some(y))
                    }
                    Ordering::Equal => {
                        i += 1;
                        j += 1;
                        if x.id() == y.id() && x.filemode() == y.filemode() {
                            continue;
                        }
                        (Some(x), Some(y))
                    }
                }
            }
        };
        if let Some(y) = &y {
            if y.name().is_none() {
                let parent = join(&out.root, rel);
                out.layout
                    .push(crate::registry::folder::not_utf8(&parent, y));
                continue;
            }
        }
        // An old entry whose name is not UTF-8 is only ever removed here: nothing to judge.
        let Some(name) = y.as_ref().or(x.as_ref()).and_then(|e| e.name()) else {
            continue;
        };
        let path = join(rel, name);
        let subtree = |e: &Option<TreeEntry>| -> Result<Option<Tree>, RepoError> {
            match e.as_ref().filter(|e| is_tree(e)) {
                Some(e) => Ok(Some(repo.find_tree(e.id())?)),
                None => Ok(None),
            }
        };
        let (xt, yt) = (subtree(&x)?, subtree(&y)?);
        if xt.is_some() || yt.is_some() {
            walk_trees(repo, xt.as_ref(), yt.as_ref(), &path, out)?;
        }
        let old_file = x
            .as_ref()
            .is_some_and(|e| e.kind() == Some(ObjectType::Blob));
        let leaf = |e: &Option<TreeEntry>| e.as_ref().is_some_and(|e| !is_tree(e));
        if leaf(&x) || leaf(&y) {
            out.leaves.push(Leaf { path, old_file });
        }
    }
    Ok(())
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

/// Names of the entries that differ between two sorted trees (added, removed, or changed id
/// or mode), by one merge-join pass without loading any subtree. Names that are not UTF-8 are
/// left out (the walkers report them as layout errors).
pub fn changed_entries(a: &Tree, b: &Tree) -> Vec<String> {
    let is_tree = |e: &TreeEntry| e.kind() == Some(ObjectType::Tree);
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let mut push = |e: &TreeEntry| {
        if let Some(n) = e.name() {
            out.push(n.to_owned());
        }
    };
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => {
                match git_order(x.name_bytes(), is_tree(&x), y.name_bytes(), is_tree(&y)) {
                    Ordering::Less => {
                        push(&x);
                        i += 1;
                    }
                    Ordering::Greater => {
                        push(&y);
                        j += 1;
                    }
                    Ordering::Equal => {
                        if x.id() != y.id() || x.filemode() != y.filemode() {
                            push(&x);
                        }
                        i += 1;
                        j += 1;
                    }
                }
            }
            (Some(x), None) => {
                push(&x);
                i += 1;
            }
            (None, Some(y)) => {
                push(&y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}
