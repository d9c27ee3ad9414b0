//! One `models/<name>/` folder at one tree ([`ModelFolder`]) and the one walker that builds it,
//! with the layout rules of docs/registry-format.md decided here for the loader and `check` alike.

use super::cache::Objects;
use super::VersionKey;
use crate::diag::Diagnostic;
use crate::manifest::{parse_model, parse_version, ModelManifest, ParseError, VersionManifest};
use crate::repo::{join, RepoError};
use git2::{ObjectType, Odb, Oid, Repository, TreeEntry};
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

/// The outcome of parsing one version blob.
pub type ParsedBlob = Result<Arc<VersionManifest>, ParseError>;

/// One version manifest file: where it is and what it parsed to. The text is not kept (a
/// second copy of every blob); whoever locates a key reads the blob.
#[derive(Debug, Clone)]
pub struct VersionFile {
    /// The file name without `.yaml`.
    pub label: String,
    /// Repository-relative path.
    pub path: String,
    pub blob: Oid,
    pub parsed: Result<Arc<VersionManifest>, ParseError>,
}

impl VersionFile {
    pub fn manifest(&self) -> Option<&VersionManifest> {
        self.parsed.as_ref().ok().map(|m| m.as_ref())
    }

    /// This file as a parsed version, when it parsed.
    pub fn entry(&self) -> Option<VersionEntry<'_>> {
        let manifest = self.parsed.as_ref().ok()?;
        Some(VersionEntry {
            file: self,
            manifest,
        })
    }
}

/// A version file that parsed: the file and its manifest.
#[derive(Debug, Clone, Copy)]
pub struct VersionEntry<'a> {
    pub file: &'a VersionFile,
    pub manifest: &'a Arc<VersionManifest>,
}

impl Deref for VersionEntry<'_> {
    type Target = VersionFile;
    fn deref(&self) -> &VersionFile {
        self.file
    }
}

/// One `models/<name>/` folder at one tree.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    /// Folder name under `models/`.
    pub name: String,
    /// Repository-relative folder path (`<root>/models/<name>`).
    pub path: String,
    pub tree: Oid,
    pub manifest_blob: Option<Oid>,
    /// `model.yaml`: absent, or what it parsed to (the error keeps its location).
    pub manifest: Option<Result<Arc<ModelManifest>, ParseError>>,
    /// Every `versions/<label>.yaml` with a valid label, parsed or not, in natural order.
    pub versions: BTreeMap<VersionKey, VersionFile>,
    /// Layout problems: names, special entries, files that do not belong.
    pub layout: Vec<Diagnostic>,
    /// Every problem in the folder: layout, parse errors, missing `model.yaml`, names in the
    /// manifests that do not match the folder or file name. Sorted.
    pub diagnostics: Vec<Diagnostic>,
}

impl ModelFolder {
    pub fn version(&self, label: &str) -> Option<&VersionFile> {
        self.versions.get(&VersionKey(label.to_owned()))
    }

    /// The parsed `model.yaml`, when it parsed.
    pub fn model_manifest(&self) -> Option<&Arc<ModelManifest>> {
        self.manifest.as_ref()?.as_ref().ok()
    }

    /// The versions that parsed, in natural order.
    pub fn parsed(&self) -> impl Iterator<Item = VersionEntry<'_>> {
        self.versions.values().filter_map(VersionFile::entry)
    }

    /// Parsed versions currently in `stage`.
    pub fn in_stage<'a>(&'a self, stage: &'a str) -> impl Iterator<Item = &'a VersionFile> + 'a {
        self.versions
            .values()
            .filter(move |v| v.manifest().is_some_and(|m| m.stage == stage))
    }

    pub fn owners(&self) -> &[String] {
        self.model_manifest().map_or(&[], |m| m.owners.as_slice())
    }
}

/// A tree entry under `parent` whose name is not UTF-8: a layout error (docs/registry-format.md).
pub(crate) fn not_utf8(parent: &str, e: &TreeEntry) -> Diagnostic {
    let shown = crate::names::shown_name(e.name_bytes());
    Diagnostic::new(
        join(parent, &shown),
        crate::names::not_utf8_message(e.name_bytes()),
    )
}

