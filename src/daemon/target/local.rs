//! The `local` target: `<state-dir>/deploy/<path>/<model>/` holds `artifacts/<sha256>`,
//! a `current` symlink switched by rename, `routing.json` and `deployment.json`, all verified.

use super::{Observed, Switched, Target, TargetError};
use crate::daemon::artifact::{ArtifactError, ArtifactSource};
use crate::daemon::fsutil::{
    atomic_symlink_with, atomic_write_with, copy_hashing, fsync_dir, is_temp_name, sha256_file,
    temp_beside,
};
use crate::daemon::release::{DeploymentRecord, Release};
use crate::daemon::state::fingerprint;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Artifacts kept per model besides the ones in use.
pub const KEEP_ARTIFACTS: usize = 3;

/// File identity used to skip re-hashing unchanged artifacts.
type Stamp = (u64, u64, i64, i64, i64);

pub struct LocalTarget {
    env: String,
    root: PathBuf,
    /// path -> (stamp, digest) of artifacts hashed before.
    verified: HashMap<PathBuf, (Stamp, String)>,
    /// path -> (stamp, parsed) of deployment records read before.
    records: HashMap<PathBuf, (Stamp, Result<Arc<DeploymentRecord>, String>)>,
    /// path -> (stamp, fingerprint of the parsed JSON) of routing files read before.
    routing: HashMap<PathBuf, (Stamp, Result<u64, String>)>,
}

/// `routing.json` for `release` in environment `env`: every version with its traffic.
fn routing_json(env: &str, release: &Release) -> serde_json::Value {
    json!({
        "model": release.model,
        "environment": env,
        "commit": release.commit,
        "versions": release.versions.iter().map(|v| json!({
            "version": v.version,
            "traffic": v.traffic,
            "sha256": v.sha256,
            "artifact": format!("artifacts/{}", v.sha256),
        })).collect::<Vec<_>>(),
    })
}

/// True when `p` is a folder itself, not a symbolic link to one.
fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir())
}

/// Make `p` a real folder: a symbolic link (or a file) in its place is removed (the link
/// itself, never what it points to) and a folder made.
fn ensure_real_dir(p: &Path) -> Result<(), TargetError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(p).map_err(TargetError::io(p))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(TargetError::io(p)(e)),
    }
    fs::create_dir_all(p).map_err(TargetError::io(p))
}

fn stamp_of(md: &fs::Metadata) -> Stamp {
    (
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime_nsec() ^ md.ctime(),
    )
}

