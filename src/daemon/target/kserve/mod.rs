//! The `kserve` target (docs/targets.md, "kserve"): one `InferenceService` per model in a
//! folder of a GitOps repository that Argo CD or Flux applies, one commit and push per pass.
//!
//! [`render`] is the pure half (documents, reading them back); [`gitops`] the git half (the
//! working clone, fetch, commit, push). A pass is: `observe` fetches the branch and resets
//! the clone to it; `switch`/`undeploy` write or remove files in the clone; `commit` writes
//! `kustomization.yaml`, commits once and pushes, replaying baton's files onto the remote
//! when someone else pushed in between.

pub mod gitops;
pub mod render;

use super::{Observed, PassSummary, Switched, Target, TargetError};
use crate::daemon::artifact::ArtifactSource;
use crate::daemon::release::{DeploymentRecord, Release};
use crate::manifest::target::{KserveConfig, KserveMode};
use chrono::{DateTime, Utc};
use git2::{ObjectType, Oid};
use gitops::{Checkout, Entry, Folder, GitError, Pushed, Remote};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Pushes tried per commit before the pass gives up (each after a fetch and replay).
pub const PUSH_ATTEMPTS: usize = 5;

/// A file this pass wrote (`Some`) or removed (`None`), to replay after a rejected push.
type Pending = Option<(Vec<u8>, Arc<DeploymentRecord>)>;

pub struct KserveTarget {
    env: String,
    cfg: KserveConfig,
    read_only: bool,
    checkout: Checkout,
    /// The repository as shown in logs (credentials in a URL masked).
    shown: String,
    /// (model, blob) -> what that file says: each blob is parsed and re-rendered once.
    cache: HashMap<(String, Oid), Observed>,
    /// The folder's tree and what was observed from it: a pass over an unchanged folder
    /// reads nothing.
    last: Option<(Option<Oid>, BTreeMap<String, Observed>)>,
    /// Models with a file in the clone, and the record it carries (`None`: unreadable).
    files: BTreeMap<String, Option<Arc<DeploymentRecord>>>,
    /// This pass's writes and removals, by model.
    pending: BTreeMap<String, Pending>,
}

impl KserveTarget {
    /// The target of environment `env`; nothing is touched until the first `observe`.
    pub fn new(
        env: &str,
        cfg: &KserveConfig,
        state_dir: &Path,
        read_only: bool,
    ) -> Result<Self, TargetError> {
        let remote = Remote::parse(&cfg.repo, state_dir).map_err(TargetError::Config)?;
        if let Some(why) = folder_problem(&cfg.path) {
            return Err(TargetError::Config(why));
        }
        let dir = state_dir.join("targets").join(env).join("gitops");
        Ok(KserveTarget {
            env: env.to_owned(),
            cfg: cfg.clone(),
            read_only,
            shown: redact(&remote.location().to_string_lossy()),
            checkout: Checkout::new(&dir, remote, &cfg.branch, &cfg.path),
            cache: HashMap::new(),
            last: None,
            files: BTreeMap::new(),
            pending: BTreeMap::new(),
        })
    }

    /// The working clone's folder.
    pub fn clone_dir(&self) -> &Path {
        &self.checkout.dir
    }

    fn err(&self, e: GitError) -> TargetError {
        TargetError::Other(format!("GitOps repository {}: {e}", self.shown))
    }

    /// What the folder at the fetched tip says, per model (cached by tree and by blob).
    fn read_folder(&mut self, folder: &Folder) -> Result<BTreeMap<String, Observed>, GitError> {
        if let Some((tree, seen)) = &self.last {
            if *tree == folder.tree {
                return Ok(seen.clone());
            }
        }
        let mut out = BTreeMap::new();
        let mut keep: HashMap<(String, Oid), Observed> = HashMap::new();
        for (name, entry) in &folder.entries {
            let Some(model) = name.strip_suffix(".yaml") else {
                continue;
            };
            if name == render::KUSTOMIZATION || !crate::names::is_model_name(model) {
                continue;
            }
            let obs = match entry {
                Entry::NotAFile => Observed {
                    drift: vec![format!("{name} is not a regular file (a link or a folder)")],
                    ..Default::default()
                },
                Entry::File(id) => {
                    let key = (model.to_owned(), *id);
                    match self.cache.remove(&key) {
                        Some(o) => {
                            keep.insert(key, o.clone());
                            o
                        }
                        None => {
                            let bytes = self.checkout.blob(*id)?;
                            let o = render::observe_document(&self.cfg, &self.env, model, &bytes);
                            keep.insert(key, o.clone());
                            o
                        }
                    }
                }
            };
            out.insert(model.to_owned(), obs);
        }
        self.cache = keep;
        // kustomization.yaml must list exactly the rendered models: anything else changes
        // what Argo CD or Flux applies, so it is drift of every model it concerns.
        let listed: Vec<&str> = out
            .iter()
            .filter(|(_, o)| o.record.is_some())
            .map(|(m, _)| m.as_str())
            .collect();
        let expected = render::kustomization(listed.iter().copied());
        let actual = match folder.entries.get(render::KUSTOMIZATION) {
            Some(Entry::File(id)) => Some(self.checkout.blob(*id)?),
            _ => None,
        };
        if !listed.is_empty() && actual.as_deref() != Some(expected.as_bytes()) {
            let why = match actual {
                None => "kustomization.yaml is missing".to_owned(),
                Some(_) => "kustomization.yaml differs from the list of rendered models".to_owned(),
            };
            for o in out.values_mut().filter(|o| o.record.is_some()) {
                o.drift.push(why.clone());
            }
        }
        self.last = Some((folder.tree, out.clone()));
        Ok(out)
    }

