//! One reconcile pass, level-triggered: read the branch head, re-check what landed (per-model
//! holds), derive each environment's intent, plan against the target, apply, and publish.

use super::admission::{self, Ancestry};
use super::artifact::remote::Remote;
use super::artifact::{ArtifactLimits, Fetcher, TreeCache};
use super::events::{Event, EventKind, EventLog};
use super::gate::{self, HoldKind};
use super::health;
use super::metrics::{Metrics, ModelInfo};
use super::notify::Notifier;
use super::plan::{self, Step, SwitchKind};
use super::release::{releases_of, Release};
use super::state::{Failure, Hold, ModelState, PersistedState, StateDir, StateError};
use super::target::{self, Observed, PassSummary, Target, TargetError};
use super::view::{self, EnvironmentView, HeldView, ModelView, StatusView, SyncStatus};
use crate::check;
use crate::diag::Diagnostic;
use crate::manifest::policy::TargetSpec;
use crate::manifest::Policy;
use crate::registry::files::GitFiles;
use crate::registry::{desired::desired_state, invariants, Registry, Store};
use crate::repo::RepoError;
use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

#[path = "verify/hooks.rs"]
mod verify_hooks;

/// Errors that end a reconcile pass early; the pass is retried with backoff.
#[derive(Debug, Error)]
pub enum ControllerError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("branch `{0}` not found in the repository")]
    NoBranch(String),
    #[error("--trust {rev}: that commit is not on branch {branch} (it must be the head or one of its ancestors)")]
    TrustNotOnBranch { rev: String, branch: String },
}

/// How the controller was started.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The repository read (the watched one, or the clone of `--url`).
    pub repo: PathBuf,
    pub branch: String,
    /// `--path`.
    pub path: Option<String>,
    pub interval: Duration,
    pub trust: Option<String>,
    /// Timeout of artifact downloads.
    pub fetch_timeout: Duration,
    /// `--github owner/repo`: count the reviews of the pull request each commit came from.
    pub github: Option<crate::check::GithubSource>,
    /// Size caps and `file://` roots of artifact reads.
    pub artifacts: ArtifactLimits,
    /// `--public-url`: where people reach the dashboard (links in notifications).
    pub public_url: Option<String>,
    /// `--signing-key` and `--url`: how a verification's rollback is written (docs/verification.md).
    pub rollback: super::verify::rollback::RollbackConfig,
}

/// The result of one pass.
#[derive(Debug, Clone, Default)]
pub struct PassOutcome {
    /// Some switch failed (will be retried).
    pub failed: bool,
    /// A stop was requested between steps.
    pub interrupted: bool,
}

pub struct Controller {
    cfg: ControllerConfig,
    repo: Repository,
    /// The registries of this pass by commit (each loaded once), over the loader's caches.
    store: Store,
    /// The gates engine, keeping its caches between heads.
    judge: check::Judge,
    dir: StateDir,
    state: PersistedState,
    targets: BTreeMap<String, (TargetSpec, Box<dyn Target>)>,
    /// Located errors of the last head.
    errors: Vec<Diagnostic>,
    /// When each head was first seen, for commit-to-deployed latency.
    seen: Option<(String, Instant)>,
    stop: Arc<AtomicBool>,
    pub events: EventLog,
    pub metrics: Metrics,
    pub status: Arc<StatusView>,
    cache: Option<(EffectiveKey, Arc<Policy>, Arc<Effective>)>,
    /// What the head says (for status), per head.
    head_cache: Option<(String, Option<Arc<Effective>>)>,
    /// Git tree listings for artifact reads, kept for one pass.
    trees: TreeCache,
    /// Object-store clients for s3:// and gs:// artifacts, built once per bucket.
    remote: Remote,
    /// Fingerprint of the state as last written, to skip writing an unchanged state.json.
    saved: Option<u64>,
    /// The last admission: new commits judged and how long it took (benchmarks).
    last_admission: Option<(usize, Duration)>,
}

/// A step of a wave that took effect on the target (before its commit and health check).
enum Applied {
    Switched {
        model: String,
        release: Release,
        kind: SwitchKind,
        drift: Vec<String>,
        switched: Box<target::Switched>,
    },
    Undeployed {
        model: String,
    },
}

impl Applied {
    fn model(&self) -> &str {
        match self {
            Applied::Switched { model, .. } | Applied::Undeployed { model } => model,
        }
    }

    fn describe(&self) -> String {
        match self {
            Applied::Switched { model, release, .. } => format!("{model}@{}", release.label()),
            Applied::Undeployed { model } => format!("{model} (undeployed)"),
        }
    }
}

/// environment -> model -> release the environment should run (after holds).
type Effective = gate::Effective;

/// What the effective state is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EffectiveKey {
    head: String,
    policy: String,
    held: Vec<(String, String)>,
}

/// The policy when the policy commit has none: no stages, nothing deployed.
fn empty_policy() -> Policy {
    Policy {
        version: 1,
        stages: vec![],
        rollback: Default::default(),
        groups: Default::default(),
        policy_owners: vec![],
        signers: None,
        environments: Default::default(),
        notifications: vec![],
    }
}

/// Retry delay after `attempts` failures: `interval` x 2^(attempts-1), at most 5 minutes.
pub fn backoff(interval: Duration, attempts: u32) -> Duration {
    let base = interval.max(Duration::from_millis(100));
    base.saturating_mul(1u32 << attempts.min(12).saturating_sub(1))
        .min(Duration::from_secs(300))
}

