//! The registry at one revision: policy, models and their versions, read from git objects.
//! [`Loader`] builds it with a blob- and tree-keyed cache; [`invariants`] judges it whole.

pub mod invariants;
pub mod load;

pub use load::Loader;

use crate::diag::Diagnostic;
use crate::manifest::{ModelManifest, Policy, VersionManifest};
use git2::Oid;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the registry says at one commit.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The commit this registry was read from.
    pub commit: Oid,
    /// Registry folder, relative to the repository root ("" for the root).
    pub root: String,
    /// Tree of the registry folder.
    pub tree: Oid,
    /// The policy, when `baton.yaml` parsed.
    pub policy: Option<Arc<Policy>>,
    pub policy_blob: Option<Oid>,
    /// Models by name (folder name under `models/`).
    pub models: BTreeMap<String, Arc<ModelEntry>>,
    /// Problems found while reading files that are not part of a model (policy, layout).
    pub diagnostics: Vec<Diagnostic>,
}

/// One `models/<name>/` folder.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub name: String,
    pub manifest: Option<Arc<ModelManifest>>,
    pub manifest_blob: Option<Oid>,
    /// Versions by label (the file name without `.yaml`), in natural order.
    pub versions: BTreeMap<VersionKey, VersionEntry>,
    /// Parse and layout problems in this model's folder.
    pub diagnostics: Vec<Diagnostic>,
}

/// One parsed version manifest and where it came from.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub manifest: Arc<VersionManifest>,
    pub blob: Oid,
    /// Repository-relative path of the manifest file.
    pub path: String,
}

/// A version label ordered naturally ("9" < "10").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionKey(pub String);

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        crate::names::natural_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

// No `Borrow<str>`: BTreeMap lookups by `&str` would compare with str's order, not the
// natural order the map is sorted by, and miss keys ("10" among "9", "10"). Look up with
// `VersionKey(label)` or `Registry::version`.

impl Registry {
    /// Repository-relative path of a registry-relative path.
    pub fn path(&self, rel: &str) -> String {
        crate::repo::join(&self.root, rel)
    }

    pub fn policy_path(&self) -> String {
        self.path("baton.yaml")
    }

    pub fn model(&self, name: &str) -> Option<&ModelEntry> {
        self.models.get(name).map(|m| m.as_ref())
    }

    pub fn version(&self, model: &str, version: &str) -> Option<&VersionEntry> {
        self.models
            .get(model)?
            .versions
            .get(&VersionKey(version.to_owned()))
    }

    /// Every version manifest, in model then natural version order.
    pub fn versions(&self) -> impl Iterator<Item = &VersionEntry> {
        self.models.values().flat_map(|m| m.versions.values())
    }

    /// The versions of `model` currently in `stage`.
    pub fn in_stage<'a>(
        &'a self,
        model: &str,
        stage: &'a str,
    ) -> impl Iterator<Item = &'a VersionEntry> + 'a {
        self.models
            .get(model)
            .into_iter()
            .flat_map(|m| m.versions.values())
            .filter(move |v| v.manifest.stage == stage)
    }

    /// Total number of version manifests.
    pub fn version_count(&self) -> usize {
        self.models.values().map(|m| m.versions.len()).sum()
    }

    /// Every load-time diagnostic (policy, layout, parse), sorted by file and line.
    pub fn load_diagnostics(&self) -> Vec<Diagnostic> {
        let mut all: Vec<Diagnostic> = self.diagnostics.clone();
        for m in self.models.values() {
            all.extend(m.diagnostics.iter().cloned());
        }
        all.sort();
        all
    }

    /// Owners of a model (empty when the model has no parsed `model.yaml`).
    pub fn owners(&self, model: &str) -> &[String] {
        self.models
            .get(model)
            .and_then(|m| m.manifest.as_ref())
            .map(|m| m.owners.as_slice())
            .unwrap_or(&[])
    }
}

pub mod desired;
pub mod files;