    fn observe_inner(&mut self) -> Result<BTreeMap<String, Observed>, GitError> {
        self.pending.clear();
        let folder = if self.read_only {
            // `baton status`: read what the daemon last fetched; never fetch, reset or write.
            if !self.checkout.open_read_only()? {
                return Ok(BTreeMap::new());
            }
            self.checkout.folder()?
        } else {
            self.checkout.ensure()?;
            self.checkout.fetch()?;
            let folder = self.checkout.folder()?;
            self.checkout.reset(folder.tip)?;
            folder
        };
        let seen = self.read_folder(&folder)?;
        self.files = seen
            .iter()
            .map(|(m, o)| (m.clone(), o.record.clone()))
            .collect();
        Ok(seen)
    }

    /// The commit message of a pass: subject naming the environment, the versions and the
    /// registry commit; the changes in the body; `Baton-Source-Commit:` trailer.
    fn message(&self, summary: &PassSummary) -> String {
        let commit = if summary.registry_commit.is_empty() {
            self.pending
                .values()
                .flatten()
                .map(|(_, r)| r.commit.clone())
                .max()
                .unwrap_or_default()
        } else {
            summary.registry_commit.clone()
        };
        let short = &commit[..commit.len().min(10)];
        let changes = if summary.changes.is_empty() {
            self.pending
                .iter()
                .map(|(m, p)| match p {
                    Some((_, r)) => format!("{m}@{}", r.release.label()),
                    None => format!("{m} (undeployed)"),
                })
                .collect()
        } else {
            summary.changes.clone()
        };
        let listed = changes.join(", ");
        let subject = if listed.len() <= 60 {
            format!("baton({}): {listed} from {short}", self.env)
        } else {
            format!(
                "baton({}): {} changes from {short}",
                self.env,
                changes.len()
            )
        };
        let mut m = format!(
            "{subject}\n\nEnvironment {} at registry commit {commit}:\n",
            self.env
        );
        for c in &changes {
            m.push_str(&format!("- {c}\n"));
        }
        m.push_str(&format!(
            "\nBaton-Environment: {}\nBaton-Source-Commit: {commit}\n",
            self.env
        ));
        m
    }

    /// Write the pending files and `kustomization.yaml` into the clone.
    fn write_pending(&mut self) -> Result<(), GitError> {
        let pending = std::mem::take(&mut self.pending);
        for (model, p) in &pending {
            let name = format!("{model}.yaml");
            match p {
                Some((bytes, _)) => self.checkout.write(&name, bytes)?,
                None => self.checkout.remove(&name)?,
            }
        }
        self.pending = pending;
        let listed = self
            .files
            .iter()
            .filter(|(_, r)| r.is_some())
            .map(|(m, _)| m.as_str());
        let k = render::kustomization(listed);
        self.checkout.write(render::KUSTOMIZATION, k.as_bytes())
    }

    /// One commit of the pending files, pushed; after a rejected push: fetch, reset to the
    /// new tip, write baton's files again (its own folder: its version wins) and retry.
    fn commit_inner(&mut self, summary: &PassSummary) -> Result<(), GitError> {
        let message = self.message(summary);
        for attempt in 1..=PUSH_ATTEMPTS {
            if attempt > 1 {
                self.checkout.fetch()?;
                let tip = self.checkout.tip()?;
                self.checkout.reset(tip)?;
            }
            self.write_pending()?;
            if !self.checkout.commit(&message)? {
                tracing::debug!(env = %self.env, "nothing changed in the GitOps folder: no commit");
                return Ok(());
            }
            match self.checkout.push()? {
                Pushed::Done => {
                    // What was pushed is known: seed the cache so the next observe parses
                    // nothing it wrote itself.
                    for (model, p) in &self.pending {
                        if let Some((bytes, record)) = p {
                            let id = Oid::hash_object(ObjectType::Blob, bytes)?;
                            let obs = Observed {
                                current: Some(record.sha256.clone()),
                                record: Some(record.clone()),
                                drift: Vec::new(),
                            };
                            self.cache.insert((model.clone(), id), obs);
                        }
                    }
                    return Ok(());
                }
                Pushed::Behind => {
                    tracing::info!(environment = %self.env, attempt, "the GitOps branch moved on: fetching and replaying baton's files");
                }
            }
        }
        Err(GitError::Refused(format!(
            "the push was rejected {PUSH_ATTEMPTS} times (others keep pushing to the branch)"
        )))
    }

