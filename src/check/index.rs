//! Registry-wide facts a change can depend on beyond the folders it touches, kept per model
//! tree id: which versions `require` which (the reverse scan), and which in-registry artifacts.

use super::gates::Dependent;
use super::snapshot::Snapshot;
use crate::manifest::parse_version;
use crate::registry::invariants::{artifact_location, ArtifactLocation};
use git2::{ObjectType, Odb, Oid, Repository, Tree};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// One version of a model folder that requires another model's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub version: String,
    /// The required model and version.
    pub requires: (String, String),
}

/// Trees kept in memory before the index starts over (bounds a long-running daemon).
const MAX_TREES: usize = 200_000;

/// The reverse-`requires` index: per model tree, its versions that carry `requires`.
/// Kept in memory and in `<git dir>/baton/requires-index`, so only model folders not seen
/// before are read.
#[derive(Default)]
pub struct RequiresIndex {
    trees: HashMap<Oid, Arc<Vec<Requirement>>>,
    disk_read: bool,
    /// Model folders scanned since the disk form was last written.
    unsaved: usize,
    /// Manifests read and parsed by scans so far (tests and benchmarks).
    pub parsed: usize,
}

/// Scanned model folders that make rewriting the disk form worth it: a daemon judging one
/// commit after another scans one or two folders per commit, which a later process rescans
/// cheaply, while the whole index is rewritten (and fsynced) each time it is saved.
const SAVE_AFTER: usize = 256;

impl RequiresIndex {
    /// The versions at `head` that require one of `wanted` (model, version).
    pub fn dependents(
        &mut self,
        repo: &Repository,
        head: &Snapshot,
        wanted: &BTreeSet<(String, String)>,
    ) -> Result<Vec<Dependent>, git2::Error> {
        let disk = index_path(repo);
        if !self.disk_read {
            self.disk_read = true;
            if let Ok(text) = std::fs::read_to_string(&disk) {
                let found = disk::parse(&text);
                if self.trees.is_empty() {
                    self.trees = found;
                } else {
                    self.trees.extend(found);
                }
            }
        }
        let Some(models) = head.models_tree() else {
            return Ok(Vec::new());
        };
        let prefix = head.path("models");
        // Model folders not seen before, scanned (on several threads when there are many).
        let todo: Vec<Oid> = models
            .iter()
            .filter(|e| e.kind() == Some(ObjectType::Tree) && !self.trees.contains_key(&e.id()))
            .map(|e| e.id())
            .collect();
        self.unsaved += todo.len();
        let scanned = self.unsaved >= SAVE_AFTER || (!todo.is_empty() && !disk.exists());
        for (tree, list, parsed) in scan_trees(repo, &todo)? {
            self.parsed += parsed;
            self.trees.insert(tree, Arc::new(list));
        }
        let mut out = Vec::new();
        for e in models.iter() {
            // A folder whose name is not UTF-8 is a layout error, never a model.
            let (Some(model), Some(list)) = (e.name(), self.trees.get(&e.id())) else {
                continue;
            };
            for r in list.iter().filter(|r| wanted.contains(&r.requires)) {
                out.push(Dependent {
                    path: format!("{prefix}/{model}/versions/{}.yaml", r.version),
                    model: model.to_owned(),
                    version: r.version.clone(),
                    requires: r.requires.clone(),
                });
            }
        }
        if scanned {
            // Keep this head's model folders, durably; best effort (a read-only repository
            // keeps the in-memory index only).
            let current: Vec<(Oid, Arc<Vec<Requirement>>)> = models
                .iter()
                .filter_map(|e| Some((e.id(), self.trees.get(&e.id())?.clone())))
                .collect();
            match disk::write(&disk, &current) {
                Ok(()) => self.unsaved = 0,
                Err(err) => {
                    tracing::debug!(path = %disk.display(), %err, "requires index not written")
                }
            }
            if self.trees.len() > MAX_TREES {
                self.trees = current.into_iter().collect();
            }
        }
        Ok(out)
    }
}