impl LocalTarget {
    pub fn new(env: &str, root: &Path) -> Self {
        LocalTarget {
            env: env.to_owned(),
            root: root.to_path_buf(),
            verified: HashMap::new(),
            records: HashMap::new(),
            routing: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn model_dir(&self, model: &str) -> PathBuf {
        self.root.join(model)
    }

    /// The digest of the file at `path`, re-hashed only when its inode, size, mtime or ctime
    /// changed since the last time.
    /// Only a regular file counts: a symbolic link in the store is never read through.
    fn digest(&mut self, path: &Path) -> std::io::Result<String> {
        let md = fs::symlink_metadata(path)?;
        if !md.file_type().is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let stamp = stamp_of(&md);
        if let Some((s, d)) = self.verified.get(path) {
            if *s == stamp {
                return Ok(d.clone());
            }
        }
        let d = sha256_file(path)?;
        self.verified.insert(path.to_path_buf(), (stamp, d.clone()));
        Ok(d)
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

    /// True when `artifacts/<sha>` is a regular file in a real `artifacts/` folder and hashes
    /// to `sha`.
    fn verified_artifact(&mut self, model: &str, sha: &str) -> bool {
        let store = self.model_dir(model).join("artifacts");
        if !is_real_dir(&store) {
            return false;
        }
        matches!(self.digest(&store.join(sha)), Ok(d) if d == sha)
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
        if let Ok(link) = fs::read_link(dir.join("current")) {
            let name = link
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if link.parent() == Some(Path::new("artifacts")) && self.verified_artifact(model, &name)
            {
                obs.current = Some(name);
            } else if link.parent() == Some(Path::new("artifacts")) && dir.join(&link).exists() {
                obs.drift.push(format!(
                    "artifact {} was modified (sha256 mismatch)",
                    &name[..name.len().min(12)]
                ));
                obs.current = Some(name);
            }
        }
        if let Some(r) = obs.record.clone() {
            for v in &r.release.versions {
                if !v.primary && !self.verified_artifact(model, &v.sha256) {
                    obs.drift.push(format!(
                        "artifact of {}@{} is missing or modified",
                        model, v.version
                    ));
                }
            }
            if !is_real_dir(&dir.join("artifacts")) {
                obs.drift
                    .push("artifacts/ is not a folder (a symbolic link?)".into());
            }
            // The split in force is routing.json's: it must say what the record says.
            let want = fingerprint(&routing_json(&self.env, &r.release));
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

    /// Delete stored artifacts beyond the newest [`KEEP_ARTIFACTS`], never one in `keep`.
    /// Symbolic links are never followed: a linked `artifacts/` folder is left alone, a link
    /// inside it is removed as a link, and folders inside it are not entered.
    fn gc(&self, model: &str, keep: &[&str]) -> Result<(), TargetError> {
        let dir = self.model_dir(model).join("artifacts");
        if !is_real_dir(&dir) {
            return Ok(());
        }
        let mut all: Vec<(std::time::SystemTime, String)> = Vec::new();
        for e in fs::read_dir(&dir).map_err(TargetError::io(&dir))? {
            let e = e.map_err(TargetError::io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                continue;
            }
            if is_temp_name(&name) {
                let _ = fs::remove_file(e.path());
                continue;
            }
            if keep.contains(&name.as_str()) {
                continue;
            }
            // DirEntry::metadata does not follow links: a link's own time.
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            all.push((t, name));
        }
        all.sort_by(|a, b| b.cmp(a));
        let room = KEEP_ARTIFACTS.saturating_sub(keep.len());
        for (_, name) in all.into_iter().skip(room) {
            let p = dir.join(&name);
            fs::remove_file(&p).map_err(TargetError::io(&p))?;
        }
        Ok(())
    }
}

fn read_record(dir: &Path) -> Option<DeploymentRecord> {
    serde_json::from_slice(&fs::read(dir.join("deployment.json")).ok()?).ok()
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
        // Real folders only: a symbolic link in place of the model's folder or its store is
        // replaced (the link, not its target), so nothing is written or deleted through it.
        ensure_real_dir(&self.model_dir(&release.model))?;
        let dir = self.model_dir(&release.model).join("artifacts");
        ensure_real_dir(&dir)?;
        for v in &release.versions {
            let path = dir.join(&v.sha256);
            match fs::symlink_metadata(&path) {
                Err(_) => {}
                Ok(m) if m.file_type().is_file() => {
                    if self.verified_artifact(&release.model, &v.sha256) {
                        continue;
                    }
                    // Modified in place: drop it and fetch again.
                    fs::remove_file(&path).map_err(TargetError::io(&path))?;
                }
                Ok(m) if m.file_type().is_dir() => {
                    fs::remove_dir_all(&path).map_err(TargetError::io(&path))?
                }
                Ok(_) => fs::remove_file(&path).map_err(TargetError::io(&path))?,
            }
            let tmp = temp_beside(&path);
            let reader = source.open(release, v)?;
            let (actual, _) = copy_hashing(reader, &tmp).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                TargetError::Artifact(ArtifactError::from_io(release, v, &e))
            })?;
            if actual != v.sha256 {
                let _ = fs::remove_file(&tmp);
                return Err(ArtifactError::Digest {
                    model: release.model.clone(),
                    version: v.version.clone(),
                    uri: v.uri.clone(),
                    expected: v.sha256.clone(),
                }
                .into());
            }
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))
                .map_err(TargetError::io(&tmp))?;
            fs::rename(&tmp, &path).map_err(TargetError::io(&path))?;
            fsync_dir(&dir).map_err(TargetError::io(&dir))?;
        }
        Ok(())
    }

