//! The `local` target (docs/targets.md#local): `<state-dir>/deploy/<path>/<model>/` holds the
//! release store `releases/<sha256>/`, `current` switched by rename, `routing.json` and
//! `deployment.json`, all verified; an optional `reload` command runs after each switch.

use super::store::{self, is_digest, is_real_dir, remove_tree, stamp_of, ReleaseStore, Stamp};
use super::{Observed, Switched, Target, TargetError};
use crate::daemon::artifact::{ArtifactError, ArtifactSource, Bounded, SizeLimit};
use crate::daemon::fsutil::{atomic_symlink_with, atomic_write_with, fsync_dir, is_temp_name};
use crate::daemon::health::{self, HealthEnv};
use crate::daemon::release::{DeploymentRecord, Release, ReleaseVersion};
use crate::daemon::state::fingerprint;
use crate::manifest::target::Reload;
use crate::manifest::version::ArtifactFile;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Builds kept per model besides the ones in use (the new release's and the one it replaced).
pub const KEEP_BUILDS: usize = 3;

/// The folder of the v1 layout (`artifacts/<sha256>`, one file each), migrated away.
const V1_STORE: &str = "artifacts";

pub struct LocalTarget {
    env: String,
    root: PathBuf,
    reload: Option<Reload>,
    /// Where `reload` runs (the state dir, as health does).
    cwd: PathBuf,
    /// model -> its release store (the stamp cache of verified builds).
    stores: HashMap<String, ReleaseStore>,
    /// path -> (stamp, parsed) of deployment records read before.
    records: HashMap<PathBuf, (Stamp, Result<Arc<DeploymentRecord>, String>)>,
    /// path -> (stamp, fingerprint of the parsed JSON) of routing files read before.
    routing: HashMap<PathBuf, (Stamp, Result<u64, String>)>,
}

/// `releases/<sha>/<file>` of a single-file version, `releases/<sha>/` of a folder.
fn routing_path(store: &ReleaseStore, v: &ReleaseVersion) -> String {
    let rel = store.relative_path_of(v).to_string_lossy().into_owned();
    if v.files.is_empty() {
        rel
    } else {
        format!("{rel}/")
    }
}

/// `routing.json` for `release` in environment `env`: every version with its traffic.
fn routing_json(env: &str, store: &ReleaseStore, release: &Release) -> serde_json::Value {
    json!({
        "model": release.model,
        "environment": env,
        "commit": release.commit,
        "versions": release.versions.iter().map(|v| json!({
            "version": v.version,
            "traffic": v.traffic,
            "sha256": v.sha256,
            "artifact": routing_path(store, v),
        })).collect::<Vec<_>>(),
    })
}

/// What `BATON_ARTIFACT` names after a switch: `<model>/current/<file>` of a single file,
/// `<model>/current/` of a folder: stable paths that follow `current`.
fn live_path(dir: &Path, store: &ReleaseStore, v: &ReleaseVersion) -> String {
    let current = dir.join("current");
    if !v.files.is_empty() {
        return format!("{}/", current.display());
    }
    match store.path_of(v).file_name() {
        Some(name) => current.join(name).to_string_lossy().into_owned(),
        None => current.to_string_lossy().into_owned(),
    }
}

/// Run the `reload` command after a switch, with the health environment variables; its
/// error says `reload: ...`.
fn run_reload(reload: &Reload, e: &HealthEnv, cwd: &Path) -> Result<(), TargetError> {
    health::run(&reload.command, e, cwd, reload.timeout).map_err(|err| {
        let text = err.to_string();
        let text = text.strip_prefix("health command ").unwrap_or(&text);
        TargetError::Other(format!("reload: {text}"))
    })
}

/// Serves a version's bytes from the v1 layout's `artifacts/<sha>` when that is a regular
/// file (the store checks its digest as for any source), else from `inner`: a migration
/// does not download again what is already on disk.
struct V1Source<'a> {
    dir: PathBuf,
    inner: &'a dyn ArtifactSource,
}

impl ArtifactSource for V1Source<'_> {
    fn open(&self, release: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError> {
        if is_real_dir(&self.dir) && is_digest(&v.sha256) {
            let opened = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(self.dir.join(&v.sha256));
            if let Ok(f) = opened {
                if f.metadata().is_ok_and(|m| m.is_file()) {
                    return Ok(match v.size {
                        Some(n) => Box::new(Bounded::new(f, SizeLimit::Manifest(n))),
                        None => Box::new(f),
                    });
                }
            }
        }
        self.inner.open(release, v)
    }

    fn open_file(
        &self,
        release: &Release,
        v: &ReleaseVersion,
        file: &ArtifactFile,
    ) -> Result<Box<dyn Read>, ArtifactError> {
        self.inner.open_file(release, v, file)
    }
}