/// Below this many model folders to scan, work on the calling thread only.
const PARALLEL_THRESHOLD: usize = 256;

/// Scan model folders for `requires`: (tree, its requirements, manifests parsed). Many
/// folders are split in contiguous runs over a few threads, each with its own repository
/// handle (reading the pack in order, as it was written).
fn scan_trees(
    repo: &Repository,
    todo: &[Oid],
) -> Result<Vec<(Oid, Vec<Requirement>, usize)>, git2::Error> {
    let scan_run = |r: &Repository, run: &[Oid]| -> Result<Vec<_>, git2::Error> {
        let odb = r.odb()?;
        run.iter()
            .map(|&t| scan_tree(r, &odb, t).map(|(list, parsed)| (t, list, parsed)))
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    if todo.len() < PARALLEL_THRESHOLD || threads < 2 {
        return scan_run(repo, todo);
    }
    let git_dir = repo.path().to_path_buf();
    let runs: Vec<&[Oid]> = todo.chunks(todo.len().div_ceil(threads)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = runs[1..]
            .iter()
            .map(|run| {
                let git_dir = &git_dir;
                s.spawn(move || scan_run(&Repository::open(git_dir)?, run))
            })
            .collect();
        let mut all = scan_run(repo, runs[0])?;
        for h in handles {
            all.extend(h.join().expect("requires scan thread panicked")?);
        }
        Ok(all)
    })
}

/// The `requires` entries of one model folder's versions, parsing every manifest that
/// [`may_require`] cannot rule out; also returns how many were parsed.
fn scan_tree(
    repo: &Repository,
    odb: &Odb,
    tree: Oid,
) -> Result<(Vec<Requirement>, usize), git2::Error> {
    let mut out = Vec::new();
    let mut parsed = 0;
    for (label, blob) in version_blobs(repo, tree)? {
        let obj = odb.read(blob)?;
        if !may_require(obj.data()) {
            continue;
        }
        parsed += 1;
        let Ok(m) = parse_version(obj.data()) else {
            continue;
        };
        for (rm, rv) in &m.requires {
            out.push(Requirement {
                version: label.clone(),
                requires: (rm.clone(), rv.clone()),
            });
        }
    }
    Ok((out, parsed))
}

/// Whether a manifest's bytes may parse to a non-empty `requires`; `false` only when that is
/// impossible, so skipping such a manifest never hides a requirement.
///
/// Why this is sound: a manifest parses only as UTF-8 text (`parse_version` rejects anything
/// else), and `requires` is a key of the top-level mapping (serde reads a struct only from a
/// YAML mapping, and matches the key's scalar value against the field name exactly; there are
/// no aliases for it, and merge keys are not applied). A YAML scalar can spell the value
/// `requires` without containing those eight bytes only through an escape of a
/// double-quoted scalar (`"\x72equires"`, `"req\u0075ires"`, an escaped line break
/// `"requ\<newline>ires"`), all of which need a backslash. Plain and single-quoted scalars
/// and block scalars have no escapes, and their line folding only ever inserts a space or a
/// line feed, never joins two pieces; tags, anchors and aliases never change a scalar's
/// value (an alias repeats an anchored node written out in the same document). Other
/// encodings are rejected as not UTF-8, and a UTF-16 text of an ASCII key holds NUL bytes;
/// we also keep any text with a NUL or a byte-order mark, to stay sound should the parser
/// ever decode such input. So: no `requires`, no backslash, no NUL, no BOM => no
/// requirement.
pub fn may_require(data: &[u8]) -> bool {
    // Bytes that stop the scan: `r` (maybe `requires`), a backslash, NUL, and the first byte
    // of a byte-order mark (UTF-8 EF BB BF; UTF-16 FE FF / FF FE).
    const STOP: [bool; 256] = {
        let mut t = [false; 256];
        t[b'r' as usize] = true;
        t[b'\\' as usize] = true;
        t[0] = true;
        t[0xEF] = true;
        t[0xFE] = true;
        t[0xFF] = true;
        t
    };
    let mut rest = data;
    while let Some(p) = rest.iter().position(|&b| STOP[b as usize]) {
        let tail = &rest[p..];
        let hit = match tail[0] {
            b'r' => tail.starts_with(b"requires"),
            0xEF => tail.starts_with(&[0xEF, 0xBB, 0xBF]),
            _ => true,
        };
        if hit {
            return true;
        }
        rest = &tail[1..];
    }
    false
}

