//! The `command` target (docs/targets.md#command): each switch runs `apply` (`sh -c`, its own
//! process group, a timeout) with the release in its environment and on stdin; exit 0 = applied.

use super::payload;
use super::records::Records;
use super::store::ReleaseStore;
use super::{BuildContext, Observed, Switched, Target, TargetError};
use crate::daemon::artifact::ArtifactSource;
use crate::daemon::health::HealthEnv;
use crate::daemon::process::{self, Job};
use crate::daemon::release::{DeploymentRecord, Release};
use crate::manifest::target::CommandConfig;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Staged builds kept besides the ones a record names.
pub const KEEP_BUILDS: usize = 3;

pub struct CommandTarget {
    env: String,
    apply: String,
    timeout: Duration,
    /// Where `apply` runs: the daemon's state dir (as the health command).
    cwd: PathBuf,
    records: Records,
    /// `<state-dir>/targets/<env>/releases/<sha256>/`: the verified builds `apply` is given.
    store: ReleaseStore,
}

/// What one run of `apply` is told, besides the release JSON on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnv {
    pub action: payload::Action,
    pub version: String,
    pub artifact: String,
    pub artifact_uri: String,
    pub sha256: String,
    pub traffic: String,
    pub commit: String,
}

impl RunEnv {
    /// A deploy of `release`; `artifact` is where its primary's bytes are (else its URI).
    pub fn deploy(release: &Release, artifact: &str) -> Self {
        let p = release.primary();
        RunEnv {
            action: payload::Action::Deploy,
            version: p.version.clone(),
            artifact: artifact.to_owned(),
            artifact_uri: p.uri.clone(),
            sha256: p.sha256.clone(),
            traffic: payload::traffic(release),
            commit: release.commit.clone(),
        }
    }

    /// An undeploy: what ran (from the record, its bytes at `artifact`) with no traffic.
    pub fn undeploy(prev: Option<&DeploymentRecord>, artifact: &str) -> Self {
        let p = prev.map(|r| r.release.primary());
        let s = |f: &dyn Fn(&crate::daemon::release::ReleaseVersion) -> String| {
            p.map(f).unwrap_or_default()
        };
        RunEnv {
            action: payload::Action::Undeploy,
            version: s(&|v| v.version.clone()),
            artifact: artifact.to_owned(),
            artifact_uri: s(&|v| v.uri.clone()),
            sha256: s(&|v| v.sha256.clone()),
            traffic: "{}".into(),
            commit: prev.map(|r| r.commit.clone()).unwrap_or_default(),
        }
    }
}

impl CommandTarget {
    pub fn new(env: &str, c: &CommandConfig, cx: &BuildContext<'_>) -> Result<Self, TargetError> {
        if !crate::names::is_model_name(env) {
            return Err(TargetError::Config(format!(
                "environment `{env}` is not a DNS label"
            )));
        }
        let root = cx.state_dir.join("targets").join(env);
        Ok(CommandTarget {
            env: env.to_owned(),
            apply: c.apply.clone(),
            timeout: c.timeout,
            cwd: cx.state_dir.to_path_buf(),
            records: Records::new(&root),
            store: ReleaseStore::new(&root),
        })
    }

    /// Drop staged builds neither a record nor `also` names, but the newest [`KEEP_BUILDS`]
    /// of them. Only logged when it fails: the switch before it took effect, and must not be
    /// failed.
    fn gc(&mut self, also: Option<&Release>) {
        let mut keep: Vec<String> = also
            .iter()
            .flat_map(|r| r.versions.iter().map(|v| v.sha256.clone()))
            .collect();
        let models = match self.records.models() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(environment = %self.env, "not collecting staged builds: {e}");
                return;
            }
        };
        for m in models {
            match self.records.read(&m) {
                Ok(Some(r)) => keep.extend(r.release.versions.iter().map(|v| v.sha256.clone())),
                Ok(None) => {}
                // A record that cannot be read may name anything: keep everything.
                Err(_) => return,
            }
        }
        let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
        if let Err(e) = self.store.gc(&keep, KEEP_BUILDS) {
            tracing::warn!(environment = %self.env, "collecting staged builds: {e}");
        }
    }

    /// Run `apply` for `model` with `e` and `stdin`.
    fn run(&self, model: &str, e: &RunEnv, stdin: &serde_json::Value) -> Result<(), TargetError> {
        let he = HealthEnv {
            env: &self.env,
            model,
            version: &e.version,
            artifact: &e.artifact,
            sha256: &e.sha256,
        };
        let mut vars: Vec<(&str, &str)> = he.vars().to_vec();
        vars.extend([
            ("BATON_ACTION", e.action.as_str()),
            ("BATON_TRAFFIC", e.traffic.as_str()),
            ("BATON_ARTIFACT_URI", e.artifact_uri.as_str()),
            ("BATON_COMMIT", e.commit.as_str()),
        ]);
        let mut bytes = serde_json::to_vec_pretty(stdin).unwrap_or_default();
        bytes.push(b'\n');
        let out = process::run(&Job {
            label: "apply command",
            command: &self.apply,
            env: &vars,
            stdin: Some(&bytes),
            cwd: &self.cwd,
            timeout: self.timeout,
        })
        .map_err(|err| TargetError::Other(format!("{model}: {err}")))?;
        if !out.tail().is_empty() {
            tracing::info!(
                environment = %self.env,
                model,
                "apply command ({}): {}",
                e.action.as_str(),
                out.tail()
            );
        }
        Ok(())
    }
}

