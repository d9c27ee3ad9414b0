//! What a target with no remote state to read back applied: one deployment record per model,
//! `<state-dir>/targets/<env>/<model>.json`, written atomically only once a switch took effect.

use super::store::{ensure_real_dir, remove_tree};
use super::{Observed, TargetError};
use crate::daemon::release::DeploymentRecord;
use crate::fsutil::{atomic_write, fsync_dir, is_temp_name};
use crate::names::is_model_name;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File identity used to skip re-parsing an unchanged record.
type Stamp = (u64, u64, i64, i64);

/// A record as read: parsed, or why it could not be.
type Read = Result<Arc<DeploymentRecord>, String>;

/// The records of one environment's target.
pub struct Records {
    dir: PathBuf,
    /// model -> (stamp, parsed) of records read before.
    cache: HashMap<String, (Stamp, Read)>,
}

impl Records {
    /// The records under `dir` (`<state-dir>/targets/<env>/`); nothing is created yet.
    pub fn new(dir: &Path) -> Self {
        Records {
            dir: dir.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, model: &str) -> PathBuf {
        self.dir.join(format!("{model}.json"))
    }

    /// The record of `model`: `Ok(None)` when there is none, `Err` (a sentence) when the
    /// file is not a regular file or does not parse.
    pub fn read(&mut self, model: &str) -> Result<Option<Arc<DeploymentRecord>>, String> {
        let path = self.path(model);
        // symlink_metadata: a link in place of a record is reported, never read through.
        let md = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.cache.remove(model);
                return Ok(None);
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if !md.file_type().is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        let stamp = (md.ino(), md.size(), md.mtime(), md.mtime_nsec());
        if let Some((s, r)) = self.cache.get(model) {
            if *s == stamp {
                return r.clone().map(Some);
            }
        }
        let r: Read = fs::read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|b| {
                serde_json::from_slice::<DeploymentRecord>(&b)
                    .map_err(|e| format!("{} is unreadable: {e}", path.display()))
            })
            .and_then(|r| {
                if r.model == model {
                    Ok(Arc::new(r))
                } else {
                    Err(format!("{} records model `{}`", path.display(), r.model))
                }
            });
        self.cache.insert(model.to_owned(), (stamp, r.clone()));
        r.map(Some)
    }

    /// The models that have a record file (names that are not model names are ignored).
    pub fn models(&self) -> Result<Vec<String>, TargetError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TargetError::io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(TargetError::io(&self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_temp_name(&name) {
                continue;
            }
            if let Some(model) = name.strip_suffix(".json").filter(|m| is_model_name(m)) {
                out.push(model.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every model recorded, as the target runs it: the record, and its primary's digest as
    /// `current`; an unreadable record is drift (so the next switch writes it again).
    pub fn observe(&mut self) -> Result<BTreeMap<String, Observed>, TargetError> {
        let mut out = BTreeMap::new();
        for m in self.models()? {
            let mut obs = Observed::default();
            match self.read(&m) {
                Ok(Some(r)) => {
                    obs.current = Some(r.sha256.clone());
                    obs.record = Some(r);
                }
                Ok(None) => continue,
                Err(e) => obs.drift.push(e),
            }
            out.insert(m, obs);
        }
        Ok(out)
    }

    /// Record that `record` is in place (temp file, fsync, rename, fsync the folder).
    pub fn write(&mut self, record: &DeploymentRecord) -> Result<(), TargetError> {
        ensure_real_dir(&self.dir)?;
        let path = self.path(&record.model);
        let mut bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        bytes.push(b'\n');
        // A link or folder in the record's place is removed first, never written through.
        if fs::symlink_metadata(&path).is_ok_and(|m| !m.file_type().is_file()) {
            remove_tree(&path).map_err(TargetError::io(&path))?;
        }
        atomic_write(&path, &bytes).map_err(TargetError::io(&path))?;
        self.cache.remove(&record.model);
        Ok(())
    }

    /// Forget `model` (it left the target).
    pub fn remove(&mut self, model: &str) -> Result<(), TargetError> {
        let path = self.path(model);
        match fs::symlink_metadata(&path) {
            Ok(_) => remove_tree(&path).map_err(TargetError::io(&path))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TargetError::io(&path)(e)),
        }
        let _ = fsync_dir(&self.dir);
        self.cache.remove(model);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use chrono::Utc;

    #[test]
    fn write_observe_remove_and_refuse_links() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Records::new(&d.path().join("targets/prod"));
        assert!(r.observe().unwrap().is_empty());
        let rel = test_release("m", &[("3", 'a', 90), ("4", 'b', 10)]);
        r.write(&DeploymentRecord::new("prod", &rel, Utc::now()))
            .unwrap();
        let obs = r.observe().unwrap();
        assert_eq!(obs["m"].current.as_deref(), Some("a".repeat(64).as_str()));
        assert!(obs["m"].record.as_ref().unwrap().release.same_content(&rel));
        assert!(obs["m"].drift.is_empty());

        let p = d.path().join("targets/prod/m.json");
        fs::write(&p, b"{oops").unwrap();
        let obs = r.observe().unwrap();
        assert!(obs["m"].record.is_none());
        assert!(obs["m"].drift[0].contains("unreadable"), "{:?}", obs["m"]);

        // A link in a record's place: reported, and replaced (not written through) on write.
        let elsewhere = d.path().join("precious.json");
        fs::write(&elsewhere, b"keep").unwrap();
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &p).unwrap();
        assert!(r.observe().unwrap()["m"].drift[0].contains("not a regular file"));
        r.write(&DeploymentRecord::new("prod", &rel, Utc::now()))
            .unwrap();
        assert_eq!(fs::read(&elsewhere).unwrap(), b"keep");
        assert!(r.observe().unwrap()["m"].drift.is_empty());

        // Files that are not records are not models.
        fs::write(d.path().join("targets/prod/README"), b"x").unwrap();
        fs::write(d.path().join("targets/prod/Not_A_Model.json"), b"x").unwrap();
        assert_eq!(r.models().unwrap(), ["m"]);

        r.remove("m").unwrap();
        assert!(r.observe().unwrap().is_empty());
        r.remove("m").unwrap();
    }
}
