//! One reconcile pass, level-triggered: read the branch head, re-check what landed (per-model
//! holds), derive each environment's intent, plan against the target, apply, and publish.

use super::artifact::remote::Remote;
use super::artifact::{ArtifactLimits, TreeCache};
use super::events::{Event, EventKind, EventLog};
use super::metrics::Metrics;
use super::notify::Notifier;
use super::plan::SwitchKind;
use super::release::Release;
use super::state::{PersistedState, StateDir, StateError};
use super::target::{self, Target, TargetError};
use super::view::StatusView;
use crate::check;
use crate::diag::Diagnostic;
use crate::manifest::policy::TargetSpec;
use crate::manifest::Policy;
use crate::registry::{Cache, Store};
use crate::repo::RepoError;
use chrono::{DateTime, Utc};
use git2::Repository;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

mod admit;
mod apply;
mod desired;
mod source;
mod status;
mod verify;

pub use apply::backoff;
use desired::{Effective, EffectiveKey};

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

/// Where the controller reads the time: the wall clock, or a clock a test moves.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What the runner does after a pass (kube-runtime's `Action`): the next pass runs after
/// `requeue_after` unless a trigger (a ref write, a webhook, an alert) comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub requeue_after: Duration,
}

/// Sleep this much past a wake-up moment, so the pass then sees it as reached.
pub const WAKE_SLACK: Duration = Duration::from_millis(50);

impl Action {
    /// After a pass that started at `started`: the next resync (`interval`), or the earliest
    /// wake-up moment, when that comes first. A moment at or before `started` was seen by the
    /// pass and is ignored (it cannot make the loop spin); one that came while the pass ran
    /// requeues at once.
    pub fn after_pass(
        interval: Duration,
        wakeup: Option<DateTime<Utc>>,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Action {
        let until = wakeup
            .filter(|w| *w > started)
            .map(|w| (w - now).to_std().unwrap_or_default() + WAKE_SLACK);
        Action {
            requeue_after: until.map_or(interval, |u| u.min(interval)),
        }
    }

    /// The one error policy: a pass that failed (or panicked) `attempts` times in a row runs
    /// again after [`backoff`].
    pub fn error_policy(interval: Duration, attempts: u32) -> Action {
        Action {
            requeue_after: backoff(interval, attempts),
        }
    }
}

/// The result of one pass.
#[derive(Debug, Clone)]
pub struct PassOutcome {
    /// Some switch failed (will be retried).
    pub failed: bool,
    /// A stop was requested between steps.
    pub interrupted: bool,
    /// When the next pass should run.
    pub action: Action,
}

pub struct Controller {
    cfg: ControllerConfig,
    repo: Repository,
    /// Parsed registry objects, shared by the store, the judge and the dashboard: each blob
    /// is parsed once however many of them read it.
    registry_cache: Cache,
    /// The registries of this pass by commit (each loaded once), over the shared cache.
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
    /// The time source of judging, holds, retries and verification.
    clock: Clock,
    /// How targets are built from their config (tests build fakes).
    build_target: TargetBuilder,
}

/// Builds an environment's target from its validated config.
pub type TargetBuilder = Arc<
    dyn Fn(&str, &TargetSpec, &target::BuildContext) -> Result<Box<dyn Target>, TargetError>
        + Send
        + Sync,
>;

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
        let registry_cache = Cache::new();
        Ok(Controller {
            remote: Remote::new(cfg.fetch_timeout),
            cfg,
            repo,
            store: Store::with_cache(registry_cache.clone()),
            judge: check::Judge::with_cache(registry_cache.clone()),
            registry_cache,
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
            clock: Arc::new(Utc::now),
            build_target: Arc::new(target::from_spec),
        })
    }

    /// Read the time from `clock` instead of the wall clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Build targets with `build` instead of from their kind (tests use a fake target).
    pub fn with_targets(mut self, build: TargetBuilder) -> Self {
        self.build_target = build;
        self
    }

    /// The controller's clock.
    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn state_dir(&self) -> &std::path::Path {
        &self.dir.root
    }

    /// The parsed-registry cache, for other readers of the repository (the dashboard).
    pub fn registry_cache(&self) -> Cache {
        self.registry_cache.clone()
    }

    /// Version manifests parsed so far, by the store and the judge together (tests).
    pub fn manifests_parsed(&self) -> usize {
        self.registry_cache.parsed()
    }

    /// Registries loaded so far (one per commit and pass), for tests.
    pub fn registry_loads(&self) -> usize {
        self.store.loads
    }

    /// One full pass through the stages, each in its own module: source → admission →
    /// desired → (per environment) intent → plan → apply → status. Errors leave the state as
    /// it was; the caller retries with backoff ([`Action::error_policy`]).
    pub fn reconcile(&mut self) -> Result<PassOutcome, ControllerError> {
        let started = Instant::now();
        let now = self.now();
        let head = self.source()?;
        self.admit(head, now)?;
        let desired = self.desired(head)?;
        let mut outcome = PassOutcome {
            failed: false,
            interrupted: false,
            action: Action {
                requeue_after: self.cfg.interval,
            },
        };
        let envs = self.apply_environments(&desired, now, &mut outcome);
        outcome.action = self.finish_pass(envs, now, started)?;
        Ok(outcome)
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

    /// Start again from `state.json` after a pass panicked: the in-memory state may be half
    /// updated (holds taken out, caches half filled), the file is the last consistent state.
    /// Like a restart, the next pass re-judges from there and repairs the targets.
    pub fn recover(&mut self) -> Result<(), ControllerError> {
        self.state = self.dir.load()?.unwrap_or_default();
        // The shared cache holds only whole entries, keyed by content: it is kept.
        self.store = Store::with_cache(self.registry_cache.clone());
        self.judge = check::Judge::with_cache(self.registry_cache.clone());
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod action_tests {
    use super::*;

    #[test]
    fn the_action_is_the_earlier_of_resync_and_a_wakeup_after_the_pass_started() {
        let interval = Duration::from_secs(30);
        let started = Utc::now();
        let now = started + chrono::Duration::seconds(1);
        let after = |w: Option<DateTime<Utc>>| Action::after_pass(interval, w, started, now);
        assert_eq!(after(None).requeue_after, interval);
        let soon = now + chrono::Duration::seconds(2);
        assert_eq!(
            after(Some(soon)).requeue_after,
            Duration::from_secs(2) + WAKE_SLACK
        );
        let late = now + chrono::Duration::seconds(90);
        assert_eq!(after(Some(late)).requeue_after, interval);
        // Seen by the pass: ignored, so a stale moment never makes the loop spin.
        assert_eq!(after(Some(started)).requeue_after, interval);
        // Came while the pass ran: at once.
        let during = started + chrono::Duration::milliseconds(500);
        assert_eq!(after(Some(during)).requeue_after, WAKE_SLACK);
    }

    #[test]
    fn the_error_policy_backs_off_to_five_minutes() {
        let i = Duration::from_secs(2);
        let waits: Vec<u64> = (1..=10)
            .map(|n| Action::error_policy(i, n).requeue_after.as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