/// Symbolic links and submodules are not allowed anywhere in the registry.
pub(crate) fn special_entry(e: &TreeEntry, path: &str) -> Option<Diagnostic> {
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

/// Symbolic links, submodules and names that are not UTF-8 anywhere below `tree` (the parts
/// of a model folder the walk does not read itself, and the registry outside `models/`).
/// With `clean`, trees found clean before are skipped and clean ones remembered.
pub(crate) fn scan_layout(
    repo: &Repository,
    tree: Oid,
    prefix: &str,
    out: &mut Vec<Diagnostic>,
    mut clean: Option<&mut Objects>,
) -> Result<(), RepoError> {
    if clean.as_mut().is_some_and(|c| c.is_clean(tree)) {
        return Ok(());
    }
    let before = out.len();
    for e in repo.find_tree(tree)?.iter() {
        let Some(name) = e.name() else {
            out.push(not_utf8(prefix, &e));
            continue;
        };
        let path = join(prefix, name);
        if let Some(d) = special_entry(&e, &path) {
            out.push(d);
        } else if e.kind() == Some(ObjectType::Tree) {
            scan_layout(repo, e.id(), &path, out, clean.as_deref_mut())?;
        }
    }
    if out.len() == before {
        if let Some(c) = clean {
            c.mark_clean(tree);
        }
    }
    Ok(())
}

/// Read and parse one version blob.
pub(crate) fn parse_version_blob(odb: &Odb, oid: Oid) -> Result<ParsedBlob, RepoError> {
    Ok(parse_version(odb.read(oid)?.data()).map(Arc::new))
}

/// Walk the model folder `name` (tree `tree`, repository-relative `path`): the one walker.
/// `known` answers blobs parsed before; the others are read and parsed. Returns the folder and
/// the number of version blobs parsed.
pub fn walk(
    repo: &Repository,
    odb: &Odb,
    name: &str,
    path: &str,
    tree: Oid,
    known: &dyn Fn(Oid) -> Option<ParsedBlob>,
) -> Result<(ModelFolder, usize), RepoError> {
    let mut layout = Vec::new();
    let mut manifest = None;
    let mut manifest_blob = None;
    let mut files: Vec<(String, String, Oid)> = Vec::new();
    if !crate::names::is_model_name(name) {
        layout.push(Diagnostic::new(
            path,
            format!("model name `{name}` must be a DNS label: lower-case letters, digits and '-', at most 63"),
        ));
    }
    for e in repo.find_tree(tree)?.iter() {
        let Some(ename) = e.name() else {
            layout.push(not_utf8(path, &e));
            continue;
        };
        let epath = join(path, ename);
        if let Some(d) = special_entry(&e, &epath) {
            layout.push(d);
            continue;
        }
        match (ename, e.kind()) {
            ("model.yaml", Some(ObjectType::Blob)) => {
                let blob = repo.find_blob(e.id())?;
                manifest_blob = Some(e.id());
                manifest = Some(parse_model(blob.content()).map(Arc::new));
            }
            ("versions", Some(ObjectType::Tree)) => {
                for v in repo.find_tree(e.id())?.iter() {
                    let Some(vname) = v.name() else {
                        layout.push(not_utf8(&epath, &v));
                        continue;
                    };
                    let vpath = join(&epath, vname);
                    if let Some(d) = special_entry(&v, &vpath) {
                        layout.push(d);
                        continue;
                    }
                    let label = match (vname.strip_suffix(".yaml"), v.kind()) {
                        (Some(l), Some(ObjectType::Blob)) => l,
                        _ => {
                            layout.push(Diagnostic::new(
                                &vpath,
                                "unexpected entry in versions/ (only <version>.yaml files belong here)",
                            ));
                            continue;
                        }
                    };
                    if !crate::names::is_version_label(label) {
                        layout.push(Diagnostic::new(
                            &vpath,
                            format!("version label `{label}` must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,62}}$"),
                        ));
                        continue;
                    }
                    files.push((label.to_owned(), vpath, v.id()));
                }
            }
            ("versions", _) => layout.push(Diagnostic::new(&epath, "`versions` must be a folder")),
            (_, Some(ObjectType::Tree)) => scan_layout(repo, e.id(), &epath, &mut layout, None)?,
            _ => {}
        }
    }

    let mut parsed = 0;
    let mut versions = BTreeMap::new();
    for (label, vpath, oid) in files {
        let result = match known(oid) {
            Some(hit) => hit,
            None => {
                parsed += 1;
                parse_version_blob(odb, oid)?
            }
        };
        versions.insert(
            VersionKey(label.clone()),
            VersionFile {
                label,
                path: vpath,
                blob: oid,
                parsed: result,
            },
        );
    }
    let mut folder = ModelFolder {
        name: name.to_owned(),
        path: path.to_owned(),
        tree,
        manifest_blob,
        manifest,
        versions,
        layout,
        diagnostics: Vec::new(),
    };
    folder.diagnostics = judge(&folder);
    Ok((folder, parsed))
}

/// Every problem of a walked folder: its layout, then parse errors and names in the manifests
/// that do not match the folder or the file name. Sorted.
fn judge(f: &ModelFolder) -> Vec<Diagnostic> {
    let mut out = f.layout.clone();
    let manifest_path = join(&f.path, "model.yaml");
    match &f.manifest {
        Some(Ok(m)) if m.name != f.name => out.push(
            Diagnostic::new(
                &manifest_path,
                format!(
                    "name `{}` does not match the folder name `{}`",
                    m.name, f.name
                ),
            )
            .at(Some(1), Some(1)),
        ),
        Some(Ok(_)) => {}
        Some(Err(e)) => out.push(e.clone().into_diagnostic(&manifest_path)),
        None => out.push(Diagnostic::new(
            &manifest_path,
            "missing: every model folder needs a model.yaml",
        )),
    }
    for v in f.versions.values() {
        match &v.parsed {
            Ok(m) => {
                if m.model != f.name {
                    out.push(
                        Diagnostic::new(
                            &v.path,
                            format!(
                                "model `{}` does not match the folder name `{}`",
                                m.model, f.name
                            ),
                        )
                        .at(Some(1), Some(1)),
                    );
                }
                if m.version != v.label {
                    out.push(Diagnostic::new(
                        &v.path,
                        format!(
                            "version `{}` does not match the file name `{}.yaml`",
                            m.version, v.label
                        ),
                    ));
                }
            }
            Err(e) => out.push(e.clone().into_diagnostic(&v.path)),
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    //! The layout rules where the loader's and `check`'s walkers used to disagree; both now
    //! read a folder through [`walk`], and docs/registry-format.md decides.
    use super::*;
    use crate::check::snapshot::Snapshot;
    use crate::registry::Cache;
    use git2::{FileMode, Signature};

    const MODEL: &str = "name: m\nowners: [alice]\n";
    const V1: &str = "model: m\nversion: \"1\"\nstage: development\nartifact:\n  uri: s3://b/m/1/model.onnx\n  sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\ncreated: 2026-11-20T10:00:00Z\n";

    /// An entry of a folder built for a test: a file (with its mode) or a folder.
    enum E {
        File(&'static [u8], i32),
        Dir(Vec<(Vec<u8>, E)>),
    }

    fn file(text: &'static str) -> E {
        E::File(text.as_bytes(), 0o100644)
    }

    fn link(target: &'static str) -> E {
        E::File(target.as_bytes(), 0o120000)
    }

    fn dir(entries: Vec<(&[u8], E)>) -> E {
        E::Dir(entries.into_iter().map(|(n, e)| (n.to_vec(), e)).collect())
    }

    fn write(repo: &Repository, e: &E) -> (Oid, i32) {
        match e {
            E::File(bytes, mode) => (repo.blob(bytes).unwrap(), *mode),
            E::Dir(entries) => {
                let mut b = repo.treebuilder(None).unwrap();
                for (name, e) in entries {
                    let (oid, mode) = write(repo, e);
                    b.insert(name.clone(), oid, mode).unwrap();
                }
                (b.write().unwrap(), i32::from(FileMode::Tree))
            }
        }
    }

    /// A repository whose one commit holds `models/<name>/` = `folder` (and a policy).
    fn repo_with(name: &str, folder: E) -> (tempfile::TempDir, Repository, Oid) {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init(d.path()).unwrap();
        let root = dir(vec![
            (b"baton.yaml", file("version: 1\n")),
            (b"models", E::Dir(vec![(name.as_bytes().to_vec(), folder)])),
        ]);
        let (tree, _) = write(&repo, &root);
        let sig = Signature::now("t", "t@example.invalid").unwrap();
        let commit = {
            let t = repo.find_tree(tree).unwrap();
            repo.commit(None, &sig, &sig, "registry", &t, &[]).unwrap()
        };
        (d, repo, commit)
    }

    fn model_tree(repo: &Repository, commit: Oid, name: &str) -> Oid {
        let top = repo.find_commit(commit).unwrap().tree().unwrap();
        top.get_path(std::path::Path::new(&format!("models/{name}")))
            .unwrap()
            .id()
    }

    fn walked(repo: &Repository, commit: Oid, name: &str) -> ModelFolder {
        let tree = model_tree(repo, commit, name);
        let odb = repo.odb().unwrap();
        walk(repo, &odb, name, &format!("models/{name}"), tree, &|_| None)
            .unwrap()
            .0
    }

    /// The loader's and the lazy view's folder for `name` (they must be the same).
    fn both(repo: &Repository, commit: Oid, name: &str) -> ModelFolder {
        let reg = crate::registry::Loader::new()
            .load(repo, commit, "")
            .unwrap();
        let eager = reg.models[name].clone();
        // Each through its own cache: both build the folder.
        let mut snap = Snapshot::open(repo, commit, "", &Cache::new()).unwrap();
        let lazy = snap.model(repo, name).unwrap().unwrap();
        assert_eq!(eager.layout, lazy.layout);
        assert_eq!(eager.diagnostics, lazy.diagnostics);
        assert_eq!(eager.manifest, lazy.manifest);
        let labels = |f: &ModelFolder| f.versions.keys().cloned().collect::<Vec<_>>();
        assert_eq!(labels(&eager), labels(&lazy));
        (*lazy).clone()
    }

    fn messages(d: &[Diagnostic]) -> Vec<(String, String)> {
        d.iter()
            .map(|d| (d.file.clone(), d.message.clone()))
            .collect()
    }

    #[test]
    fn a_symlinked_model_yaml_is_a_layout_error_not_a_manifest() {
        // `check`'s walker used to read a symbolic link as `model.yaml` (a blob entry).
        let (_d, repo, c) = repo_with(
            "m",
            dir(vec![
                (b"model.yaml", link("../other/model.yaml")),
                (b"versions", dir(vec![(b"1.yaml", file(V1))])),
            ]),
        );
        let f = both(&repo, c, "m");
        assert!(f.manifest.is_none());
        assert_eq!(
            messages(&f.layout),
            [(
                "models/m/model.yaml".to_owned(),
                "symbolic links are not allowed in the registry".to_owned()
            )]
        );
    }

    #[test]
    fn a_symlink_in_versions_is_reported_as_a_symlink() {
        // `check`'s walker called it "unexpected entry in versions/".
        let (_d, repo, c) = repo_with(
            "m",
            dir(vec![
                (b"model.yaml", file(MODEL)),
                (
                    b"versions",
                    dir(vec![(b"1.yaml", file(V1)), (b"2.yaml", link("1.yaml"))]),
                ),
            ]),
        );
        let f = both(&repo, c, "m");
        assert_eq!(
            messages(&f.layout),
            [(
                "models/m/versions/2.yaml".to_owned(),
                "symbolic links are not allowed in the registry".to_owned()
            )]
        );
        assert_eq!(f.versions.len(), 1);
        assert!(f.version("1").and_then(VersionFile::manifest).is_some());
    }

    #[test]
    fn a_model_name_that_is_not_a_dns_label_is_a_layout_error() {
        // `check`'s walker did not judge the folder name.
        let (_d, repo, c) = repo_with(
            "Bad_Name",
            dir(vec![(
                b"model.yaml",
                file("name: Bad_Name\nowners: [alice]\n"),
            )]),
        );
        let f = walked(&repo, c, "Bad_Name");
        assert_eq!(f.layout.len(), 1, "{:?}", f.layout);
        assert_eq!(f.layout[0].file, "models/Bad_Name");
        assert!(f.layout[0].message.contains("must be a DNS label"));
    }

    #[test]
    fn special_entries_below_other_folders_of_a_model_are_reported() {
        // `check`'s walker read only `model.yaml` and `versions/`.
        let (_d, repo, c) = repo_with(
            "m",
            dir(vec![
                (b"model.yaml", file(MODEL)),
                (b"docs", dir(vec![(b"readme", link("/etc/passwd"))])),
            ]),
        );
        let f = both(&repo, c, "m");
        assert_eq!(
            messages(&f.layout),
            [(
                "models/m/docs/readme".to_owned(),
                "symbolic links are not allowed in the registry".to_owned()
            )]
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_a_layout_error_and_never_a_version() {
        let (_d, repo, c) = repo_with(
            "m",
            dir(vec![
                (b"model.yaml", file(MODEL)),
                (
                    b"versions",
                    dir(vec![(b"1.yaml", file(V1)), (b"2\xff.yaml", file(V1))]),
                ),
            ]),
        );
        let f = both(&repo, c, "m");
        assert_eq!(f.versions.len(), 1);
        assert_eq!(f.layout.len(), 1, "{:?}", f.layout);
        assert!(f.layout[0].file.starts_with("models/m/versions/"));
    }

    #[test]
    fn parse_errors_and_name_mismatches_are_diagnostics_not_layout() {
        let (_d, repo, c) = repo_with(
            "m",
            dir(vec![
                (b"model.yaml", file("name: other\nowners: [alice]\n")),
                (
                    b"versions",
                    dir(vec![(b"1.yaml", file(V1)), (b"2.yaml", file("model: [\n"))]),
                ),
            ]),
        );
        let f = both(&repo, c, "m");
        assert!(f.layout.is_empty());
        assert!(f.version("2").is_some_and(|v| v.parsed.is_err()));
        assert_eq!(f.parsed().count(), 1);
        let files: Vec<&str> = f.diagnostics.iter().map(|d| d.file.as_str()).collect();
        assert_eq!(files, ["models/m/model.yaml", "models/m/versions/2.yaml"]);
    }
}