fn read_record(dir: &Path) -> Option<DeploymentRecord> {
    serde_json::from_slice(&fs::read(dir.join("deployment.json")).ok()?).ok()
}

/// Remove the file or link `p`; a missing one is fine.
fn remove_if_present(p: &Path) -> Result<(), TargetError> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TargetError::io(p)(e)),
    }
}

impl LocalTarget {
    pub fn new(env: &str, root: &Path) -> Self {
        LocalTarget {
            env: env.to_owned(),
            root: root.to_path_buf(),
            reload: None,
            cwd: root.to_path_buf(),
            stores: HashMap::new(),
            records: HashMap::new(),
            routing: HashMap::new(),
        }
    }

    /// Run `reload` (in `cwd`) after each switch.
    pub fn with_reload(mut self, reload: Option<Reload>, cwd: &Path) -> Self {
        self.reload = reload;
        self.cwd = cwd.to_path_buf();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stored files read to be hashed so far, over every model (a no-op resync adds none).
    pub fn files_hashed(&self) -> u64 {
        self.stores.values().map(ReleaseStore::files_hashed).sum()
    }

    fn model_dir(&self, model: &str) -> PathBuf {
        self.root.join(model)
    }

    fn store(&mut self, model: &str) -> &mut ReleaseStore {
        let dir = self.root.join(model);
        self.stores
            .entry(model.to_owned())
            .or_insert_with(|| ReleaseStore::new(&dir))
    }

    /// The parsed record at `path` (re-read only when the file changed).
    fn record(&mut self, path: &Path) -> Result<Option<Arc<DeploymentRecord>>, String> {
        let md = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("deployment.json: {e}")),
        };
        let stamp = stamp_of(&md);
        if let Some((s, r)) = self.records.get(path) {
            if *s == stamp {
                return r.clone().map(Some);
            }
        }
        let r = fs::read(path)
            .map_err(|e| format!("deployment.json: {e}"))
            .and_then(|b| {
                serde_json::from_slice::<DeploymentRecord>(&b)
                    .map(Arc::new)
                    .map_err(|e| format!("deployment.json is unreadable: {e}"))
            });
        self.records.insert(path.to_path_buf(), (stamp, r.clone()));
        r.map(Some)
    }

    /// The fingerprint of `routing.json`'s content (re-read only when the file changed);
    /// `Ok(None)` when it is missing.
    fn routing_fingerprint(&mut self, path: &Path) -> Result<Option<u64>, String> {
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("routing.json: {e}")),
        };
        let stamp = stamp_of(&md);
        if let Some((s, r)) = self.routing.get(path) {
            if *s == stamp {
                return r.clone().map(Some);
            }
        }
        let r = if md.file_type().is_file() {
            fs::read(path)
                .map_err(|e| format!("routing.json: {e}"))
                .and_then(|b| {
                    serde_json::from_slice::<serde_json::Value>(&b)
                        .map(|v| fingerprint(&v))
                        .map_err(|e| format!("routing.json is unreadable: {e}"))
                })
        } else {
            Err("routing.json is not a regular file".to_owned())
        };
        self.routing.insert(path.to_path_buf(), (stamp, r.clone()));
        r.map(Some)
    }

    fn observe_model(&mut self, model: &str) -> Observed {
        let dir = self.model_dir(model);
        let mut obs = Observed::default();
        match self.record(&dir.join("deployment.json")) {
            Ok(Some(r)) => obs.record = Some(r),
            Ok(None) => {}
            Err(e) => obs.drift.push(e),
        }
        if fs::symlink_metadata(dir.join(V1_STORE)).is_ok() {
            obs.drift
                .push("the v1 layout (`artifacts/`) is to be migrated to `releases/`".into());
        }
        if let Ok(link) = fs::read_link(dir.join("current")) {
            let name = link
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = link.parent();
            if parent == Some(Path::new(store::RELEASES)) && is_digest(&name) {
                if self.store(model).verified(&name) {
                    obs.current = Some(name);
                } else if fs::symlink_metadata(dir.join(&link)).is_ok() {
                    obs.drift.push(format!(
                        "build {} was modified (sha256 mismatch)",
                        &name[..12]
                    ));
                    obs.current = Some(name);
                }
            } else if parent == Some(Path::new(V1_STORE))
                && is_digest(&name)
                && fs::symlink_metadata(dir.join(&link)).is_ok()
            {
                // Drift already (v1): the repair stores it in `releases/` and re-points.
                obs.current = Some(name);
            }
        }
        if let Some(r) = obs.record.clone() {
            for v in &r.release.versions {
                if !v.primary && !self.store(model).verified(&v.sha256) {
                    obs.drift.push(format!(
                        "artifact of {}@{} is missing or modified",
                        model, v.version
                    ));
                }
            }
            if !is_real_dir(&dir.join(store::RELEASES)) {
                obs.drift
                    .push("releases/ is not a folder (a symbolic link?)".into());
            }
            // The split in force is routing.json's: it must say what the record says.
            let env = self.env.clone();
            let want = fingerprint(&routing_json(&env, self.store(model), &r.release));
            match self.routing_fingerprint(&dir.join("routing.json")) {
                Ok(Some(fp)) if fp == want => {}
                Ok(Some(_)) => obs
                    .drift
                    .push("routing.json differs from the deployed release".into()),
                Ok(None) => obs.drift.push("routing.json is missing".into()),
                Err(e) => obs.drift.push(e),
            }
        }
        obs
    }

    /// Put `routing.json` and `current` back as they were before a switch whose reload
    /// failed (`None`: there was none).
    fn restore(
        &self,
        dir: &Path,
        routing: Option<Vec<u8>>,
        current: Option<PathBuf>,
    ) -> Result<(), TargetError> {
        let link = dir.join("current");
        match current {
            Some(target) => {
                atomic_symlink_with(&target, &link, false).map_err(TargetError::io(&link))?
            }
            None => remove_if_present(&link)?,
        }
        let p = dir.join("routing.json");
        match routing {
            Some(bytes) => atomic_write_with(&p, &bytes, false).map_err(TargetError::io(&p))?,
            None => remove_if_present(&p)?,
        }
        fsync_dir(dir).map_err(TargetError::io(dir))
    }
}