    fn switch(&mut self, release: &Release, now: DateTime<Utc>) -> Result<Switched, TargetError> {
        let dir = self.model_dir(&release.model);
        let previous = read_record(&dir);
        let primary = release.primary();
        // routing.json first, then the `current` rename (the commit point), then the record.
        let routing = routing_json(&self.env, release);
        let p = dir.join("routing.json");
        atomic_write_with(
            &p,
            &serde_json::to_vec_pretty(&routing).unwrap_or_default(),
            false,
        )
        .map_err(TargetError::io(&p))?;
        let link = dir.join("current");
        atomic_symlink_with(&Path::new("artifacts").join(&primary.sha256), &link, false)
            .map_err(TargetError::io(&link))?;
        let record = DeploymentRecord::new(&self.env, release, now);
        let p = dir.join("deployment.json");
        let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
        bytes.push(b'\n');
        atomic_write_with(&p, &bytes, false).map_err(TargetError::io(&p))?;
        // One fsync makes the three renames durable (they share the directory).
        fsync_dir(&dir).map_err(TargetError::io(&dir))?;
        let mut keep: Vec<&str> = release.versions.iter().map(|v| v.sha256.as_str()).collect();
        if let Some(prev) = &previous {
            keep.extend(prev.release.versions.iter().map(|v| v.sha256.as_str()));
        }
        keep.sort();
        keep.dedup();
        self.gc(&release.model, &keep)?;
        Ok(Switched {
            previous,
            artifact: dir
                .join("artifacts")
                .join(&primary.sha256)
                .to_string_lossy()
                .into_owned(),
        })
    }

    fn undeploy(&mut self, model: &str) -> Result<(), TargetError> {
        let dir = self.model_dir(model);
        // `current` goes first: from then on nothing is in place.
        for f in ["current", "routing.json", "deployment.json"] {
            let p = dir.join(f);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(TargetError::Io { path: p, source: e }),
            }
        }
        let _ = fsync_dir(&dir);
        fs::remove_dir_all(&dir).map_err(TargetError::io(&dir))?;
        self.verified.retain(|p, _| !p.starts_with(&dir));
        self.records.retain(|p, _| !p.starts_with(&dir));
        self.routing.retain(|p, _| !p.starts_with(&dir));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use std::io::Read;

    /// Serves the bytes whose sha256 is the version's sha (or garbage when `tamper`).
    struct Bytes(HashMap<String, Vec<u8>>);
    impl ArtifactSource for Bytes {
        fn open(
            &self,
            _r: &Release,
            v: &crate::daemon::release::ReleaseVersion,
        ) -> Result<Box<dyn Read>, ArtifactError> {
            Ok(Box::new(std::io::Cursor::new(
                self.0.get(&v.version).cloned().unwrap_or_default(),
            )))
        }