impl Target for CommandTarget {
    fn describe(&self) -> String {
        format!("command {}", self.apply)
    }

    fn observe(&mut self) -> Result<BTreeMap<String, Observed>, TargetError> {
        self.records.observe()
    }

    /// Fetch and verify every version's artifact into the store (`BATON_ARTIFACT`).
    fn stage(&mut self, release: &Release, source: &dyn ArtifactSource) -> Result<(), TargetError> {
        self.store.stage(release, source)
    }

    fn switch(&mut self, release: &Release, now: DateTime<Utc>) -> Result<Switched, TargetError> {
        let previous = self.records.read(&release.model).ok().flatten();
        // Staged just before, or kept since (the release a failed health check switches
        // back to): never run `apply` with a path that does not hold the build.
        for v in &release.versions {
            if !self.store.verified(&v.sha256) {
                return Err(TargetError::Other(format!(
                    "{}@{}: the build {} is not staged",
                    release.model,
                    v.version,
                    &v.sha256[..v.sha256.len().min(12)]
                )));
            }
        }
        let paths: BTreeMap<String, String> = release
            .versions
            .iter()
            .map(|v| {
                let p = self.store.path_of(v).to_string_lossy().into_owned();
                (v.version.clone(), p)
            })
            .collect();
        let artifact = paths
            .get(&release.primary().version)
            .cloned()
            .unwrap_or_default();
        let body = payload::deploy(&self.env, release, previous.as_deref(), &paths, None);
        self.run(&release.model, &RunEnv::deploy(release, &artifact), &body)?;
        self.records
            .write(&DeploymentRecord::new(&self.env, release, now))?;
        // The previous release stays staged: a failed health check switches back to it.
        self.gc(previous.as_ref().map(|p| &p.release));
        Ok(Switched {
            previous: previous.map(|p| (*p).clone()),
            artifact,
        })
    }

    fn undeploy(&mut self, model: &str) -> Result<(), TargetError> {
        let previous = self.records.read(model).ok().flatten();
        let body = payload::undeploy(&self.env, model, previous.as_deref(), None);
        // What is being removed: its staged build while it is still there, else its URI.
        let artifact = previous.as_deref().map(|r| {
            let p = self.store.path_of(r.release.primary());
            if p.exists() {
                p.to_string_lossy().into_owned()
            } else {
                r.release.primary().uri.clone()
            }
        });
        let e = RunEnv::undeploy(previous.as_deref(), artifact.as_deref().unwrap_or_default());
        self.run(model, &e, &body)?;
        self.records.remove(model)?;
        self.gc(None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::artifact::ArtifactError;
    use crate::daemon::release::{test_release, ReleaseVersion};
    use crate::manifest::version::ArtifactFile;
    use std::io::Read;

    /// Serves `<version label>` as the bytes of each version.
    struct Labels;
    impl ArtifactSource for Labels {
        fn open(&self, _r: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError> {
            Ok(Box::new(std::io::Cursor::new(
                v.version.clone().into_bytes(),
            )))
        }
        fn open_file(
            &self,
            _r: &Release,
            _v: &ReleaseVersion,
            _f: &ArtifactFile,
        ) -> Result<Box<dyn Read>, ArtifactError> {
            unreachable!("single-file artifacts only")
        }
    }

    fn release(v: &str) -> Release {
        let mut r = test_release("m", &[(v, 'x', 100)]);
        r.versions[0].sha256 = crate::fsutil::sha256_reader(v.as_bytes()).unwrap().0;
        r
    }

    #[test]
    fn a_failed_apply_keeps_the_record_and_a_switch_back_finds_its_build() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        let c = CommandConfig {
            apply: format!(
                "[ \"$BATON_VERSION\" != bad ] || exit 9; echo \"$BATON_ACTION $BATON_VERSION $(cat \"$BATON_ARTIFACT\")\" >> {}",
                log.display()
            ),
            timeout: Duration::from_secs(30),
        };
        let cx = BuildContext {
            state_dir: d.path(),
            read_only: false,
        };
        let mut t = CommandTarget::new("prod", &c, &cx).unwrap();
        let recorded = |t: &mut CommandTarget| {
            t.observe().unwrap().get("m").map(|o| {
                assert!(o.drift.is_empty());
                o.record.as_ref().unwrap().version.clone()
            })
        };
        let (one, two, bad) = (release("1"), release("2"), release("bad"));
        t.stage(&one, &Labels).unwrap();
        assert!(t.switch(&one, Utc::now()).unwrap().previous.is_none());
        assert_eq!(recorded(&mut t).as_deref(), Some("1"));

        t.stage(&bad, &Labels).unwrap();
        let err = t.switch(&bad, Utc::now()).unwrap_err();
        assert_eq!(err.to_string(), "m: apply command exited with 9");
        assert_eq!(recorded(&mut t).as_deref(), Some("1"), "the record stays");

        // Never run with a build that is not there.
        let err = t.switch(&two, Utc::now()).unwrap_err();
        assert!(err.to_string().contains("is not staged"), "{err}");

        t.stage(&two, &Labels).unwrap();
        let s = t.switch(&two, Utc::now()).unwrap();
        assert_eq!(s.previous.unwrap().version, "1");
        assert_eq!(std::fs::read(&s.artifact).unwrap(), b"2");
        // A health failure switches back without staging: the previous build was kept.
        t.switch(&one, Utc::now()).unwrap();
        t.undeploy("m").unwrap();
        assert_eq!(recorded(&mut t), None);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "deploy 1 1\ndeploy 2 2\ndeploy 1 1\nundeploy 1 1\n"
        );
    }
}
