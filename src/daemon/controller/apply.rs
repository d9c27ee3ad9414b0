//! The intent, plan and apply stages: what each environment should run now (desired, unless
//! a failed switch of that content waits), planned against the target and applied in waves.

use super::desired::Desired;
use super::{short, Controller, PassOutcome};
use crate::daemon::artifact::Fetcher;
use crate::daemon::events::Event;
use crate::daemon::events::EventKind;
use crate::daemon::health;
use crate::daemon::intent;
use crate::daemon::plan;
use crate::daemon::plan::Step;
use crate::daemon::plan::SwitchKind;
use crate::daemon::release::Release;
use crate::daemon::state::Failure;
use crate::daemon::state::ModelState;
use crate::daemon::target;
use crate::daemon::target::Observed;
use crate::daemon::target::PassSummary;
use crate::daemon::target::Target;
use crate::daemon::target::TargetError;
use crate::daemon::view::EnvironmentView;
use crate::manifest::policy::TargetSpec;
use chrono::DateTime;
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

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

/// Retry delay after `attempts` failures: `interval` x 2^(attempts-1), at most 5 minutes.
pub fn backoff(interval: Duration, attempts: u32) -> Duration {
    let base = interval.max(Duration::from_millis(100));
    base.saturating_mul(1u32 << attempts.min(12).saturating_sub(1))
        .min(Duration::from_secs(300))
}

impl Controller {
    /// The per-environment stages, in the policy's order: build the target, intent (what
    /// verification lets run), plan and apply, then the environment's status view. Stops
    /// after the environment in which a stop was requested.
    pub(super) fn apply_environments(
        &mut self,
        desired: &Desired,
        now: DateTime<Utc>,
        outcome: &mut PassOutcome,
    ) -> Vec<EnvironmentView> {
        let mut envs = Vec::new();
        for (env, spec) in desired.policy.environments.iter() {
            // The target's config is validated again here (validation refuses a bad one too):
            // nothing is deployed outside deploy/ or to a malformed destination.
            if let Err(e) = self.ensure_target(env, &spec.target) {
                outcome.failed = true;
                self.events
                    .push(Event::new(EventKind::Failed, format!("{env}: {e}")).env(env));
                continue;
            }
            let none = BTreeMap::new();
            let wanted = desired.effective.get(env).unwrap_or(&none);
            let verified = self.verify_intent(env, wanted);
            let wanted = verified.as_ref().unwrap_or(wanted);
            let mut observed = self.apply_env(env, spec, wanted, now, outcome);
            if self.verify_env(env, &spec.stage, now) {
                if let Ok(o) = self.target(env).observe() {
                    observed = o;
                }
            }
            let hd = desired
                .head
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
        envs
    }

    /// Build (or rebuild, when its spec changed) the target of `env`.
    pub(super) fn ensure_target(
        &mut self,
        env: &str,
        spec: &TargetSpec,
    ) -> Result<(), TargetError> {
        if self.targets.get(env).is_none_or(|(s, _)| s != spec) {
            let cx = target::BuildContext {
                state_dir: &self.dir.root,
                read_only: false,
            };
            let t = (self.build_target)(env, spec, &cx)?;
            self.targets.insert(env.to_owned(), (spec.clone(), t));
        }
        Ok(())
    }

    /// The target of `env`, built by [`Self::ensure_target`] earlier in the pass.
    pub(super) fn target(&mut self, env: &str) -> &mut Box<dyn Target> {
        &mut self.targets.get_mut(env).expect("target built").1
    }

    /// Observe, plan and apply one environment; returns what the target runs afterwards.
    pub(super) fn apply_env(
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
        let states = self.state.environments.entry(env.to_owned()).or_default();
        let intent = intent::intent(wanted, &observed, states, now);
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
    pub(super) fn apply_wave(
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
                } => match self.stage_and_switch(env, &release) {
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
                },
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

    /// Make `release` available on `env`'s target (fetched and verified), then switch to it.
    pub(super) fn stage_and_switch(
        &mut self,
        env: &str,
        release: &Release,
    ) -> Result<target::Switched, TargetError> {
        let fetcher = Fetcher {
            repo: &self.repo,
            timeout: self.cfg.fetch_timeout,
            remote: &self.remote,
            trees: &self.trees,
            limits: &self.cfg.artifacts,
        };
        let at = (self.clock)();
        let t = &mut self.targets.get_mut(env).expect("target built").1;
        t.stage(release, &fetcher)?;
        t.switch(release, at)
    }

    /// What a commit of `changes` in `env` says.
    pub(super) fn summary(&self, env: &str, changes: impl Iterator<Item = String>) -> PassSummary {
        PassSummary {
            env: env.to_owned(),
            registry_commit: self.state.head.clone().unwrap_or_default(),
            changes: changes.collect(),
        }
    }

    /// A deploy failed its health check: record it and switch the model back (collected in
    /// `backs` as (model, label) for one commit).
    pub(super) fn health_failed(
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
        let at = self.now();
        let t = self.target(env);
        let back = match &switched.previous {
            Some(prev) => t.switch(&prev.release, at).map(|_| prev.release.label()),
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
    pub(super) fn switched(
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

    pub(super) fn model_state(&mut self, env: &str, model: &str) -> &mut ModelState {
        self.state
            .environments
            .entry(env.to_owned())
            .or_default()
            .entry(model.to_owned())
            .or_default()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn fail(
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
}