/// The `<label>.yaml` blobs of a model folder's `versions/` (other entries are layout errors
/// reported elsewhere).
fn version_blobs(repo: &Repository, tree: Oid) -> Result<Vec<(String, Oid)>, git2::Error> {
    let t = repo.find_tree(tree)?;
    let Some(vs) = t
        .get_name("versions")
        .filter(|e| e.kind() == Some(ObjectType::Tree))
    else {
        return Ok(Vec::new());
    };
    let vt: Tree = repo.find_tree(vs.id())?;
    Ok(vt
        .iter()
        .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000)
        .filter_map(|e| Some((e.name()?.strip_suffix(".yaml")?.to_owned(), e.id())))
        .collect())
}

fn index_path(repo: &Repository) -> PathBuf {
    repo.path().join("baton").join("requires-index")
}

/// The registry-relative files of an in-registry artifact at `rel`: `rel` itself, or each
/// listed file of a directory artifact (`rel/<path>`).
pub fn artifact_paths(rel: &str, a: &crate::manifest::version::Artifact) -> Vec<String> {
    match &a.files {
        None => vec![rel.to_owned()],
        Some(files) => files.iter().map(|f| format!("{rel}/{}", f.path)).collect(),
    }
}

/// One version whose artifact is a file in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    pub version: String,
    pub stage: String,
    /// Registry-relative, normalised path of the artifact.
    pub path: String,
}

/// Per model tree: its versions whose artifact lives in the registry (every manifest parsed;
/// in memory only, since a change touching in-registry files other than manifests is rare).
#[derive(Default)]
pub struct ArtifactIndex {
    trees: HashMap<Oid, Arc<Vec<ArtifactRef>>>,
}

impl ArtifactIndex {
    /// (model, version, stage) of the versions at `head` whose artifact is one of `paths`
    /// (registry-relative).
    pub fn referencing(
        &mut self,
        repo: &Repository,
        head: &Snapshot,
        paths: &BTreeSet<String>,
    ) -> Result<Vec<(String, ArtifactRef)>, git2::Error> {
        let Some(models) = head.models_tree() else {
            return Ok(Vec::new());
        };
        if self.trees.len() > MAX_TREES {
            self.trees.clear();
        }
        let odb = repo.odb()?;
        let mut out = Vec::new();
        for e in models.iter() {
            let (Some(model), Some(ObjectType::Tree)) = (e.name(), e.kind()) else {
                continue;
            };
            let list = match self.trees.get(&e.id()) {
                Some(hit) => hit.clone(),
                None => {
                    let mut list = Vec::new();
                    for (label, blob) in version_blobs(repo, e.id())? {
                        let Ok(m) = parse_version(odb.read(blob)?.data()) else {
                            continue;
                        };
                        if let Ok(ArtifactLocation::Registry(path)) =
                            artifact_location(&m.artifact.uri)
                        {
                            // A directory artifact is referenced through each of its files.
                            for path in artifact_paths(&path, &m.artifact) {
                                list.push(ArtifactRef {
                                    version: label.clone(),
                                    stage: m.stage.clone(),
                                    path,
                                });
                            }
                        }
                    }
                    let list = Arc::new(list);
                    self.trees.insert(e.id(), list.clone());
                    list
                }
            };
            for r in list.iter().filter(|r| paths.contains(&r.path)) {
                out.push((model.to_owned(), r.clone()));
            }
        }
        Ok(out)
    }
}

