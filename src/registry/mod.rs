//! The registry at one revision: policy, models and their versions, read from git objects.
//! [`Loader`] builds it with a blob- and tree-keyed cache; [`invariants`] judges it whole.

pub mod cache;
pub mod folder;
pub mod invariants;
pub mod load;

pub use cache::Cache;
pub use load::Loader;
pub use store::Store;

use crate::diag::Diagnostic;
use crate::manifest::Policy;
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

/// One `models/<name>/` folder: the same value the lazy view `check` uses hands out.
pub type ModelEntry = folder::ModelFolder;
pub use folder::{ModelFolder, VersionEntry, VersionFile};

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

    /// The parsed version `version` of `model`.
    pub fn version(&self, model: &str, version: &str) -> Option<VersionEntry<'_>> {
        self.models.get(model)?.version(version)?.entry()
    }

    /// Every parsed version manifest, in model then natural version order.
    pub fn versions(&self) -> impl Iterator<Item = VersionEntry<'_>> {
        self.models.values().flat_map(|m| m.parsed())
    }

    /// The versions of `model` currently in `stage`.
    pub fn in_stage<'a>(
        &'a self,
        model: &str,
        stage: &'a str,
    ) -> impl Iterator<Item = VersionEntry<'a>> + 'a {
        self.models
            .get(model)
            .into_iter()
            .flat_map(|m| m.parsed())
            .filter(move |v| v.manifest.stage == stage)
    }

    /// Total number of parsed version manifests.
    pub fn version_count(&self) -> usize {
        self.models.values().map(|m| m.parsed().count()).sum()
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
        self.models.get(model).map(|m| m.owners()).unwrap_or(&[])
    }
}

pub mod desired;
pub mod files;
pub mod store;
