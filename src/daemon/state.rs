//! The state directory: the lock that keeps one daemon per directory, `state.json` (the
//! last deployed commit, held models and last good releases) and `status.json`, both written
//! atomically.

use super::fsutil::atomic_write_stream;
use super::gate::HoldKind;
use super::release::Release;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("another baton serve is running on state dir {dir} ({holder}); stop it first or pass a different --state-dir")]
    Locked { dir: PathBuf, holder: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a baton state file: {message}")]
    Corrupt { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A model held at its last good baseline commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The commit whose manifests the model keeps running.
    pub baseline: String,
    pub kind: HoldKind,
    pub reasons: Vec<String>,
    /// For windows: when the next window opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
    /// The commit whose change failed (the offending commit), and its author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offending: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Held only so that `requires` stays met (recomputed at every pass), not by its gates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requires: bool,
}

/// When the daemon accepted the change that moved a version into a stage (its soak clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entered {
    pub model: String,
    pub version: String,
    pub stage: String,
    pub at: DateTime<Utc>,
}

/// A switch that failed for one release content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// [`Release::fingerprint`] of the release that failed.
    pub fingerprint: String,
    pub reason: String,
    /// Health-check failures are not retried for the same release (the model is degraded);
    /// other errors are retried with backoff.
    pub health: bool,
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
}

/// What the daemon remembers about one (environment, model).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// The release last switched to and found healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good: Option<Release>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub version: u32,
    pub branch: String,
    /// Registry folder inside the repository.
    pub registry: String,
    /// The last commit of the branch that was judged and reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// The trusted baseline the state started from.
    #[serde(default)]
    pub trusted: String,
    /// The newest commit whose policy (`baton.yaml`) is in force.
    #[serde(default)]
    pub policy_commit: String,
    /// Models held at an older commit.
    #[serde(default)]
    pub held: BTreeMap<String, Hold>,
    /// Stage entries the daemon accepted after the trusted baseline, with when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entered: Vec<Entered>,
    /// The branch head when it stopped descending from the accepted head (a force-push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<String>,
    /// Why a pending change of the policy is not in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_pending: Vec<String>,
    /// environment -> model -> state.
    #[serde(default)]
    pub environments: BTreeMap<String, BTreeMap<String, ModelState>>,
    /// Live verifications after deploys (docs/verification.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verifications: Vec<super::verify::Verification>,
}

/// An opened, locked state directory.
pub struct StateDir {
    pub root: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Create (if needed) and lock `root`; fails with [`StateError::Locked`] when another
    /// process holds it. The lock is released by the OS when the process ends, however.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(root).map_err(io(root))?;
        let path = root.join("lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(StateError::Locked {
                    dir: root.to_path_buf(),
                    holder: if holder.is_empty() {
                        "lock held".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(StateError::Io { path, source: e }),
        }
        f.set_len(0).map_err(io(&path))?;
        let _ = writeln!(f, "pid {}", std::process::id());
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: f,
        })
    }

    pub fn deploy_dir(&self) -> PathBuf {
        self.root.join("deploy")
    }

    pub fn events_path(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    pub fn load(&self) -> Result<Option<PersistedState>, StateError> {
        read_json(&self.root.join("state.json"))
    }

    pub fn save(&self, s: &PersistedState) -> Result<(), StateError> {
        write_json(&self.root.join("state.json"), s)
    }

    pub fn save_status<T: Serialize>(&self, s: &T) -> Result<(), StateError> {
        write_json(&self.root.join("status.json"), s)
    }
}

/// Read a JSON file of the state dir; `None` when absent.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StateError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), StateError> {
    atomic_write_stream(path, |w| {
        serde_json::to_writer_pretty(&mut *w, v)?;
        w.write_all(b"\n")
    })
    .map_err(io(path))
}

/// A 64-bit fingerprint of `v`'s JSON, computed without building the text.
pub fn fingerprint<T: Serialize>(v: &T) -> u64 {
    use std::hash::Hasher;
    struct H(std::collections::hash_map::DefaultHasher);
    impl Write for H {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.write(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = H(Default::default());
    let _ = serde_json::to_writer(&mut h, v);
    h.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_and_state_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let a = StateDir::open(d.path()).unwrap();
        match StateDir::open(d.path()) {
            Err(StateError::Locked { holder, .. }) => assert!(holder.contains("pid")),
            other => panic!("{:?}", other.err()),
        }
        assert_eq!(a.load().unwrap(), None);
        let s = PersistedState {
            version: 1,
            head: Some("abc".into()),
            ..Default::default()
        };
        a.save(&s).unwrap();
        assert_eq!(a.load().unwrap(), Some(s));
        drop(a);
        // Another test thread may be spawning a child right now: between fork and exec the
        // child briefly shares our (close-on-exec) lock file description, so retry a moment.
        let mut reopened = StateDir::open(d.path());
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            reopened = StateDir::open(d.path());
        }
        reopened.unwrap();
    }
}