/// The on-disk form of the reverse-`requires` index: a format line, then per model tree a
/// line `<tree id> <JSON list of [version, model, version]>`. Anything else (an older format,
/// a torn file) reads as empty, so the index is rebuilt rather than trusted.
mod disk {
    use super::Requirement;
    use git2::Oid;
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;

    /// Version 2: built by parsing every manifest that may carry `requires`. Version 1 files
    /// (a text pre-filter that could miss a key) are never read.
    const HEADER: &str = "baton requires-index 2";

    pub fn parse(text: &str) -> HashMap<Oid, Arc<Vec<Requirement>>> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return HashMap::new();
        }
        let mut out = HashMap::with_capacity(text.len() / 48);
        let empty: Arc<Vec<Requirement>> = Arc::new(Vec::new());
        for line in lines {
            let Some((id, list)) = line.split_once(' ') else {
                return HashMap::new();
            };
            let Ok(id) = Oid::from_str(id) else {
                return HashMap::new();
            };
            if list == "[]" {
                // Most model folders require nothing.
                out.insert(id, empty.clone());
                continue;
            }
            let Ok(list) = serde_json::from_str::<Vec<(String, String, String)>>(list) else {
                return HashMap::new();
            };
            let list = list
                .into_iter()
                .map(|(version, m, v)| Requirement {
                    version,
                    requires: (m, v),
                })
                .collect();
            out.insert(id, Arc::new(list));
        }
        out
    }

    pub fn render(entries: &[(Oid, Arc<Vec<Requirement>>)]) -> String {
        let mut text = String::with_capacity(entries.len() * 48 + HEADER.len() + 1);
        text.push_str(HEADER);
        text.push('\n');
        for (id, list) in entries {
            let rows: Vec<(&str, &str, &str)> = list
                .iter()
                .map(|r| {
                    (
                        r.version.as_str(),
                        r.requires.0.as_str(),
                        r.requires.1.as_str(),
                    )
                })
                .collect();
            text.push_str(&id.to_string());
            text.push(' ');
            text.push_str(&serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into()));
            text.push('\n');
        }
        text
    }

    /// Write durably: a uniquely named temp file, fsync, rename, fsync the folder.
    pub fn write(path: &Path, entries: &[(Oid, Arc<Vec<Requirement>>)]) -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        crate::fsutil::atomic_write(path, render(entries).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (xorshift64*), so the test needs no crate and every
    /// run checks the same cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[(self.next() % xs.len() as u64) as usize]
        }
    }

    /// Spellings of a key, and whether YAML reads each as `requires`.
    const KEYS: &[(&str, bool)] = &[
        ("requires:", true),
        ("requires :", true),
        ("\"requires\":", true),
        ("'requires':", true),
        ("? requires\n:", true),
        ("\"\\x72equires\":", true),
        ("\"req\\u0075ires\":", true),
        ("? \"requ\\\n  ires\"\n:", true),
        ("\"\\U00000072equires\":", true),
        ("!!str requires:", true),
        ("&k requires:", true),
        ("requ ires:", false),
        ("'requ\n  ires':", false),
        ("Requires:", false),
        ("requirements:", false),
    ];

    const VALUES: &[&str] = &[
        " {feature-encoder: \"7\"}",
        "\n  feature-encoder: \"7\"",
        " {\"feature-encoder\": 7}",
        " {}",
        " null",
        " {\"\\x66e\": \"1\"}",
    ];

    /// A random version manifest: block or flow style, any field order, a random spelling
    /// of `requires` (or none), random comments and quoting.
    fn manifest(rng: &mut Rng) -> String {
        let mut fields: Vec<String> = vec![
            "model: fraud-detector".into(),
            rng.pick(&["version: \"4\"", "version: 4", "'version': '4'"])
                .into(),
            rng.pick(&[
                "stage: staging",
                "\"stage\": \"production\"",
                "stage: 'dev'",
            ])
            .into(),
            format!(
                "artifact: {{uri: {}, sha256: {}}}",
                rng.pick(&["artifacts/m/4/model.onnx", "s3://b/m/4", "\"a\\\\b\""]),
                "0".repeat(64)
            ),
            "created: 2026-11-20T10:00:00Z".into(),
        ];
        if !rng.next().is_multiple_of(4) {
            let key = KEYS[(rng.next() % KEYS.len() as u64) as usize].0;
            fields.push(format!("{key}{}", rng.pick(VALUES)));
        }
        if rng.next().is_multiple_of(3) {
            fields.push("lineage: {note: \"requires review\"}".into());
        }
        if rng.next().is_multiple_of(5) {
            fields.push("# requires nothing".into());
        }
        for i in (1..fields.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            fields.swap(i, j);
        }
        let mut text = fields.join("\n");
        if rng.next().is_multiple_of(7) {
            text = format!("\u{FEFF}{text}");
        }
        text.push('\n');
        text
    }

    #[test]
    fn the_filter_never_skips_a_manifest_that_has_requirements() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut with_requires, mut escaped, mut skipped) = (0, 0, 0);
        for _ in 0..20_000 {
            let text = manifest(&mut rng);
            let parsed = parse_version(text.as_bytes());
            let has = parsed.as_ref().is_ok_and(|m| !m.requires.is_empty());
            if has {
                with_requires += 1;
                if !text.contains("requires") {
                    escaped += 1;
                }
            }
            if !may_require(text.as_bytes()) {
                skipped += 1;
                assert!(!has, "skipped a manifest with requirements:\n{text}");
            }
        }
        // The cases are meaningful: many with requirements, some spelled without the literal
        // key (only through escapes), and many the filter does skip.
        assert!(with_requires > 5_000, "{with_requires}");
        assert!(escaped > 200, "{escaped}");
        assert!(skipped > 2_000, "{skipped}");
    }

    #[test]
    fn the_filter_keeps_every_spelling_of_the_key() {
        for (key, is_requires) in KEYS {
            let text = format!(
                "model: m\nversion: \"1\"\nstage: s\nartifact: {{uri: s3://b/1, sha256: {}}}\n{key} {{e: \"7\"}}\ncreated: 2026-11-20T10:00:00Z\n",
                "0".repeat(64)
            );
            let has = parse_version(text.as_bytes()).is_ok_and(|m| m.requires["e"] == "7");
            assert_eq!(has, *is_requires, "{key}");
            assert!(!has || may_require(text.as_bytes()), "{key}");
        }
        assert!(!may_require(b"model: m\nstage: s\n"));
        assert!(may_require(b"model: \"m\\x00\"\n"));
        assert!(may_require(b"model: m\x00\n"));
        assert!(may_require("\u{FEFF}model: m\n".as_bytes()));
    }

    #[test]
    fn disk_format_round_trips_and_rejects_other_formats() {
        let id = Oid::from_str("0123456789012345678901234567890123456789").unwrap();
        let list = Arc::new(vec![Requirement {
            version: "4".into(),
            requires: ("feature encoder".into(), "8".into()),
        }]);
        let text = disk::render(&[(id, list.clone())]);
        let back = disk::parse(&text);
        assert_eq!(back.get(&id), Some(&list));
        // The version-1 format (no header) and a torn file read as empty.
        assert!(disk::parse(&format!("{id}\n\t4 staging fe 8\n")).is_empty());
        assert!(disk::parse(&text[..text.len() - 5]).is_empty());
    }

    #[test]
    fn disk_write_is_atomic_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("baton").join("requires-index");
        let id = Oid::from_str("0123456789012345678901234567890123456789").unwrap();
        disk::write(&path, &[(id, Arc::new(vec![]))]).unwrap();
        disk::write(&path, &[(id, Arc::new(vec![]))]).unwrap();
        assert_eq!(
            disk::parse(&std::fs::read_to_string(&path).unwrap()).len(),
            1
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("requires-index")]);
    }
}