/// The model a repository-relative path under `<root>/models/<model>/` belongs to.
fn model_of(root: &str, file: &str) -> Option<String> {
    let prefix = crate::repo::join(root, "models/");
    file.strip_prefix(&prefix)
        .and_then(|rest| rest.split('/').next())
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
}

fn short(c: &str) -> &str {
    &c[..c.len().min(10)]
}

impl Controller {
    /// Open the repository and the (locked) state dir.
    pub fn new(
        cfg: ControllerConfig,
        dir: StateDir,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, ControllerError> {
        // libgit2's object cache is bounded (crate::gitopts): the big `models/` trees a pass
        // reads several times stay parsed, the rest of the registry's trees are evicted.
        crate::gitopts::init();
        let repo = crate::repo::open(&cfg.repo)?;
        let state = dir.load()?.unwrap_or_default();
        let mut events = EventLog::open(&dir.events_path()).map_err(|e| StateError::Io {
            path: dir.events_path(),
            source: e,
        })?;
        let metrics = Metrics::default();
        events.notifier = Some(Notifier::new(cfg.public_url.clone(), metrics.clone()));
        Ok(Controller {
            remote: Remote::new(cfg.fetch_timeout),
            cfg,
            repo,
            store: Store::new(),
            judge: check::Judge::new(),
            dir,
            state,
            targets: BTreeMap::new(),
            errors: Vec::new(),
            seen: None,
            stop,
            events,
            metrics,
            status: Arc::new(StatusView::default()),
            cache: None,
            head_cache: None,
            trees: Default::default(),
            saved: None,
            last_admission: None,
        })
    }

    pub fn state_dir(&self) -> &std::path::Path {
        &self.dir.root
    }

    /// The branch head.
    pub fn head(&self) -> Result<Oid, ControllerError> {
        let name = format!("refs/heads/{}", self.cfg.branch);
        let r = self
            .repo
            .find_reference(&name)
            .map_err(|e| match e.code() {
                git2::ErrorCode::NotFound => ControllerError::NoBranch(self.cfg.branch.clone()),
                // Not "not found": say what failed (out of file descriptors, permissions...).
                _ => ControllerError::Git(e),
            })?;
        Ok(r.peel_to_commit()?.id())
    }

    /// The registry at `commit`; `None` when the registry folder is absent there (a value,
    /// not an error: read failures are errors and fail the pass).
    /// Loaded once per pass (the store).
    fn load(&mut self, commit: &str) -> Result<Option<Arc<Registry>>, ControllerError> {
        let oid = Oid::from_str(commit)?;
        let root = self.state.registry.clone();
        Ok(self.store.get(&self.repo, oid, &root)?)
    }

    /// Registries loaded so far (one per commit and pass), for tests.
    pub fn registry_loads(&self) -> usize {
        self.store.loads
    }

    /// One full pass. Errors leave the state as it was; the caller retries with backoff.
    pub fn reconcile(&mut self) -> Result<PassOutcome, ControllerError> {
        let started = Instant::now();
        self.store.begin_pass();
        let head_oid = self.head()?;
        let head = head_oid.to_string();
        let now = Utc::now();
        if self.state.head.is_none() {
            self.start_from_trusted(head_oid)?;
        }
        if self.seen.as_ref().map(|s| &s.0) != Some(&head) {
            self.seen = Some((head.clone(), Instant::now()));
        }
        self.configure_notifier()?;
        if self.state.head.as_deref() != Some(head.as_str())
            || !self.state.held.is_empty()
            || !self.state.policy_pending.is_empty()
            || self.state.diverged.is_some()
        {
            self.recheck(head_oid, now)?;
        }
        let accepted = self.state.head.clone().unwrap_or_else(|| head.clone());
        let (policy, effective) = self.effective()?;
        if let Some(n) = &mut self.events.notifier {
            n.configure(&policy);
        }
        let mut outcome = PassOutcome::default();
        let mut envs = Vec::new();
        // Without holds the effective state is what the accepted head says: share it.
        let head_desired = if self.state.held.is_empty() && self.state.policy_commit == accepted {
            self.head_cache = None;
            Some(effective.clone())
        } else {
            self.head_desired(&accepted)?
        };
        for (env, spec) in policy.environments.iter() {
            // The target's config is validated again here (validation refuses a bad one too):
            // nothing is deployed outside deploy/ or to a malformed destination.
            if let Err(e) = self.ensure_target(env, &spec.target) {
                outcome.failed = true;
                self.events
                    .push(Event::new(EventKind::Failed, format!("{env}: {e}")).env(env));
                continue;
            }
            let none = BTreeMap::new();
            let wanted = effective.get(env).unwrap_or(&none);
            let verified = self.verify_intent(env, wanted);
            let wanted = verified.as_ref().unwrap_or(wanted);
            let mut observed = self.apply_env(env, spec, wanted, now, &mut outcome);
            if self.verify_env(env, &spec.stage, now) {
                if let Ok(o) = self.target(env).observe() {
                    observed = o;
                }
            }
            let hd = head_desired
                .as_ref()
                .and_then(|d| d.get(env))
                .unwrap_or(wanted);
            let mut view = self.env_view(env, &spec.stage, hd, &observed);
            self.verify_view(&mut view);
            envs.push(view);
            if outcome.interrupted {
                break;
            }
        }
        self.trees.borrow_mut().clear();
        let failed = self
            .events
            .notifier
            .as_ref()
            .map(|n| n.take_failures())
            .unwrap_or_default();
        for e in failed {
            self.events.push(e);
        }
        if self.publish(envs, now) {
            self.dir.save_status(&*self.status)?;
        }
        let fp = super::state::fingerprint(&self.state);
        if self.saved != Some(fp) {
            self.dir.save(&self.state)?;
            self.saved = Some(fp);
        }
        self.metrics.reconciles_total.inc();
        self.metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// An empty state dir: take the head (or `--trust REV`, which must be on the branch) as
    /// the trusted baseline, and say so loudly.
    fn start_from_trusted(&mut self, head: Oid) -> Result<(), ControllerError> {
        let trusted = match &self.cfg.trust {
            Some(rev) => {
                let t = crate::repo::resolve_commit(&self.repo, rev)?.id();
                if t != head && !self.repo.graph_descendant_of(head, t)? {
                    return Err(ControllerError::TrustNotOnBranch {
                        rev: rev.clone(),
                        branch: self.cfg.branch.clone(),
                    });
                }
                t
            }
            None => head,
        };
        let trusted = trusted.to_string();
        let commit = self.repo.find_commit(Oid::from_str(&trusted)?)?;
        let root =
            crate::repo::registry_root(&self.repo, &commit, &trusted, self.cfg.path.as_deref())?;
        self.state = PersistedState {
            version: 1,
            branch: self.cfg.branch.clone(),
            registry: root,
            head: Some(trusted.clone()),
            trusted: trusted.clone(),
            policy_commit: trusted.clone(),
            ..Default::default()
        };
        let msg = format!(
            "empty state dir: trusting {} ({}) as the baseline without judging it; commits after it are judged",
            short(&trusted),
            commit.summary().unwrap_or_default()
        );
        tracing::warn!(commit = %trusted, "{msg}");
        self.events
            .push(Event::new(EventKind::Trusted, msg).commit(&trusted));
        Ok(())
    }

    /// Judge what landed since the accepted head, step by step (admission), then hold models
    /// whose head does not validate and cascade `requires` holds.
    fn recheck(&mut self, head: Oid, now: DateTime<Utc>) -> Result<(), ControllerError> {
        let accepted_s = self.state.head.clone().unwrap_or_else(|| head.to_string());
        let accepted = Oid::from_str(&accepted_s)?;
        let steps = match admission::ancestry(&self.repo, accepted, head)? {
            Ancestry::Diverged => {
                if self.state.diverged.as_deref() != Some(head.to_string().as_str()) {
                    self.events.push(
                        Event::new(
                            EventKind::Diverged,
                            format!(
                                "branch {} moved to {}, which does not descend from the accepted head {}: every model keeps what it runs until the branch descends from it again, or baton serve is restarted with --trust",
                                self.cfg.branch,
                                short(&head.to_string()),
                                short(&accepted_s)
                            ),
                        )
                        .commit(&head.to_string()),
                    );
                    self.state.diverged = Some(head.to_string());
                }
                return Ok(());
            }
            Ancestry::Descends(steps) => steps,
        };
        if self.state.diverged.take().is_some() {
            self.events.push(
                Event::new(
                    EventKind::Head,
                    format!(
                        "branch {} descends from the accepted head again",
                        self.cfg.branch
                    ),
                )
                .commit(&head.to_string()),
            );
        }
        if !steps.is_empty() {
            self.events.push(
                Event::new(
                    EventKind::Head,
                    format!(
                        "branch {} moved to {} ({} new commit{})",
                        self.cfg.branch,
                        short(&head.to_string()),
                        steps.len(),
                        if steps.len() == 1 { "" } else { "s" }
                    ),
                )
                .commit(&head.to_string()),
            );
        }
        let old = self.state.held.clone();
        let (policy, before) = self.effective()?;
        let gate_holds: BTreeMap<String, Hold> = old
            .iter()
            .filter(|(_, h)| !h.requires)
            .map(|(m, h)| (m.clone(), h.clone()))
            .collect();
        let before_baseline = |m: &str| {
            old.get(m)
                .map(|h| h.baseline.clone())
                .unwrap_or_else(|| accepted_s.clone())
        };
        let root = self.state.registry.clone();
        let cx = admission::Context {
            repo: &self.repo,
            root: &root,
            now,
            github: self.cfg.github.clone(),
        };
        let clock = admission::clock_of(&self.state, &[]);
        let started = Instant::now();
        let n_steps = steps.len();
        let out = admission::admit(
            &mut self.judge,
            &cx,
            admission::Baselines {
                accepted,
                policy_commit: Oid::from_str(&self.state.policy_commit)?,
                held: gate_holds,
                clock,
            },
            &policy,
            steps,
            head,
        )?;
        self.last_admission = Some((n_steps, started.elapsed()));
        self.state.head = Some(out.head.to_string());
        self.state.policy_commit = out.policy_commit.to_string();
        self.state.held = out.held;
        self.state.policy_pending = out.policy_pending;
        for e in out.entered {
            self.state
                .entered
                .retain(|x| (&x.model, &x.version, &x.stage) != (&e.model, &e.version, &e.stage));
            self.state.entered.push(e);
        }

        // The head's own validation: a model whose files do not validate is blocked.
        let head_s = head.to_string();
        let diags = match self.load(&head_s)? {
            Some(reg) => {
                let files = GitFiles::new(&self.repo, reg.commit)?;
                invariants::validate(&reg, &files)
            }
            None => vec![Diagnostic::new(
                root.clone(),
                format!("no registry at {}", short(&head_s)),
            )],
        };
        let mut per_model: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in &diags {
            if let Some(m) = model_of(&root, &d.file) {
                per_model.entry(m).or_default().push(format!("schema: {d}"));
            }
        }
        let head_wide: Vec<&Diagnostic> = diags
            .iter()
            .filter(|d| model_of(&root, &d.file).is_none())
            .collect();
        if !head_wide.is_empty() && self.errors != diags {
            self.events.push(
                Event::new(
                    EventKind::BadHead,
                    format!(
                        "{}: {}",
                        short(&head_s),
                        head_wide
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                )
                .commit(&head_s),
            );
        }
        self.errors = diags;
        for (m, reasons) in per_model {
            match self.state.held.get_mut(&m) {
                Some(h) => {
                    h.kind = HoldKind::Blocked;
                    h.reasons.extend(reasons);
                }
                None => {
                    self.state.held.insert(
                        m.clone(),
                        Hold {
                            baseline: before_baseline(&m),
                            kind: HoldKind::Blocked,
                            reasons,
                            until: None,
                            since: old.get(&m).map(|h| h.since).unwrap_or(now),
                            offending: Some(head_s.clone()),
                            author: None,
                            requires: false,
                        },
                    );
                }
            }
        }

        // `requires` both ways: hold whichever side is about to break a requirement.
        for _ in 0..=self.state.held.len() + 64 {
            let (_, after) = self.effective()?;
            let fresh: Vec<(String, Vec<String>)> = gate::requires_holds(&before, &after)
                .into_iter()
                .filter(|(m, _)| !self.state.held.contains_key(m))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for (m, reasons) in fresh {
                let h = Hold {
                    baseline: before_baseline(&m),
                    kind: HoldKind::Blocked,
                    reasons,
                    until: None,
                    since: old.get(&m).map(|h| h.since).unwrap_or(now),
                    offending: None,
                    author: None,
                    requires: true,
                };
                self.state.held.insert(m, h);
            }
        }
        self.hold_events(&old, &head_s);
        Ok(())
    }

    /// Events for holds that appeared, changed kind or failing rules, or went away. Reason
    /// texts that only tick with time (a soak's "only 3h") do not repeat the event.
    fn hold_events(&mut self, old: &BTreeMap<String, Hold>, head: &str) {
        let mut out = Vec::new();
        for (m, h) in &self.state.held {
            let changed = old
                .get(m)
                .is_none_or(|o| o.kind != h.kind || o.reasons.len() != h.reasons.len());
            if !changed {
                continue;
            }
            let (word, kind) = match h.kind {
                HoldKind::Blocked => ("blocked", EventKind::Blocked),
                HoldKind::Waiting => ("waiting", EventKind::Waiting),
            };
            let by = match (&h.offending, &h.author) {
                (Some(c), Some(a)) => format!(" by {} ({a})", short(c)),
                (Some(c), None) => format!(" by {}", short(c)),
                _ => String::new(),
            };
            let msg = match h.until {
                Some(t) => format!(
                    "{m} {word}{by} until {}: {}",
                    t.to_rfc3339(),
                    h.reasons.join("; ")
                ),
                None => format!("{m} {word}{by}: {}", h.reasons.join("; ")),
            };
            let commit = h.offending.as_deref().unwrap_or(&h.baseline);
            let (author, subject) = self.commit_meta(commit);
            out.push(
                Event::new(kind, msg)
                    .model(m)
                    .commit(commit)
                    .author(h.author.as_deref().or(author.as_deref()))
                    .subject(subject.as_deref())
                    .reasons(&h.reasons),
            );
        }
        for m in old.keys().filter(|m| !self.state.held.contains_key(*m)) {
            out.push(
                Event::new(
                    EventKind::Unblocked,
                    format!("{m} goes ahead at {}", short(head)),
                )
                .model(m)
                .commit(head),
            );
        }
        for e in out {
            self.events.push(e);
        }
    }

    /// Who made `commit` and its subject line (for events people read).
    fn commit_meta(&self, commit: &str) -> (Option<String>, Option<String>) {
        let Some(c) = Oid::from_str(commit)
            .ok()
            .and_then(|o| self.repo.find_commit(o).ok())
        else {
            return (None, None);
        };
        let a = c.author();
        let author = match (a.name(), a.email()) {
            (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
            (Some(n), None) => Some(n.to_owned()),
            (None, Some(e)) => Some(e.to_owned()),
            _ => None,
        };
        (author, c.summary().map(str::to_owned))
    }

    /// Route notifications by the policy in force (re-read each pass; cached by the loader).
    fn configure_notifier(&mut self) -> Result<(), ControllerError> {
        let commit = self.state.policy_commit.clone();
        if commit.is_empty() {
            return Ok(());
        }
        let policy = self.load(&commit)?.and_then(|r| r.policy.clone());
        if let (Some(p), Some(n)) = (policy, &mut self.events.notifier) {
            n.configure(&p);
        }
        Ok(())
    }

    /// The policy in force and each environment's releases after holds: every model read at
    /// its accepted commit (the accepted head, or its hold's baseline) and interpreted by the
    /// policy in force. Cached per (accepted head, policy commit, holds).
    fn effective(&mut self) -> Result<(Arc<Policy>, Arc<Effective>), ControllerError> {
        let head = self.state.head.clone().unwrap_or_default();
        let key = EffectiveKey {
            head: head.clone(),
            policy: self.state.policy_commit.clone(),
            held: self
                .state
                .held
                .iter()
                .map(|(m, h)| (m.clone(), h.baseline.clone()))
                .collect(),
        };
        if let Some((k, p, e)) = &self.cache {
            if *k == key {
                return Ok((p.clone(), e.clone()));
            }
        }
        let pc = self.state.policy_commit.clone();
        let policy = self
            .load(&pc)?
            .and_then(|r| r.policy.clone())
            .unwrap_or_else(|| Arc::new(empty_policy()));
        let mut commits: BTreeSet<String> = self
            .state
            .held
            .values()
            .map(|h| h.baseline.clone())
            .collect();
        commits.insert(head.clone());
        let mut by_commit: BTreeMap<String, Effective> = BTreeMap::new();
        for c in commits {
            let Some(reg) = self.load(&c)? else {
                continue;
            };
            let reg = with_policy(reg, &policy);
            let d = desired_state(&reg)
                .iter()
                .map(|(env, ed)| (env.clone(), releases_of(ed, &c, &reg.root)))
                .collect();
            by_commit.insert(c, d);
        }
        let mut out: Effective = BTreeMap::new();
        for env in policy.environments.keys() {
            let mut rels = BTreeMap::new();
            let mut models: BTreeSet<&String> = BTreeSet::new();
            for d in by_commit.values() {
                if let Some(e) = d.get(env) {
                    models.extend(e.keys());
                }
            }
            for m in models {
                let c = self
                    .state
                    .held
                    .get(m)
                    .map(|h| h.baseline.as_str())
                    .unwrap_or(&head);
                if let Some(r) = by_commit
                    .get(c)
                    .and_then(|d| d.get(env))
                    .and_then(|e| e.get(m))
                {
                    rels.insert(m.clone(), r.clone());
                }
            }
            out.insert(env.clone(), rels);
        }
        let out = Arc::new(out);
        self.cache = Some((key, policy.clone(), out.clone()));
        Ok((policy, out))
    }

    /// What the accepted head says per environment under the policy in force (for status).
    fn head_desired(&mut self, head: &str) -> Result<Option<Arc<Effective>>, ControllerError> {
        if let Some((h, d)) = &self.head_cache {
            if h == head {
                return Ok(d.clone());
            }
        }
        let pc = self.state.policy_commit.clone();
        let policy = self.load(&pc)?.and_then(|r| r.policy.clone());
        let d = match (self.load(head)?, policy) {
            (Some(reg), Some(p)) => {
                let reg = with_policy(reg, &p);
                Some(Arc::new(
                    desired_state(&reg)
                        .iter()
                        .map(|(env, ed)| (env.clone(), releases_of(ed, head, &reg.root)))
                        .collect(),
                ))
            }
            _ => None,
        };
        self.head_cache = Some((head.to_owned(), d.clone()));
        Ok(d)
    }

    /// Build (or rebuild, when its spec changed) the target of `env`.
    fn ensure_target(&mut self, env: &str, spec: &TargetSpec) -> Result<(), TargetError> {
        if self.targets.get(env).is_none_or(|(s, _)| s != spec) {
            let cx = target::BuildContext {
                state_dir: &self.dir.root,
                read_only: false,
            };
            let t = target::from_spec(env, spec, &cx)?;
            self.targets.insert(env.to_owned(), (spec.clone(), t));
        }
        Ok(())
    }

    /// The target of `env`, built by [`Self::ensure_target`] earlier in the pass.
    fn target(&mut self, env: &str) -> &mut Box<dyn Target> {
        &mut self.targets.get_mut(env).expect("target built").1
    }

    /// Observe, plan and apply one environment; returns what the target runs afterwards.
    fn apply_env(
        &mut self,
        env: &str,
        spec: &crate::manifest::Environment,
        wanted: &BTreeMap<String, Release>,
        now: DateTime<Utc>,
        outcome: &mut PassOutcome,
    ) -> BTreeMap<String, Observed> {
        let observed = match self.target(env).observe() {
            Ok(o) => o,
            Err(e) => {
                outcome.failed = true;
                self.metrics.failures_total.inc();
                self.events.push(
                    Event::new(
                        EventKind::Failed,
                        format!("{env}: cannot read the target: {e}"),
                    )
                    .env(env),
                );
                return BTreeMap::new();
            }
        };
        let mut intent: BTreeMap<String, Release> = BTreeMap::new();
        let mut names: BTreeSet<String> = wanted.keys().cloned().collect();
        names.extend(observed.keys().cloned());
        let mstates = self.state.environments.entry(env.to_owned()).or_default();
        for m in names {
            let ms = mstates.entry(m.clone()).or_default();
            if ms.last_good.is_none() {
                ms.last_good = observed
                    .get(&m)
                    .and_then(|o| o.record.as_ref())
                    .map(|r| r.release.clone());
            }
            let desired = wanted.get(&m);
            let same = match (desired, &ms.last_good) {
                (Some(d), Some(g)) => d.same_content(g),
                (None, None) => true,
                _ => false,
            };
            let fp = desired
                .map(|d| d.fingerprint())
                .unwrap_or_else(|| "undeploy".into());
            if same {
                ms.failure = None;
            }
            // Deploy windows and every other gate were decided by admission; here only a
            // failed switch of this same content keeps the old release (health: until the
            // content changes; other errors: until the retry's backoff ends).
            let keep_old = !same
                && ms
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.fingerprint == fp && (f.health || now < f.next_at));
            let chosen = if keep_old {
                ms.last_good.as_ref()
            } else {
                desired
            };
            if let Some(r) = chosen {
                intent.insert(m.clone(), r.clone());
            }
        }
        let steps = plan::plan(&intent, &observed);
        if steps.is_empty() {
            return observed;
        }
        for wave in plan::waves(steps) {
            if self.stop.load(Ordering::SeqCst) {
                outcome.interrupted = true;
                break;
            }
            if !self.apply_wave(env, spec, wave, now, outcome) {
                break;
            }
        }
        match self.target(env).observe() {
            Ok(o) => o,
            Err(_) => observed,
        }
    }

    /// Apply one wave of steps (none requires another of the same wave): switch each, commit
    /// them together, then judge each deploy's health and switch the unhealthy ones back.
    /// False when the commit failed (later waves would build on what did not happen).
    fn apply_wave(
        &mut self,
        env: &str,
        spec: &crate::manifest::Environment,
        wave: Vec<Step>,
        now: DateTime<Utc>,
        outcome: &mut PassOutcome,
    ) -> bool {
        let interval = self.cfg.interval;
        let mut applied: Vec<Applied> = Vec::new();
        for step in wave {
            match step {
                Step::Undeploy { model } => match self.target(env).undeploy(&model) {
                    Ok(()) => applied.push(Applied::Undeployed { model }),
                    Err(e) => {
                        let reason = e.to_string();
                        self.fail(env, &model, "undeploy".into(), reason, false, interval, now);
                        outcome.failed = true;
                    }
                },
                Step::Switch {
                    model,
                    release,
                    kind,
                    drift,
                } => {
                    let fetcher = Fetcher {
                        repo: &self.repo,
                        timeout: self.cfg.fetch_timeout,
                        remote: &self.remote,
                        trees: &self.trees,
                        limits: &self.cfg.artifacts,
                    };
                    let t = &mut self.targets.get_mut(env).expect("target built").1;
                    let result = t
                        .stage(&release, &fetcher)
                        .and_then(|()| t.switch(&release, Utc::now()));
                    match result {
                        Ok(switched) => applied.push(Applied::Switched {
                            model,
                            release,
                            kind,
                            drift,
                            switched: Box::new(switched),
                        }),
                        Err(e) => {
                            let fp = release.fingerprint();
                            self.fail(env, &model, fp, e.to_string(), false, interval, now);
                            outcome.failed = true;
                        }
                    }
                }
            }
        }
        if applied.is_empty() {
            return true;
        }
        let summary = self.summary(env, applied.iter().map(Applied::describe));
        if let Err(e) = self.target(env).commit(&summary) {
            let reason = e.to_string();
            for a in applied {
                let fp = match &a {
                    Applied::Switched { release, .. } => release.fingerprint(),
                    Applied::Undeployed { .. } => "undeploy".into(),
                };
                self.fail(env, a.model(), fp, reason.clone(), false, interval, now);
            }
            outcome.failed = true;
            return false;
        }
        let probe = spec.health.as_ref().and_then(health::Probe::from_spec);
        let mut backs: Vec<(String, String)> = Vec::new();
        for a in applied {
            match a {
                Applied::Undeployed { model } => {
                    let ms = self.model_state(env, &model);
                    ms.last_good = None;
                    ms.failure = None;
                    self.events.push(
                        Event::new(
                            EventKind::Undeployed,
                            format!("{env}: {model} left stage {}", spec.stage),
                        )
                        .env(env)
                        .model(&model),
                    );
                }
                Applied::Switched {
                    model,
                    release,
                    kind,
                    drift,
                    switched,
                } => {
                    let unhealthy = match (&probe, kind) {
                        (Some(probe), SwitchKind::Deploy) => {
                            let p = release.primary();
                            let he = health::HealthEnv {
                                env,
                                model: &model,
                                version: &p.version,
                                artifact: &switched.artifact,
                                sha256: &p.sha256,
                            };
                            probe.check(&he, &self.dir.root).err()
                        }
                        _ => None,
                    };
                    if let Some(reason) = unhealthy {
                        let reason = reason.to_string();
                        self.health_failed(env, &model, &release, &switched, &reason, &mut backs);
                        let fp = release.fingerprint();
                        self.fail(env, &model, fp, reason, true, interval, now);
                        outcome.failed = true;
                    } else {
                        let prev = switched.previous.as_ref().map(|p| &p.release);
                        self.verify_deployed(env, &spec.stage, &model, &release, prev, kind, now);
                        self.switched(env, &model, release, kind, &drift);
                    }
                }
            }
        }
        if !backs.is_empty() {
            let summary = self.summary(env, backs.iter().map(|(m, l)| format!("{m}@{l}")));
            let result = self.target(env).commit(&summary);
            for (model, label) in backs {
                let e = match &result {
                    Ok(()) => Event::new(
                        EventKind::RolledBack,
                        format!("{env}: {model} back on {label}"),
                    ),
                    Err(e) => Event::new(
                        EventKind::Failed,
                        format!("{env}: {model}: switching back failed: {e}"),
                    ),
                };
                self.events.push(e.env(env).model(&model));
            }
        }
        true
    }

    /// What a commit of `changes` in `env` says.
    fn summary(&self, env: &str, changes: impl Iterator<Item = String>) -> PassSummary {
        PassSummary {
            env: env.to_owned(),
            registry_commit: self.state.head.clone().unwrap_or_default(),
            changes: changes.collect(),
        }
    }

    /// A deploy failed its health check: record it and switch the model back (collected in
    /// `backs` as (model, label) for one commit).
    fn health_failed(
        &mut self,
        env: &str,
        model: &str,
        release: &Release,
        switched: &target::Switched,
        reason: &str,
        backs: &mut Vec<(String, String)>,
    ) {
        let p = release.primary();
        self.events.push(
            Event::new(
                EventKind::Degraded,
                format!("{env}: {model}@{} is unhealthy: {reason}", release.label()),
            )
            .env(env)
            .model(model)
            .version(&p.version)
            .commit(&release.commit),
        );
        let t = self.target(env);
        let back = match &switched.previous {
            Some(prev) => t
                .switch(&prev.release, Utc::now())
                .map(|_| prev.release.label()),
            None => t.undeploy(model).map(|_| "nothing".to_owned()),
        };
        match back {
            Ok(label) => backs.push((model.to_owned(), label)),
            Err(e) => self.events.push(
                Event::new(
                    EventKind::Failed,
                    format!("{env}: {model}: switching back failed: {e}"),
                )
                .env(env)
                .model(model),
            ),
        }
    }

    /// A switch took effect and passed its health check.
    fn switched(
        &mut self,
        env: &str,
        model: &str,
        release: Release,
        kind: SwitchKind,
        drift: &[String],
    ) {
        let (word, msg) = match kind {
            SwitchKind::Deploy => (
                EventKind::Deployed,
                format!(
                    "{env}: {model} now runs {} (commit {})",
                    release.label(),
                    short(&release.commit)
                ),
            ),
            SwitchKind::Repair => (
                EventKind::Repaired,
                format!(
                    "{env}: {model} {} restored: {}",
                    release.label(),
                    drift.join("; ")
                ),
            ),
        };
        let p = release.primary();
        let (author, subject) = self.commit_meta(&release.commit);
        self.events.push(
            Event::new(word, msg)
                .env(env)
                .model(model)
                .version(&p.version)
                .commit(&release.commit)
                .author(author.as_deref())
                .subject(subject.as_deref()),
        );
        if kind == SwitchKind::Deploy {
            self.metrics.deployments_total.inc();
            if let Some((h, t)) = &self.seen {
                if *h == release.commit {
                    self.metrics
                        .commit_to_deployed_seconds
                        .observe(t.elapsed().as_secs_f64());
                }
            }
        }
        let ms = self.model_state(env, model);
        ms.last_good = Some(release);
        ms.failure = None;
    }

    fn model_state(&mut self, env: &str, model: &str) -> &mut ModelState {
        self.state
            .environments
            .entry(env.to_owned())
            .or_default()
            .entry(model.to_owned())
            .or_default()
    }

    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        env: &str,
        model: &str,
        fingerprint: String,
        reason: String,
        health: bool,
        interval: Duration,
        now: DateTime<Utc>,
    ) {
        self.metrics.failures_total.inc();
        let ms = self.model_state(env, model);
        let attempts = ms
            .failure
            .as_ref()
            .filter(|f| f.fingerprint == fingerprint)
            .map(|f| f.attempts + 1)
            .unwrap_or(1);
        let wait = backoff(interval, attempts);
        ms.failure = Some(Failure {
            fingerprint,
            reason: reason.clone(),
            health,
            attempts,
            next_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
        });
        if !health {
            self.events.push(
                Event::new(
                    EventKind::Failed,
                    format!(
                        "{env}: {model}: {reason} (attempt {attempts}, retry in {})",
                        humantime::format_duration(wait)
                    ),
                )
                .env(env)
                .model(model),
            );
        }
    }

    fn env_view(
        &self,
        env: &str,
        stage: &str,
        head_desired: &BTreeMap<String, Release>,
        observed: &BTreeMap<String, Observed>,
    ) -> EnvironmentView {
        let mut names: BTreeSet<&String> = head_desired.keys().collect();
        names.extend(observed.keys());
        let no_states = BTreeMap::new();
        let mstates = self.state.environments.get(env).unwrap_or(&no_states);
        let no_state = ModelState::default();
        let mut models = Vec::new();
        for m in names {
            let desired = head_desired.get(m);
            let obs = observed.get(m);
            let deployed = obs.and_then(|o| o.record.as_ref()).map(|r| &r.release);
            let in_place = match (desired, obs) {
                (Some(d), Some(o)) => plan::in_place(d, o),
                (None, None) => true,
                (None, Some(o)) => o.record.is_none() && o.current.is_none(),
                (Some(_), None) => false,
            };
            let ms = mstates.get(m.as_str()).unwrap_or(&no_state);
            let hold = self.state.held.get(m.as_str());
            let mut reasons = Vec::new();
            let mut waiting_until = None;
            let sync = if let Some(d) = &self.state.diverged {
                reasons.push(format!(
                    "diverged: branch {} is at {}, which does not descend from the accepted head; nothing is followed until it does (or restart with --trust)",
                    self.cfg.branch,
                    short(d)
                ));
                SyncStatus::Diverged
            } else if in_place {
                SyncStatus::Synced
            } else if let Some(h) = hold.filter(|h| h.kind == HoldKind::Blocked) {
                reasons.extend(h.reasons.iter().cloned());
                SyncStatus::Blocked
            } else if let Some(h) = hold.filter(|h| h.kind == HoldKind::Waiting) {
                reasons.extend(h.reasons.iter().cloned());
                waiting_until = h.until;
                SyncStatus::Waiting
            } else if let Some(f) = ms.failure.as_ref().filter(|f| f.health) {
                reasons.push(f.reason.clone());
                SyncStatus::Degraded
            } else {
                if let Some(f) = &ms.failure {
                    reasons.push(f.reason.clone());
                }
                if let Some(o) = obs {
                    reasons.extend(o.drift.iter().cloned());
                }
                SyncStatus::OutOfSync
            };
            let health = if ms.failure.as_ref().is_some_and(|f| f.health) {
                "degraded"
            } else if deployed.is_some() {
                "healthy"
            } else {
                "unknown"
            };
            let rec = obs.and_then(|o| o.record.as_ref());
            models.push(ModelView {
                model: m.clone(),
                desired: view::versions(desired),
                deployed: view::versions(deployed),
                sync,
                health: health.into(),
                reasons,
                waiting_until,
                deployed_commit: rec.map(|r| r.commit.clone()),
                deployed_at: rec.map(|r| r.time),
                verification: None,
            });
        }
        let target = self
            .targets
            .get(env)
            .map(|(_, t)| t.describe())
            .unwrap_or_default();
        EnvironmentView {
            name: env.to_owned(),
            stage: stage.to_owned(),
            target,
            models,
        }
    }

    /// Refresh metrics and the status view; true when the status changed (`updated` then
    /// says when).
    fn publish(&mut self, envs: Vec<EnvironmentView>, now: DateTime<Utc>) -> bool {
        self.metrics.set_models(
            envs.iter()
                .flat_map(|e| {
                    e.models.iter().map(move |m| ModelInfo {
                        env: e.name.clone(),
                        model: m.model.clone(),
                        version: m
                            .deployed
                            .iter()
                            .map(|v| v.version.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        sync: m.sync.as_str().into(),
                        health: m.health.clone(),
                    })
                })
                .collect(),
        );
        self.metrics.blocked_models.set(
            self.state
                .held
                .values()
                .filter(|h| h.kind == HoldKind::Blocked)
                .count() as i64,
        );
        let mut status = StatusView {
            branch: self.cfg.branch.clone(),
            registry: self.state.registry.clone(),
            head: self.state.head.clone(),
            ready: self.status.ready,
            updated: self.status.updated,
            environments: envs,
            held: self
                .state
                .held
                .iter()
                .map(|(m, h)| HeldView {
                    model: m.clone(),
                    kind: match h.kind {
                        HoldKind::Blocked => "blocked".into(),
                        HoldKind::Waiting => "waiting".into(),
                    },
                    baseline: h.baseline.clone(),
                    reasons: h.reasons.clone(),
                    until: h.until,
                    offending: h.offending.clone(),
                    author: h.author.clone(),
                    since: Some(h.since),
                })
                .collect(),
            errors: self.errors.iter().map(|d| d.to_string()).collect(),
        };
        if status == *self.status {
            return false;
        }
        status.updated = Some(now);
        self.status = Arc::new(status);
        true
    }

    /// Mark ready (after the first full pass) and persist the status.
    pub fn set_ready(&mut self) {
        Arc::make_mut(&mut self.status).ready = true;
        self.metrics.ready.set(1);
        let _ = self.dir.save_status(&*self.status);
    }

    /// The last admission: how many new commits it judged and how long that took.
    pub fn last_admission(&self) -> Option<(usize, Duration)> {
        self.last_admission
    }

    /// Every environment's target root, for the startup message.
    pub fn deploy_dir(&self) -> PathBuf {
        self.dir.deploy_dir()
    }

    /// The earliest moment still ahead at which a pass can change something without a new
    /// commit: a waiting hold's `until` (window opening, end of a soak), a failed switch's
    /// retry (`next_at`; health failures are not retried), a deploy window the status waits
    /// for. The runner sleeps until then when it comes before the next resync.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let holds = self.state.held.values().filter_map(|h| h.until);
        let retries = self
            .state
            .environments
            .values()
            .flat_map(|e| e.values())
            .filter_map(|m| m.failure.as_ref())
            .filter(|f| !f.health)
            .map(|f| f.next_at);
        let windows = self
            .status
            .environments
            .iter()
            .flat_map(|e| e.models.iter())
            .filter_map(|m| m.waiting_until);
        holds
            .chain(retries)
            .chain(windows)
            .chain(self.verify_wakeup())
            .filter(|t| *t > now)
            .min()
    }

    /// Start again from `state.json` after a pass panicked: the in-memory state may be half
    /// updated (holds taken out, caches half filled), the file is the last consistent state.
    /// Like a restart, the next pass re-judges from there and repairs the targets.
    pub fn recover(&mut self) -> Result<(), ControllerError> {
        self.state = self.dir.load()?.unwrap_or_default();
        self.store = Store::new();
        self.judge = check::Judge::new();
        self.targets.clear();
        self.errors.clear();
        self.seen = None;
        self.cache = None;
        self.head_cache = None;
        self.trees = Default::default();
        self.saved = None;
        Ok(())
    }
}
/// `reg` interpreted by the policy in force (shared as is when it already holds it).
fn with_policy(reg: Arc<Registry>, policy: &Arc<Policy>) -> Arc<Registry> {
    if reg.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy)) {
        return reg;
    }
    let mut r = Registry::clone(&reg);
    r.policy = Some(policy.clone());
    Arc::new(r)
}