impl Target for LocalTarget {
    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }

    fn observe(&mut self) -> Result<BTreeMap<String, Observed>, TargetError> {
        let mut out = BTreeMap::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(TargetError::Io {
                    path: self.root.clone(),
                    source: e,
                })
            }
        };
        let mut models = Vec::new();
        for e in entries {
            let e = e.map_err(TargetError::io(&self.root))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_temp_name(&name) || !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            models.push(name);
        }
        for m in models {
            let o = self.observe_model(&m);
            out.insert(m, o);
        }
        Ok(out)
    }

    fn stage(&mut self, release: &Release, source: &dyn ArtifactSource) -> Result<(), TargetError> {
        // Real folders only: a symbolic link in place of the model's folder (or of its
        // `releases/`, which the store sees to) is replaced (the link, not its target).
        let dir = self.model_dir(&release.model);
        store::ensure_real_dir(&dir)?;
        let v1 = V1Source {
            dir: dir.join(V1_STORE),
            inner: source,
        };
        self.store(&release.model).stage(release, &v1)
    }

    fn switch(&mut self, release: &Release, now: DateTime<Utc>) -> Result<Switched, TargetError> {
        let dir = self.model_dir(&release.model);
        let primary = release.primary();
        let env = self.env.clone();
        let store = self.store(&release.model);
        if let Some(v) = release.versions.iter().find(|v| !store.verified(&v.sha256)) {
            return Err(TargetError::Other(format!(
                "{}@{}: the build is not staged (releases/{} is missing or modified)",
                release.model, v.version, v.sha256
            )));
        }
        let routing =
            serde_json::to_vec_pretty(&routing_json(&env, store, release)).unwrap_or_default();
        let artifact = live_path(&dir, store, primary);
        let previous = read_record(&dir);
        let link = dir.join("current");
        let was_current = fs::read_link(&link).ok();
        let p = dir.join("routing.json");
        let was_routing = fs::symlink_metadata(&p)
            .is_ok_and(|m| m.is_file())
            .then(|| fs::read(&p).ok())
            .flatten();

        // routing.json first, then the `current` rename (the commit point), then reload,
        // then the record.
        atomic_write_with(&p, &routing, false).map_err(TargetError::io(&p))?;
        let target = Path::new(store::RELEASES).join(&primary.sha256);
        atomic_symlink_with(&target, &link, false).map_err(TargetError::io(&link))?;
        fsync_dir(&dir).map_err(TargetError::io(&dir))?;
        if let Some(reload) = &self.reload {
            let e = HealthEnv {
                env: &self.env,
                model: &release.model,
                version: &primary.version,
                artifact: &artifact,
                sha256: &primary.sha256,
            };
            if let Err(err) = run_reload(reload, &e, &self.cwd) {
                // Nothing half-switched: the previous build (or none) is current again.
                return Err(match self.restore(&dir, was_routing, was_current) {
                    Ok(()) => err,
                    Err(r) => TargetError::Other(format!("{err}; switching back failed: {r}")),
                });
            }
        }
        let record = DeploymentRecord::new(&self.env, release, now);
        let p = dir.join("deployment.json");
        let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
        bytes.push(b'\n');
        atomic_write_with(&p, &bytes, false).map_err(TargetError::io(&p))?;
        fsync_dir(&dir).map_err(TargetError::io(&dir))?;

        // The v1 layout is gone once `current` names a build in `releases/`.
        let v1 = dir.join(V1_STORE);
        remove_tree(&v1).map_err(TargetError::io(&v1))?;
        // In use: the new release. Kept too, as one of the last builds: the release it
        // replaced (a failed health check switches back to it).
        let in_use: Vec<&str> = release.versions.iter().map(|v| v.sha256.as_str()).collect();
        let mut replaced: Vec<&str> = previous
            .iter()
            .flat_map(|p| p.release.versions.iter().map(|v| v.sha256.as_str()))
            .filter(|s| !in_use.contains(s))
            .collect();
        replaced.sort_unstable();
        replaced.dedup();
        let newest = KEEP_BUILDS.saturating_sub(replaced.len());
        let keep: Vec<&str> = in_use.iter().chain(&replaced).copied().collect();
        self.store(&release.model).gc(&keep, newest)?;
        Ok(Switched { previous, artifact })
    }

    fn undeploy(&mut self, model: &str) -> Result<(), TargetError> {
        let dir = self.model_dir(model);
        // `current` goes first: from then on nothing is in place.
        for f in ["current", "routing.json", "deployment.json"] {
            remove_if_present(&dir.join(f))?;
        }
        let _ = fsync_dir(&dir);
        // Read-only builds are made writable to be removed; links are removed as links.
        remove_tree(&dir).map_err(TargetError::io(&dir))?;
        self.stores.remove(model);
        self.records.retain(|p, _| !p.starts_with(&dir));
        self.routing.retain(|p, _| !p.starts_with(&dir));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use crate::fsutil::sha256_reader;
    use crate::manifest::version::listing_digest;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    /// Serves bytes by version label (`open`) or `label/path` (`open_file`).
    struct Bytes(HashMap<String, Vec<u8>>);
    impl ArtifactSource for Bytes {
        fn open(&self, _r: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError> {
            Ok(Box::new(std::io::Cursor::new(
                self.0.get(&v.version).cloned().unwrap_or_default(),
            )))
        }

        fn open_file(
            &self,
            _r: &Release,
            v: &ReleaseVersion,
            f: &ArtifactFile,
        ) -> Result<Box<dyn Read>, ArtifactError> {
            let key = format!("{}/{}", v.version, f.path);
            Ok(Box::new(std::io::Cursor::new(
                self.0.get(&key).cloned().unwrap_or_default(),
            )))
        }
    }

    fn sha(b: &[u8]) -> String {
        sha256_reader(b).unwrap().0
    }

    /// A release of single-file versions `artifacts/<model>/<label>/model.bin`.
    fn release_for(model: &str, content: &[(&str, &[u8])]) -> (Release, Bytes) {
        let mut r = test_release(
            model,
            &content
                .iter()
                .map(|(v, _)| (*v, 'x', 100))
                .collect::<Vec<_>>(),
        );
        let mut m = HashMap::new();
        for (i, (v, b)) in content.iter().enumerate() {
            r.versions[i].sha256 = sha(b);
            r.versions[i].uri = format!("artifacts/{model}/{v}/model.bin");
            m.insert((*v).to_owned(), b.to_vec());
        }
        (r, Bytes(m))
    }

    /// A one-version release of a directory artifact with `files` (path, bytes).
    fn folder_release(model: &str, label: &str, files: &[(&str, &[u8])]) -> (Release, Bytes) {
        let mut r = test_release(model, &[(label, 'x', 100)]);
        let v = &mut r.versions[0];
        v.uri = format!("artifacts/{model}/{label}/");
        v.files = files
            .iter()
            .map(|(p, b)| ArtifactFile {
                path: (*p).into(),
                sha256: sha(b),
                size: b.len() as u64,
            })
            .collect();
        v.sha256 = listing_digest(&v.files);
        let m = files
            .iter()
            .map(|(p, b)| (format!("{label}/{p}"), b.to_vec()))
            .collect();
        (r, Bytes(m))
    }

    fn current_of(dir: &Path) -> Option<PathBuf> {
        fs::read_link(dir.join("current")).ok()
    }

    fn builds(dir: &Path) -> usize {
        fs::read_dir(dir.join("releases")).unwrap().count()
    }

    #[test]
    fn switch_observe_tamper_and_gc() {
        let d = tempfile::tempdir().unwrap();
        let mut t = LocalTarget::new("prod", d.path());
        for i in 0..6u8 {
            let (r, src) = release_for("m", &[(&i.to_string(), &[i; 10])]);
            t.stage(&r, &src).unwrap();
            let s = t.switch(&r, Utc::now()).unwrap();
            assert_eq!(s.previous.is_some(), i > 0);
            assert_eq!(
                s.artifact,
                d.path().join("m/current/model.bin").to_string_lossy()
            );
            assert_eq!(fs::read(&s.artifact).unwrap(), [i; 10]);
            let obs = t.observe().unwrap();
            assert_eq!(
                obs["m"].current.as_deref(),
                Some(r.versions[0].sha256.as_str())
            );
            assert!(obs["m"].drift.is_empty(), "{:?}", obs["m"].drift);
            assert_eq!(
                current_of(&d.path().join("m")).unwrap(),
                Path::new("releases").join(&r.versions[0].sha256)
            );
        }
        // The build in use and the last three (the replaced one among them).
        assert_eq!(builds(&d.path().join("m")), 1 + KEEP_BUILDS);

        let (mut bad, src) = release_for("m", &[("9", b"real")]);
        bad.versions[0].sha256 = "0".repeat(64);
        assert!(matches!(
            t.stage(&bad, &src),
            Err(TargetError::Artifact(ArtifactError::Digest { .. }))
        ));
        // A switch to a build that was never staged is refused; nothing moves.
        let before = current_of(&d.path().join("m"));
        let e = t.switch(&bad, Utc::now()).unwrap_err().to_string();
        assert!(e.contains("not staged"), "{e}");
        assert_eq!(current_of(&d.path().join("m")), before);

        // Modify the live artifact: observed as drift.
        let real = fs::canonicalize(d.path().join("m/current/model.bin")).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&real, b"evil").unwrap();
        let drift = &t.observe().unwrap()["m"].drift;
        assert!(drift[0].contains("was modified"), "{drift:?}");

        t.undeploy("m").unwrap();
        assert!(t.observe().unwrap().is_empty());
        assert!(
            !d.path().join("m").exists(),
            "read-only builds are removed too"
        );
    }

    #[test]
    fn canary_release_writes_routing_and_points_current_at_the_primary() {
        let d = tempfile::tempdir().unwrap();
        let mut t = LocalTarget::new("prod", d.path());
        let (mut r, src) = release_for("m", &[("3", b"three"), ("4", b"four")]);
        r.versions[0].traffic = 90;
        r.versions[1].traffic = 10;
        t.stage(&r, &src).unwrap();
        t.switch(&r, Utc::now()).unwrap();
        let routing: serde_json::Value =
            serde_json::from_slice(&fs::read(d.path().join("m/routing.json")).unwrap()).unwrap();
        assert_eq!(routing["versions"][0]["traffic"], 90);
        assert_eq!(routing["versions"][1]["version"], "4");
        assert_eq!(routing["versions"][1]["traffic"], 10);
        assert_eq!(
            routing["versions"][1]["artifact"],
            format!("releases/{}/model.bin", r.versions[1].sha256)
        );
        let obs = t.observe().unwrap();
        assert_eq!(
            obs["m"].current.as_deref(),
            Some(r.versions[0].sha256.as_str())
        );
        assert!(obs["m"].drift.is_empty());
        // Both builds are verified; losing the canary's is drift.
        remove_tree(&d.path().join("m/releases").join(&r.versions[1].sha256)).unwrap();
        assert!(!t.observe().unwrap()["m"].drift.is_empty());
    }

    #[test]
    fn routing_json_is_verified_against_the_record() {
        let d = tempfile::tempdir().unwrap();
        let mut t = LocalTarget::new("prod", d.path());
        let (mut r, src) = release_for("m", &[("3", b"three"), ("4", b"four")]);
        r.versions[0].traffic = 90;
        r.versions[1].traffic = 10;
        t.stage(&r, &src).unwrap();
        t.switch(&r, Utc::now()).unwrap();
        assert!(t.observe().unwrap()["m"].drift.is_empty());
        let routing = d.path().join("m/routing.json");
        let good = fs::read_to_string(&routing).unwrap();

        // A hand edit that moves traffic is drift, whatever the record says.
        let edited = good.replace("\"traffic\": 90", "\"traffic\": 50");
        assert_ne!(edited, good);
        fs::write(&routing, &edited).unwrap();
        let drift = &t.observe().unwrap()["m"].drift;
        assert_eq!(drift, &["routing.json differs from the deployed release"]);
        // So is one that names another file for a version.
        let edited = good.replace("/model.bin", "/other.bin");
        fs::write(&routing, &edited).unwrap();
        let drift = &t.observe().unwrap()["m"].drift;
        assert_eq!(drift, &["routing.json differs from the deployed release"]);
        // Reformatting alone is not.
        let v: serde_json::Value = serde_json::from_str(&good).unwrap();
        fs::write(&routing, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(t.observe().unwrap()["m"].drift.is_empty());
        fs::write(&routing, b"{not json").unwrap();
        assert!(t.observe().unwrap()["m"].drift[0].contains("unreadable"));
        fs::remove_file(&routing).unwrap();
        assert_eq!(t.observe().unwrap()["m"].drift, ["routing.json is missing"]);
        // The repair (a switch to the same release) writes it again.
        t.switch(&r, Utc::now()).unwrap();
        assert!(t.observe().unwrap()["m"].drift.is_empty());
        assert_eq!(fs::read_to_string(&routing).unwrap(), good);

        // A switch interrupted after routing.json's rename: it names another release.
        let (r2, src2) = release_for("m", &[("5", b"five")]);
        t.stage(&r2, &src2).unwrap();
        let next = serde_json::to_vec_pretty(&routing_json("prod", t.store("m"), &r2)).unwrap();
        fs::write(&routing, next).unwrap();
        assert_eq!(
            t.observe().unwrap()["m"].drift,
            ["routing.json differs from the deployed release"]
        );
    }

    #[test]
    fn a_directory_artifact_is_switched_as_one_folder() {
        let d = tempfile::tempdir().unwrap();
        let mut t = LocalTarget::new("prod", d.path());
        let (r, src) = folder_release(
            "m",
            "6",
            &[("MLmodel", b"flavors: {}"), ("model/weights.bin", b"w6")],
        );
        t.stage(&r, &src).unwrap();
        let s = t.switch(&r, Utc::now()).unwrap();
        assert_eq!(
            s.artifact,
            format!("{}/", d.path().join("m/current").display())
        );
        assert_eq!(
            fs::read(d.path().join("m/current/model/weights.bin")).unwrap(),
            b"w6"
        );
        let routing: serde_json::Value =
            serde_json::from_slice(&fs::read(d.path().join("m/routing.json")).unwrap()).unwrap();
        assert_eq!(
            routing["versions"][0]["artifact"],
            format!("releases/{}/", r.versions[0].sha256)
        );
        let obs = t.observe().unwrap();
        assert_eq!(
            obs["m"].current.as_deref(),
            Some(r.versions[0].sha256.as_str())
        );
        assert!(obs["m"].drift.is_empty(), "{:?}", obs["m"].drift);

        // One changed file of the folder is drift; the repair restores it.
        let f = d.path().join("m/current/MLmodel");
        let real = fs::canonicalize(&f).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&real, b"flavors: {evil: 1}").unwrap();
        assert!(t.observe().unwrap()["m"].drift[0].contains("was modified"));
        t.stage(&r, &src).unwrap();
        t.switch(&r, Utc::now()).unwrap();
        assert!(t.observe().unwrap()["m"].drift.is_empty());
        assert_eq!(fs::read(&f).unwrap(), b"flavors: {}");
    }

    #[test]
    fn the_v1_layout_is_drift_and_migrated_without_downloading_again() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let (r, _) = release_for("m", &[("1", b"one")]);
        let v1_sha = r.versions[0].sha256.clone();
        // What a v1 daemon left: artifacts/<sha>, current -> artifacts/<sha>, its records.
        let dir = d.path().join("m");
        fs::create_dir_all(dir.join("artifacts")).unwrap();
        fs::write(dir.join("artifacts").join(&v1_sha), b"one").unwrap();
        fs::write(dir.join("artifacts").join("a".repeat(64)), b"older build").unwrap();
        std::os::unix::fs::symlink(Path::new("artifacts").join(&v1_sha), dir.join("current"))
            .unwrap();
        let record = DeploymentRecord::new("prod", &r, Utc::now());
        fs::write(
            dir.join("deployment.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        let mut v1_routing = routing_json("prod", &ReleaseStore::new(&dir), &r);
        v1_routing["versions"][0]["artifact"] = format!("artifacts/{v1_sha}").into();
        fs::write(dir.join("routing.json"), v1_routing.to_string()).unwrap();
        // Another model whose v1 `artifacts/` is a link to someone else's folder.
        fs::write(elsewhere.path().join(&v1_sha), b"one").unwrap();
        let (rn, srcn) = release_for("n", &[("1", b"one")]);
        fs::create_dir_all(d.path().join("n")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), d.path().join("n/artifacts")).unwrap();

        let mut t = LocalTarget::new("prod", d.path());
        let obs = t.observe().unwrap();
        assert_eq!(obs["m"].current.as_deref(), Some(v1_sha.as_str()));
        assert!(
            obs["m"].drift.iter().any(|x| x.contains("v1 layout")),
            "{:?}",
            obs["m"].drift
        );
        // The plan repairs it (same release, drift).
        let intent = BTreeMap::from([("m".to_owned(), r.clone())]);
        match &crate::daemon::plan::plan(&intent, &obs)[..] {
            [crate::daemon::plan::Step::Switch { kind, .. }] => {
                assert_eq!(*kind, crate::daemon::plan::SwitchKind::Repair)
            }
            steps => panic!("{steps:?}"),
        }
        // The repair: the bytes come from artifacts/ (this source has none to give).
        let empty = Bytes(HashMap::new());
        t.stage(&r, &empty).unwrap();
        t.switch(&r, Utc::now()).unwrap();
        assert_eq!(
            current_of(&dir).unwrap(),
            Path::new("releases").join(&v1_sha)
        );
        assert!(
            fs::symlink_metadata(dir.join("artifacts")).is_err(),
            "v1 store removed"
        );
        let obs = t.observe().unwrap();
        assert!(obs["m"].drift.is_empty(), "{:?}", obs["m"].drift);
        assert_eq!(fs::read(dir.join("current/model.bin")).unwrap(), b"one");

        // The linked v1 store is neither read through nor emptied: removed as a link.
        assert!(t.stage(&rn, &empty).is_err(), "not read through the link");
        t.stage(&rn, &srcn).unwrap();
        t.switch(&rn, Utc::now()).unwrap();
        assert!(fs::symlink_metadata(d.path().join("n/artifacts")).is_err());
        assert_eq!(fs::read(elsewhere.path().join(&v1_sha)).unwrap(), b"one");
    }

    #[test]
    fn a_failing_reload_leaves_the_previous_build_current() {
        let d = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        // The reload sees the new build through `current`; it refuses version 2.
        let reload = Reload {
            command: r#"printf '%s %s\n' "$BATON_VERSION" "$(cat "$BATON_ARTIFACT")" >> reloads; test "$BATON_VERSION" != 2 || { echo refusing 2 >&2; exit 3; }"#.into(),
            timeout: Duration::from_secs(10),
        };
        let mut t = LocalTarget::new("prod", d.path()).with_reload(Some(reload), cwd.path());
        let dir = d.path().join("m");

        // Nothing before: a failing reload leaves nothing current.
        let (r2, src2) = release_for("m", &[("2", b"two")]);
        t.stage(&r2, &src2).unwrap();
        let e = t.switch(&r2, Utc::now()).unwrap_err().to_string();
        assert_eq!(e, "reload: exited with 3: refusing 2");
        assert!(current_of(&dir).is_none());
        assert!(!dir.join("routing.json").exists());
        assert!(!dir.join("deployment.json").exists());

        let (r1, src1) = release_for("m", &[("1", b"one")]);
        t.stage(&r1, &src1).unwrap();
        t.switch(&r1, Utc::now()).unwrap();
        let routing = fs::read(dir.join("routing.json")).unwrap();
        let record = fs::read(dir.join("deployment.json")).unwrap();

        let e = t.switch(&r2, Utc::now()).unwrap_err().to_string();
        assert!(e.starts_with("reload: exited with 3"), "{e}");
        assert_eq!(
            current_of(&dir).unwrap(),
            Path::new("releases").join(&r1.versions[0].sha256)
        );
        assert_eq!(fs::read(dir.join("routing.json")).unwrap(), routing);
        assert_eq!(fs::read(dir.join("deployment.json")).unwrap(), record);
        let obs = t.observe().unwrap();
        assert_eq!(
            obs["m"].current.as_deref(),
            Some(r1.versions[0].sha256.as_str())
        );
        assert!(obs["m"].drift.is_empty(), "{:?}", obs["m"].drift);
        assert_eq!(
            fs::read_to_string(cwd.path().join("reloads")).unwrap(),
            "2 two\n1 one\n2 two\n",
            "each reload ran in the state dir and read the build it was told about"
        );
    }

    /// A no-op resync re-hashes nothing (the stamp cache), after a switch and after a restart.
    /// `BATON_TEST_MODELS` sets the number of models (default 1,000).
    #[test]
    fn a_no_op_resync_rehashes_nothing() {
        let n: usize = std::env::var("BATON_TEST_MODELS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        let d = match tempfile::tempdir_in("/dev/shm") {
            Ok(d) => d,
            Err(_) => tempfile::tempdir().unwrap(),
        };
        let mut t = LocalTarget::new("prod", d.path());
        let start = std::time::Instant::now();
        for i in 0..n {
            let bytes = format!("model {i}");
            let (r, src) = release_for(&format!("m{i}"), &[("1", bytes.as_bytes())]);
            t.stage(&r, &src).unwrap();
            t.switch(&r, Utc::now()).unwrap();
        }
        let deploy = start.elapsed();
        assert_eq!(t.files_hashed(), 0, "hashed while written, never read back");
        let start = std::time::Instant::now();
        let obs = t.observe().unwrap();
        let warm = start.elapsed();
        assert_eq!(obs.len(), n);
        assert!(obs
            .values()
            .all(|o| o.drift.is_empty() && o.current.is_some()));
        assert_eq!(t.files_hashed(), 0);

        // A restart hashes each build once, then never again while nothing changes.
        let mut t = LocalTarget::new("prod", d.path());
        let start = std::time::Instant::now();
        t.observe().unwrap();
        let cold = start.elapsed();
        assert_eq!(t.files_hashed(), n as u64);
        let start = std::time::Instant::now();
        let obs = t.observe().unwrap();
        let again = start.elapsed();
        assert!(obs.values().all(|o| o.drift.is_empty()));
        assert_eq!(t.files_hashed(), n as u64, "a no-op resync re-hashed");
        eprintln!(
            "{n} models: deploy {deploy:.1?}, observe after switch {warm:.1?}, after a restart {cold:.1?} then {again:.1?}"
        );
    }

    #[test]
    fn gc_never_follows_symbolic_links() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let precious: Vec<PathBuf> = (0..6u8)
            .map(|i| {
                let p = elsewhere.path().join(hex::encode([i; 32]));
                fs::create_dir(&p).unwrap();
                fs::write(p.join("model.bin"), [i; 8]).unwrap();
                p
            })
            .collect();
        let mut t = LocalTarget::new("prod", d.path());
        let (r, src) = release_for("m", &[("0", b"zero")]);
        t.stage(&r, &src).unwrap();
        t.switch(&r, Utc::now()).unwrap();

        // `releases/` replaced by a link to someone else's folder.
        let store = d.path().join("m/releases");
        fs::rename(&store, d.path().join("m/old-store")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), &store).unwrap();
        let drift = &t.observe().unwrap()["m"].drift;
        assert!(
            drift
                .iter()
                .any(|x| x.contains("releases/ is not a folder")),
            "{drift:?}"
        );
        for i in 1..6u8 {
            let (r, src) = release_for("m", &[(&i.to_string(), &[i; 3])]);
            t.stage(&r, &src).unwrap();
            t.switch(&r, Utc::now()).unwrap();
        }
        for p in &precious {
            assert!(
                p.join("model.bin").exists(),
                "{} was deleted through the link",
                p.display()
            );
        }
        assert!(fs::symlink_metadata(&store).unwrap().file_type().is_dir());
        assert!(t.observe().unwrap()["m"].drift.is_empty());

        // A link inside the store is removed as a link, and so is a link inside a build
        // folder: their targets stay.
        std::os::unix::fs::symlink(&precious[0], store.join("f".repeat(64))).unwrap();
        let junk = store.join("e".repeat(64));
        fs::create_dir(&junk).unwrap();
        std::os::unix::fs::symlink(&precious[1], junk.join("model.bin")).unwrap();
        let mut r = None;
        for i in 10..15u8 {
            let (rel, src) = release_for("m", &[(&i.to_string(), &[i; 3])]);
            t.stage(&rel, &src).unwrap();
            t.switch(&rel, Utc::now()).unwrap();
            r = Some((rel, src));
        }
        let (r, src) = r.unwrap();
        assert!(fs::symlink_metadata(store.join("f".repeat(64))).is_err());
        assert!(fs::symlink_metadata(&junk).is_err());
        for p in &precious {
            assert!(p.join("model.bin").exists(), "{}", p.display());
        }

        // The model's own folder as a link: replaced by a real folder, the target untouched.
        t.undeploy("m").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), d.path().join("m")).unwrap();
        t.stage(&r, &src).unwrap();
        t.switch(&r, Utc::now()).unwrap();
        assert!(fs::symlink_metadata(d.path().join("m")).unwrap().is_dir());
        for p in &precious {
            assert!(p.join("model.bin").exists(), "{}", p.display());
        }
        assert_eq!(
            fs::read_dir(elsewhere.path()).unwrap().count(),
            precious.len()
        );
    }
}