    fn writable(&self) -> Result<(), TargetError> {
        if self.read_only {
            return Err(TargetError::Other(
                "the kserve target is read-only here (baton status)".into(),
            ));
        }
        Ok(())
    }
}

/// Why `path` cannot be the folder baton owns in the GitOps repository: a `.git` component
/// would write into git's own files (of the clone, on a case-insensitive disk too).
pub fn folder_problem(path: &str) -> Option<String> {
    path.split('/')
        .any(|c| c.eq_ignore_ascii_case(".git"))
        .then(|| format!("path `{path}` must not contain a `.git` folder"))
}

/// `repo` with any `user:password@` of a URL masked.
fn redact(repo: &str) -> String {
    crate::gitcli::mask_credentials(repo)
}

impl Target for KserveTarget {
    fn describe(&self) -> String {
        let mode = match self.cfg.mode {
            KserveMode::Standard => "standard",
            KserveMode::Knative => "knative",
        };
        format!(
            "kserve {} {}:{} ({mode}, namespace {})",
            self.shown, self.cfg.branch, self.cfg.path, self.cfg.namespace
        )
    }

    fn observe(&mut self) -> Result<BTreeMap<String, Observed>, TargetError> {
        self.observe_inner().map_err(|e| self.err(e))
    }

    /// Nothing to fetch (KServe's storage initializer loads the artifact): check that every
    /// version can run on KServe.
    fn stage(
        &mut self,
        release: &Release,
        _source: &dyn ArtifactSource,
    ) -> Result<(), TargetError> {
        let problems = render::problems(release, self.cfg.mode);
        if problems.is_empty() {
            return Ok(());
        }
        Err(TargetError::Other(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ))
    }

    fn switch(&mut self, release: &Release, now: DateTime<Utc>) -> Result<Switched, TargetError> {
        self.writable()?;
        self.checkout.ensure().map_err(|e| self.err(e))?;
        let previous = self.files.get(&release.model).cloned().flatten();
        // A repair keeps the recorded deploy time, so it renders the very bytes it restores.
        let time = match &previous {
            Some(p) if p.release.same_content(release) && p.commit == release.commit => p.time,
            _ => render::whole_seconds(now),
        };
        let bytes = render::render(&self.cfg, &self.env, release, time)
            .map_err(|e| TargetError::Other(e.to_string()))?;
        let name = format!("{}.yaml", release.model);
        self.checkout
            .write(&name, bytes.as_bytes())
            .map_err(|e| self.err(e))?;
        let record = Arc::new(DeploymentRecord::new(&self.env, release, time));
        self.files
            .insert(release.model.clone(), Some(record.clone()));
        self.pending
            .insert(release.model.clone(), Some((bytes.into_bytes(), record)));
        Ok(Switched {
            previous: previous.map(|p| (*p).clone()),
            artifact: release.primary().uri.clone(),
        })
    }

    fn undeploy(&mut self, model: &str) -> Result<(), TargetError> {
        self.writable()?;
        self.checkout
            .remove(&format!("{model}.yaml"))
            .map_err(|e| self.err(e))?;
        self.files.remove(model);
        self.pending.insert(model.to_owned(), None);
        Ok(())
    }

    fn commit(&mut self, summary: &PassSummary) -> Result<(), TargetError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.writable()?;
        let result = self.commit_inner(summary);
        self.pending.clear();
        if let Err(e) = result {
            // Nothing half-applied: the clone goes back to the remote's tip, and the next
            // observe starts from what the remote has.
            self.last = None;
            let back = self.checkout.tip().and_then(|tip| self.checkout.reset(tip));
            if let Err(b) = back {
                tracing::warn!(environment = %self.env, "resetting the GitOps clone failed: {b}");
            }
            return Err(self.err(e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(
            redact("https://user:tok@github.com/acme/x.git"),
            "https://***@github.com/acme/x.git"
        );
        assert_eq!(
            redact("git@github.com:acme/x.git"),
            "git@github.com:acme/x.git"
        );
        assert_eq!(redact("/srv/x.git"), "/srv/x.git");
    }

    #[test]
    fn the_owned_folder_stays_out_of_git_s_own_files() {
        assert!(folder_problem("clusters/prod").is_none());
        assert!(folder_problem(".git/hooks").is_some());
        assert!(folder_problem("a/.GIT").is_some());
        assert!(folder_problem(".github/ml").is_none());
    }
}
