//! The status the daemon publishes (`status.json`, `GET /api/v1/status`, `baton status
//! --state-dir`): per environment and model, desired vs deployed, sync, health and reasons.

use super::release::Release;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One (environment, model)'s state, as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncStatus {
    /// The target runs what the branch says.
    Synced,
    /// It does not yet: a switch is pending, in flight or being retried.
    OutOfSync,
    /// A switch failed its health check; the previous version keeps serving.
    Degraded,
    /// The branch's change failed its gates; the last good version keeps serving.
    Blocked,
    /// The change waits for a deploy window (`waiting_until`).
    Waiting,
    /// The branch was moved to a commit that does not descend from the accepted head.
    Diverged,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "synced",
            SyncStatus::OutOfSync => "out-of-sync",
            SyncStatus::Degraded => "degraded",
            SyncStatus::Blocked => "blocked",
            SyncStatus::Waiting => "waiting",
            SyncStatus::Diverged => "diverged",
        }
    }
}

/// Whether what an (environment, model) runs is healthy: the health axis, apart from sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Deployed and passing its health check (or none is configured).
    Healthy,
    /// The last switch failed its health check; the previous version keeps serving.
    Degraded,
    /// Nothing deployed yet.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    pub version: String,
    pub traffic: u32,
    pub sha256: String,
}

pub fn versions(r: Option<&Release>) -> Vec<VersionView> {
    r.map(|r| {
        r.versions
            .iter()
            .map(|v| VersionView {
                version: v.version.clone(),
                traffic: v.traffic,
                sha256: v.sha256.clone(),
            })
            .collect()
    })
    .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    pub model: String,
    /// What the branch head says.
    pub desired: Vec<VersionView>,
    /// What the target runs.
    pub deployed: Vec<VersionView>,
    pub sync: SyncStatus,
    pub health: Health,
    /// Why it is not synced (gates, errors, health output), one sentence each.
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_until: Option<DateTime<Utc>>,
    /// Commit and time of the deployed release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    /// The newest live verification of the model here (docs/verification.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<super::verify::VerificationView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentView {
    pub name: String,
    pub stage: String,
    /// Where it deploys (`local /abs/path`).
    pub target: String,
    pub models: Vec<ModelView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldView {
    pub model: String,
    pub kind: crate::daemon::gate::HoldKind,
    pub baseline: String,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The commit whose change failed (the offending commit), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offending: Option<String>,
    /// Who made the offending commit, when the daemon recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Since when the model is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub branch: String,
    /// Registry folder inside the repository.
    pub registry: String,
    /// The branch head last reconciled ("last deployed commit").
    pub head: Option<String>,
    pub ready: bool,
    pub updated: Option<DateTime<Utc>>,
    pub environments: Vec<EnvironmentView>,
    /// Models held at an older commit, with why.
    pub held: Vec<HeldView>,
    /// Located errors of the head, `file:line:column: message` (a bad head deploys nothing new).
    pub errors: Vec<String>,
}

impl StatusView {
    /// True when every model of every environment is synced.
    pub fn all_synced(&self) -> bool {
        self.environments
            .iter()
            .all(|e| e.models.iter().all(|m| m.sync == SyncStatus::Synced))
    }
}
