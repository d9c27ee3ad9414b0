//! The controller's verification hooks (docs/verification.md): start a verification after a
//! deploy, hold or contain in the intent, measure what is due, contain and roll back.
//!
//! The stage hooks verification adds to a pass; a child module of `controller` so they
//! reach the controller's state directly.

use super::{Controller, Event, EventKind, Release, SwitchKind};
use crate::daemon::verify::alerts::Alert;
use crate::daemon::verify::{
    self, analysis, plan as vplan, rollback, AlertNote, Phase, Role, Subject, Verification,
    VerificationView,
};
use crate::daemon::view::{EnvironmentView, SyncStatus};
use crate::manifest::verify::{OnFailure, VerifySpec};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Measurements taken at once (threads) in one pass.
const PARALLEL: usize = 16;

impl Controller {
    /// The `verify:` block of `stage` under the policy in force.
    fn verify_spec(&self, stage: &str) -> Option<VerifySpec> {
        self.cache.as_ref()?.1.stage(stage)?.verify.clone()
    }

    fn running_release(&self, env: &str, model: &str) -> Option<&Release> {
        self.state
            .environments
            .get(env)?
            .get(model)?
            .last_good
            .as_ref()
    }

    /// Hook: `release` was deployed (healthy) into `stage`; start verifying what it brought.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn verify_deployed(
        &mut self,
        env: &str,
        stage: &str,
        model: &str,
        release: &Release,
        previous: Option<&Release>,
        kind: SwitchKind,
        now: DateTime<Utc>,
    ) {
        // What the trusted baseline runs was not brought in by a change the daemon saw.
        if kind != SwitchKind::Deploy
            || release.commit == self.state.trusted
            || self.verify_spec(stage).is_none()
        {
            return;
        }
        for a in vplan::arrivals(release, previous) {
            // A new verification of the model supersedes what is finished or running for
            // versions it no longer runs; a failed build stays recorded (containment).
            self.state.verifications.retain(|v| {
                !v.is(env, model)
                    || (v.phase.keeps_out() && v.version != a.version)
                    || (vplan::runs(release, &v.version, &v.sha256) && v.version != a.version)
            });
            tracing::info!(environment = env, model, version = %a.version, "verification started");
            self.state.verifications.push(Verification {
                environment: env.to_owned(),
                model: model.to_owned(),
                version: a.version,
                sha256: a.sha256,
                stage: stage.to_owned(),
                role: a.role,
                commit: release.commit.clone(),
                started: now,
                phase: Phase::Running,
                measurements: vec![],
                previous: previous.cloned(),
                baseline: a.baseline,
                contained: None,
                failed_at: None,
                reason: None,
                revert: None,
                rollback_note: None,
                alert: None,
            });
        }
    }

    /// Hook before a pass applies `env`: a verification in progress holds later changes of
    /// its model; a failed version is kept out (containment). `None`: `wanted` unchanged.
    pub(super) fn verify_intent(
        &self,
        env: &str,
        wanted: &BTreeMap<String, Release>,
    ) -> Option<BTreeMap<String, Release>> {
        let mut out: Option<BTreeMap<String, Release>> = None;
        for v in self
            .state
            .verifications
            .iter()
            .filter(|v| v.environment == env)
        {
            let Some(w) = wanted.get(&v.model) else {
                continue;
            };
            if !vplan::runs(w, &v.version, &v.sha256) {
                continue;
            }
            let change = match v.phase {
                Phase::Running | Phase::Inconclusive => match self.running_release(env, &v.model) {
                    Some(cur)
                        if !w.same_content(cur) && vplan::runs(cur, &v.version, &v.sha256) =>
                    {
                        Some(Some(cur.clone()))
                    }
                    _ => None,
                },
                p if p.keeps_out() => Some(vplan::contain(w, &v.version, v.previous.as_ref())),
                _ => None,
            };
            if let Some(c) = change {
                let m = out.get_or_insert_with(|| wanted.clone());
                match c {
                    Some(r) => m.insert(v.model.clone(), r),
                    None => m.remove(&v.model),
                };
            }
        }
        out
    }

    /// Hook after a pass applied `env`: take the measurements that are due, judge them, and
    /// contain (and roll back) a failing version in this same pass. True when the target
    /// was changed (the caller observes it again).
    pub(super) fn verify_env(&mut self, env: &str, stage: &str, now: DateTime<Utc>) -> bool {
        let Some(spec) = self.verify_spec(stage) else {
            return false;
        };
        // Verifications of versions that no longer run (a revert, an archive) end here.
        let running: BTreeMap<String, Option<Release>> = self
            .state
            .verifications
            .iter()
            .filter(|v| v.environment == env)
            .map(|v| {
                (
                    v.model.clone(),
                    self.running_release(env, &v.model).cloned(),
                )
            })
            .collect();
        self.state.verifications.retain(|v| {
            v.environment != env
                || v.phase != Phase::Running
                || running
                    .get(&v.model)
                    .and_then(|r| r.as_ref())
                    .is_some_and(|r| vplan::runs(r, &v.version, &v.sha256))
        });
        // What is due when the measuring starts (the pass may have run a while since `now`).
        let due_by = self.now().max(now);
        let due: Vec<usize> = self
            .state
            .verifications
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                v.environment == env
                    && v.phase == Phase::Running
                    && v.next_due(spec.interval()) <= due_by
            })
            .map(|(i, _)| i)
            .collect();
        let cwd = self.dir.root.clone();
        let mut results: Vec<(usize, analysis::Measurement)> = Vec::new();
        for chunk in due.chunks(PARALLEL) {
            let vs = &self.state.verifications;
            let spec = &spec;
            let cwd = &cwd;
            let clock = &self.clock;
            std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&i| {
                        let v = &vs[i];
                        s.spawn(move || {
                            let subject = Subject {
                                environment: &v.environment,
                                model: &v.model,
                                version: &v.version,
                                baseline: v.baseline.as_deref(),
                            };
                            (i, verify::measure(spec, &subject, cwd, clock()))
                        })
                    })
                    .collect();
                for h in handles {
                    if let Ok(r) = h.join() {
                        results.push(r);
                    }
                }
            });
        }
        let mut changed = false;
        for (i, m) in results {
            let v = &mut self.state.verifications[i];
            let summary = m.summary();
            v.push(m);
            match analysis::verdict(&spec, &v.measurements) {
                analysis::Verdict::Running => {}
                analysis::Verdict::Passed => {
                    v.phase = Phase::Passed;
                    tracing::info!(environment = env, model = %v.model, version = %v.version, "verification passed");
                }
                analysis::Verdict::Inconclusive => {
                    v.phase = Phase::Inconclusive;
                    let msg = format!(
                        "{env}: {}@{} verification inconclusive ({} errors in a row: {summary}); held, not rolled back",
                        v.model,
                        v.version,
                        spec.error_limit()
                    );
                    let e = Event::new(EventKind::VerificationFailed, msg)
                        .env(env)
                        .model(&v.model.clone())
                        .version(&v.version.clone());
                    self.events.push(e);
                }
                analysis::Verdict::Failed => {
                    // Contained (and rolled back) by the loop below, in this pass.
                    v.phase = Phase::Failed;
                    v.failed_at = Some(now);
                    v.reason = Some(summary);
                }
            }
        }
        // Firing alerts (`POST /hooks/alertmanager`) fail the verification they name.
        for v in self
            .state
            .verifications
            .iter_mut()
            .filter(|v| v.environment == env)
        {
            let Some(a) = v.alert.take() else { continue };
            if v.phase.keeps_out() {
                continue;
            }
            tracing::warn!(environment = env, model = %v.model, version = %v.version, "{}", a.said);
            v.phase = Phase::Failed;
            v.failed_at = Some(a.received);
            v.reason = Some(a.said);
        }
        // Containment (new failures, and retries of a failed switch), then the rollback in
        // git in the same pass.
        for i in 0..self.state.verifications.len() {
            let v = &self.state.verifications[i];
            if v.environment != env {
                continue;
            }
            if v.phase == Phase::Failed {
                changed |= self.verify_contain(i, now);
            }
            let v = &self.state.verifications[i];
            if v.phase == Phase::Contained
                && v.revert.is_none()
                && spec.on_failure == OnFailure::Rollback
                && !v
                    .rollback_note
                    .as_deref()
                    .is_some_and(|n| n.starts_with("not rolled back"))
            {
                self.verify_rollback(i, &spec, now);
            }
        }
        changed
    }

    /// Contain the failing version of verification `i` through the target (switch + commit);
    /// true when the target changed.
    fn verify_contain(&mut self, i: usize, now: DateTime<Utc>) -> bool {
        let v = self.state.verifications[i].clone();
        let env = v.environment.as_str();
        let Some(cur) = self.running_release(env, &v.model).cloned() else {
            self.state.verifications[i].phase = Phase::Contained;
            return false;
        };
        let instead = if vplan::runs(&cur, &v.version, &v.sha256) {
            vplan::contain(&cur, &v.version, v.previous.as_ref())
        } else {
            Some(cur.clone())
        };
        let result = match &instead {
            Some(r) if !r.same_content(&cur) => self.stage_and_switch(env, r).map(|_| ()),
            Some(_) => Ok(()),
            None => self.target(env).undeploy(&v.model),
        };
        let label = instead
            .as_ref()
            .map(|r| r.label())
            .unwrap_or_else(|| "nothing (undeployed)".into());
        let summary = self.summary(
            env,
            std::iter::once(format!("{}@{label} (contained {})", v.model, v.version)),
        );
        let result = result.and_then(|()| self.target(env).commit(&summary));
        let reason = v.reason.clone().unwrap_or_default();
        match result {
            Ok(()) => {
                let ms = self.model_state(env, &v.model);
                ms.last_good = instead.clone();
                ms.failure = None;
                let w = &mut self.state.verifications[i];
                w.phase = Phase::Contained;
                w.contained = instead;
                let e = Event::new(
                    EventKind::VerificationFailed,
                    format!(
                        "{env}: {}@{} failed verification ({reason}); contained: {} now runs {label}",
                        v.model, v.version, v.model
                    ),
                )
                .env(env)
                .model(&v.model)
                .version(&v.version)
                .commit(&v.commit)
                .reasons(std::slice::from_ref(&reason));
                self.events.push(e);
                let _ = now;
                true
            }
            Err(e) => {
                self.events.push(
                    Event::new(
                        EventKind::Failed,
                        format!(
                            "{env}: {}@{} failed verification; containing it failed: {e} (retried next pass)",
                            v.model, v.version
                        ),
                    )
                    .env(env)
                    .model(&v.model),
                );
                false
            }
        }
    }

    /// Write the revert for contained verification `i`, under the guardrails.
    fn verify_rollback(&mut self, i: usize, spec: &VerifySpec, now: DateTime<Utc>) {
        let v = self.state.verifications[i].clone();
        let refuse = |why: String| Some(format!("not rolled back: {why}"));
        let note = if v.role == Role::Primary && v.previous.is_none() {
            refuse("no previous version; contained and notified only".into())
        } else if v.failed_at.is_some_and(|t| {
            now - t > chrono::Duration::from_std(verify::ROLLBACK_MAX_AGE).unwrap_or_default()
        }) {
            refuse("the failure is older than 20 minutes".into())
        } else if self.state.held.contains_key(&v.model) || self.state.diverged.is_some() {
            // Not settled: something else is in flight for the model; wait.
            self.state.verifications[i].rollback_note =
                Some("waiting: another change of the model is in flight".into());
            return;
        } else {
            None
        };
        if let Some(n) = note {
            if self.state.verifications[i].rollback_note.as_ref() != Some(&n) {
                self.events.push(
                    Event::new(
                        EventKind::VerificationFailed,
                        format!("{}: {}@{} {n}", v.environment, v.model, v.version),
                    )
                    .env(&v.environment)
                    .model(&v.model)
                    .version(&v.version),
                );
            }
            self.state.verifications[i].rollback_note = Some(n);
            return;
        }
        let reason = format!(
            "verification of {} {} in {} failed: {}",
            v.model,
            v.version,
            v.environment,
            v.reason.as_deref().unwrap_or("")
        );
        let failed_at = v.failed_at.unwrap_or(now).to_rfc3339();
        let report = match analysis::last_failure(&v.measurements)
            .filter(|m| v.reason.as_deref() == Some(m.summary().as_str()))
        {
            Some(m) => format!(
                "{} at {}: {}",
                v.environment,
                m.at.to_rfc3339(),
                m.summary()
            ),
            None => format!(
                "{} at {failed_at}: {}",
                v.environment,
                v.reason.as_deref().unwrap_or("")
            ),
        };
        let root = self.state.registry.clone();
        let req = rollback::Request {
            repo: &self.cfg.repo,
            branch: &self.cfg.branch,
            root: &root,
            model: &v.model,
            version: &v.version,
            stage: &v.stage,
            reason: &reason,
            report: &report,
            mode: spec.rollback.mode,
            config: &self.cfg.rollback,
        };
        let started = std::time::Instant::now();
        match rollback::write(&req) {
            Ok(done) => {
                tracing::info!(model = %v.model, version = %v.version, commit = %done.commit, "rollback written in {:?}", started.elapsed());
                let w = &mut self.state.verifications[i];
                w.revert = Some(done.commit.clone());
                w.phase = Phase::RolledBack;
                w.rollback_note = None;
                let how = if done.reused {
                    "an existing revert"
                } else {
                    "revert"
                };
                self.events.push(
                    Event::new(
                        EventKind::RolledBack,
                        format!(
                            "{}: {}@{} rolled back in git: {how} {} of {} on {}",
                            v.environment,
                            v.model,
                            v.version,
                            &done.commit[..10.min(done.commit.len())],
                            &done.reverted[..10.min(done.reverted.len())],
                            done.on
                        ),
                    )
                    .env(&v.environment)
                    .model(&v.model)
                    .version(&v.version)
                    .commit(&done.commit),
                );
            }
            Err(e) => {
                // (kind, the verification's note, the event's text after `env: model@version`)
                let (kind, note, said) = match e {
                    rollback::RollbackError::Refused(why) => (
                        EventKind::VerificationFailed,
                        format!("not rolled back: {why}"),
                        format!(" not rolled back: {why}"),
                    ),
                    e => (
                        EventKind::Failed,
                        format!("rollback failed (retried next pass): {e}"),
                        format!(": writing the rollback failed: {e}"),
                    ),
                };
                self.state.verifications[i].rollback_note = Some(note);
                self.events.push(
                    Event::new(
                        kind,
                        format!("{}: {}@{}{said}", v.environment, v.model, v.version),
                    )
                    .env(&v.environment)
                    .model(&v.model),
                );
            }
        }
    }

    /// Alerts from `POST /hooks/alertmanager` (drained by the runner before a pass): each
    /// fails the newest verification of its model, in the environments it names, whose
    /// version still runs there; the pass contains and rolls back under the usual
    /// guardrails. An alert that started firing more than 20 minutes before it arrived, or
    /// names nothing baton verified and runs, is ignored (and logged).
    pub fn verify_alerts(&mut self, alerts: Vec<(Alert, DateTime<Utc>)>) {
        let max_age = chrono::Duration::from_std(verify::ROLLBACK_MAX_AGE).unwrap_or_default();
        for (a, received) in alerts {
            let said = a.describe();
            if a.starts_at.is_some_and(|t| received - t > max_age) {
                tracing::warn!(model = %a.model, "{said}: started more than 20 minutes ago; ignored");
                continue;
            }
            let mut envs: Vec<String> = self
                .state
                .verifications
                .iter()
                .filter(|v| v.model == a.model)
                .filter(|v| a.environment.as_ref().is_none_or(|e| *e == v.environment))
                .map(|v| v.environment.clone())
                .collect();
            envs.sort();
            envs.dedup();
            let mut hit = false;
            for env in envs {
                let running = self.running_release(&env, &a.model).cloned();
                let newest = self.state.verifications.iter().rposition(|v| {
                    v.is(&env, &a.model)
                        && a.version.as_ref().is_none_or(|x| *x == v.version)
                        && running
                            .as_ref()
                            .is_some_and(|r| vplan::runs(r, &v.version, &v.sha256))
                });
                let Some(i) = newest else { continue };
                let v = &mut self.state.verifications[i];
                hit = true;
                if v.phase.keeps_out() {
                    continue; // Alertmanager repeats itself: already handled.
                }
                v.alert = Some(AlertNote {
                    said: said.clone(),
                    received,
                });
            }
            if !hit {
                tracing::warn!(
                    model = %a.model,
                    environment = ?a.environment,
                    version = ?a.version,
                    "{said}: no version of {} that baton verified runs there; ignored",
                    a.model
                );
            }
        }
    }

    /// Hook on the status: each model's newest verification, and why a change waits for it.
    pub(super) fn verify_view(&self, view: &mut EnvironmentView) {
        for m in &mut view.models {
            let Some(v) = self
                .state
                .verifications
                .iter()
                .rev()
                .find(|v| v.is(&view.name, &m.model))
            else {
                continue;
            };
            m.verification = Some(VerificationView::of(v));
            let differs = m.desired != m.deployed;
            match v.phase {
                Phase::Running | Phase::Inconclusive if differs => {
                    m.sync = SyncStatus::Waiting;
                    m.reasons.push(format!(
                        "held: verification of {} {} is {}",
                        m.model,
                        v.version,
                        v.phase.as_str()
                    ));
                }
                p if p.keeps_out() && differs => m.reasons.push(format!(
                    "contained: {} {} failed verification ({})",
                    m.model,
                    v.version,
                    v.reason.as_deref().unwrap_or("")
                )),
                _ => {}
            }
        }
    }

    /// The next measurement due, for [`Controller::next_wakeup`].
    /// Only verifications whose environment still deploys their stage count: a pass measures
    /// those (`verify_env`), so an overdue one (woken at once) cannot make the loop spin.
    pub(super) fn verify_wakeup(&self) -> Option<DateTime<Utc>> {
        let policy = &self.cache.as_ref()?.1;
        let now = self.now();
        self.state
            .verifications
            .iter()
            .filter(|v| v.phase == Phase::Running)
            .filter(|v| {
                policy
                    .environments
                    .get(&v.environment)
                    .is_some_and(|e| e.stage == v.stage)
            })
            .filter_map(|v| {
                let s = policy.stage(&v.stage)?.verify.as_ref()?;
                Some(v.wake_at(s.interval(), now))
            })
            .min()
    }
}