        fn open_file(
            &self,
            _r: &Release,
            v: &crate::daemon::release::ReleaseVersion,
            f: &crate::manifest::version::ArtifactFile,
        ) -> Result<Box<dyn Read>, ArtifactError> {
            let key = format!("{}/{}", v.version, f.path);
            Ok(Box::new(std::io::Cursor::new(
                self.0.get(&key).cloned().unwrap_or_default(),
            )))
        }
    }

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
            r.versions[i].sha256 = crate::daemon::fsutil::sha256_reader(*b).unwrap().0;
            m.insert((*v).to_owned(), b.to_vec());
        }
        (r, Bytes(m))
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
            let obs = t.observe().unwrap();
            assert_eq!(
                obs["m"].current.as_deref(),
                Some(r.versions[0].sha256.as_str())
            );
            assert!(obs["m"].drift.is_empty());
        }
        let n = fs::read_dir(d.path().join("m/artifacts")).unwrap().count();
        assert_eq!(n, KEEP_ARTIFACTS);

        let (mut bad, src) = release_for("m", &[("9", b"real")]);
        bad.versions[0].sha256 = "0".repeat(64);
        assert!(matches!(
            t.stage(&bad, &src),
            Err(TargetError::Artifact(ArtifactError::Digest { .. }))
        ));

        // Modify the live artifact: observed as drift.
        let cur = d.path().join("m/current");
        let real = fs::canonicalize(&cur).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&real, b"evil").unwrap();
        assert!(!t.observe().unwrap()["m"].drift.is_empty());

        t.undeploy("m").unwrap();
        assert!(t.observe().unwrap().is_empty());
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
        let obs = t.observe().unwrap();
        assert_eq!(
            obs["m"].current.as_deref(),
            Some(r.versions[0].sha256.as_str())
        );
        assert!(obs["m"].drift.is_empty());
        // Both artifacts are verified; losing the canary's is drift.
        fs::remove_file(d.path().join("m/artifacts").join(&r.versions[1].sha256)).unwrap();
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
        let next = serde_json::to_vec_pretty(&routing_json("prod", &r2)).unwrap();
        fs::write(&routing, next).unwrap();
        assert_eq!(
            t.observe().unwrap()["m"].drift,
            ["routing.json differs from the deployed release"]
        );
    }

    #[test]
    fn gc_never_follows_symbolic_links() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let precious: Vec<PathBuf> = (0..6u8)
            .map(|i| {
                let p = elsewhere.path().join(hex::encode([i; 32]));
                fs::write(&p, [i; 8]).unwrap();
                p
            })
            .collect();
        let mut t = LocalTarget::new("prod", d.path());
        let (r, src) = release_for("m", &[("0", b"zero")]);
        t.stage(&r, &src).unwrap();
        t.switch(&r, Utc::now()).unwrap();

        // `artifacts/` replaced by a link to someone else's folder.
        let store = d.path().join("m/artifacts");
        fs::rename(&store, d.path().join("m/old-store")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), &store).unwrap();
        let drift = &t.observe().unwrap()["m"].drift;
        assert!(
            drift
                .iter()
                .any(|x| x.contains("artifacts/ is not a folder")),
            "{drift:?}"
        );
        for i in 1..6u8 {
            let (r, src) = release_for("m", &[(&i.to_string(), &[i; 3])]);
            t.stage(&r, &src).unwrap();
            t.switch(&r, Utc::now()).unwrap();
        }
        for p in &precious {
            assert!(p.exists(), "{} was deleted through the link", p.display());
        }
        assert!(fs::symlink_metadata(&store).unwrap().file_type().is_dir());
        assert!(t.observe().unwrap()["m"].drift.is_empty());

        // A link inside the store is removed as a link; its target stays.
        std::os::unix::fs::symlink(&precious[0], store.join("f".repeat(64))).unwrap();
        fs::create_dir(store.join("e".repeat(64))).unwrap();
        fs::write(store.join("e".repeat(64)).join("keep"), b"x").unwrap();
        let mut r = None;
        for i in 10..14u8 {
            let (rel, src) = release_for("m", &[(&i.to_string(), &[i; 3])]);
            t.stage(&rel, &src).unwrap();
            t.switch(&rel, Utc::now()).unwrap();
            r = Some((rel, src));
        }
        let (r, src) = r.unwrap();
        assert!(precious[0].exists());
        assert!(fs::symlink_metadata(store.join("f".repeat(64))).is_err());
        assert!(
            store.join("e".repeat(64)).join("keep").exists(),
            "folders are not entered"
        );

        // The model's own folder as a link: replaced by a real folder, the target untouched.
        t.undeploy("m").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), d.path().join("m")).unwrap();
        t.stage(&r, &src).unwrap();
        t.switch(&r, Utc::now()).unwrap();
        assert!(fs::symlink_metadata(d.path().join("m")).unwrap().is_dir());
        for p in &precious {
            assert!(p.exists(), "{}", p.display());
        }
        assert_eq!(
            fs::read_dir(elsewhere.path()).unwrap().count(),
            precious.len()
        );
    }
}
