//! The status stage: each environment's typed view (sync, health, admission), the metrics,
//! and the earliest moment a pass can change something by itself.

use super::{short, Action, Controller, ControllerError};
use crate::daemon::gate::HoldKind;
use crate::daemon::metrics::ModelInfo;
use crate::daemon::plan;
use crate::daemon::release::Release;
use crate::daemon::state::ModelState;
use crate::daemon::target::Observed;
use crate::daemon::view::{
    self, EnvironmentView, Health, HeldView, ModelView, StatusView, SyncStatus,
};
use chrono::DateTime;
use chrono::Utc;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

impl Controller {
    pub(super) fn env_view(
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
                Health::Degraded
            } else if deployed.is_some() {
                Health::Healthy
            } else {
                Health::Unknown
            };
            let rec = obs.and_then(|o| o.record.as_ref());
            models.push(ModelView {
                model: m.clone(),
                desired: view::versions(desired),
                deployed: view::versions(deployed),
                sync,
                health,
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

    /// The status stage: report failed notifications, publish and persist the status and the
    /// state when they changed, count the pass; returns when the next pass should run.
    pub(super) fn finish_pass(
        &mut self,
        envs: Vec<EnvironmentView>,
        now: DateTime<Utc>,
        started: Instant,
    ) -> Result<Action, ControllerError> {
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
        let fp = crate::daemon::state::fingerprint(&self.state);
        if self.saved != Some(fp) {
            self.dir.save(&self.state)?;
            self.saved = Some(fp);
        }
        self.metrics.reconciles_total.inc();
        self.metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(Action::after_pass(
            self.cfg.interval,
            self.next_wakeup(now),
            now,
            self.now(),
        ))
    }

    /// Refresh metrics and the status view; true when the status changed (`updated` then
    /// says when).
    pub(super) fn publish(&mut self, envs: Vec<EnvironmentView>, now: DateTime<Utc>) -> bool {
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
                        health: m.health.as_str().into(),
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
                    kind: h.kind,
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

    /// The earliest moment still ahead at which a pass can change something without a new
    /// commit: a waiting hold's `until` (window opening, end of a soak), a failed switch's
    /// retry (`next_at`; health failures are not retried), a deploy window the status waits
    /// for, a verification's next measurement. Only moments after `after` (the pass's start:
    /// earlier ones the pass saw) count.
    pub fn next_wakeup(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
            .filter(|t| *t > after)
            .min()
    }
}
