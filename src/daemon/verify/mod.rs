//! Live verification after a deploy (docs/verification.md): measurements from a provider,
//! the analysis, containment through the target and the rollback written to git.
//!
//! Pure: [`analysis`] (measurements → verdict), [`plan`] (what to run instead of a failing
//! version). Edges: [`prometheus`], [`command`], [`rollback`] (git). The controller calls in
//! through [`crate::daemon::controller`]'s small hooks (`verify_*` methods in [`hooks`]).

pub mod alerts;
pub mod analysis;
pub mod command;
pub mod plan;
pub mod prometheus;
pub mod rollback;

use crate::daemon::release::Release;
use crate::manifest::verify::{Provider, QueryVars, VerifySpec};
use analysis::{Measurement, MetricReading};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// Measurements kept per verification (the oldest are dropped past it).
pub const KEEP_MEASUREMENTS: usize = 200;

/// A failure older than this is not rolled back in git (Kargo's guardrail).
pub const ROLLBACK_MAX_AGE: Duration = Duration::from_secs(20 * 60);

/// Why a provider gave no number. Never a failed measurement: an error.
#[derive(Debug, Error)]
pub enum ProviderError {
    #[error("no provider reachable: {0}")]
    Unreachable(String),
    #[error("no data")]
    NoData,
    #[error("{0}")]
    Invalid(String),
}

/// Where a verification stands (`phase` in status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Running,
    Passed,
    Failed,
    /// Too many errors in a row: held, never rolled back.
    Inconclusive,
    /// The failing version gets no traffic; the revert in git is pending or not wanted.
    Contained,
    /// The revert is written (and deploys like any commit).
    RolledBack,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Passed => "passed",
            Phase::Failed => "failed",
            Phase::Inconclusive => "inconclusive",
            Phase::Contained => "contained",
            Phase::RolledBack => "rolled-back",
        }
    }

    /// Contained or rolled back: the failing version must not run.
    pub fn keeps_out(self) -> bool {
        matches!(self, Phase::Failed | Phase::Contained | Phase::RolledBack)
    }
}

/// The role of the verified version in its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Canary,
    Primary,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Canary => "canary",
            Role::Primary => "primary",
        }
    }
}

/// One (environment, model, version)'s verification, persisted in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub environment: String,
    pub model: String,
    pub version: String,
    pub sha256: String,
    pub stage: String,
    pub role: Role,
    /// The registry commit of the release that brought the version in.
    pub commit: String,
    pub started: DateTime<Utc>,
    pub phase: Phase,
    #[serde(default)]
    pub measurements: Vec<Measurement>,
    /// What ran before the switch (a new primary is switched back to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Release>,
    /// The version the same queries are compared with (`max_increase_vs_primary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// What runs instead once contained (`None` with a contained phase: undeployed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contained: Option<Release>,
    /// When it failed, and why (the failing measurement or alert, one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The revert commit written (or found) for the rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<String>,
    /// Why no revert is (yet) written: guardrails, git errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_note: Option<String>,
    /// A firing Alertmanager alert about this version, not yet acted on (the next pass fails
    /// the verification with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertNote>,
}

/// A firing alert queued on a verification: what it said and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNote {
    pub said: String,
    pub received: DateTime<Utc>,
}

impl Verification {
    /// When the next measurement is due.
    pub fn next_due(&self, interval: Duration) -> DateTime<Utc> {
        let last = self
            .measurements
            .last()
            .map(|m| m.at)
            .unwrap_or(self.started);
        last + chrono::Duration::from_std(interval).unwrap_or_default()
    }

    pub fn push(&mut self, m: Measurement) {
        self.measurements.push(m);
        if self.measurements.len() > KEEP_MEASUREMENTS {
            let cut = self.measurements.len() - KEEP_MEASUREMENTS;
            self.measurements.drain(..cut);
        }
    }

    pub fn is(&self, env: &str, model: &str) -> bool {
        self.environment == env && self.model == model
    }
}

/// What one measurement is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub environment: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    /// The version compared with, for `max_increase_vs_primary`.
    pub baseline: Option<&'a str>,
}

/// How long one query may take: the interval, between 1 s and 10 s.
pub fn query_timeout(spec: &VerifySpec) -> Duration {
    spec.interval()
        .clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// One measurement of every metric of `spec` for `s` (blocking; I/O with the provider).
pub fn measure(spec: &VerifySpec, s: &Subject<'_>, cwd: &Path, at: DateTime<Utc>) -> Measurement {
    let timeout = query_timeout(spec);
    let prom = match spec.provider.kind() {
        Ok(Provider::Prometheus(p)) => Some(prometheus::Prometheus::new(&p.address, timeout)),
        _ => None,
    };
    let ask = |query: &str, version: &str| -> Result<f64, String> {
        let vars = QueryVars {
            model: s.model,
            version,
            environment: s.environment,
        };
        let q = crate::manifest::verify::render_query(query, &vars);
        let r = match (&prom, spec.provider.kind()) {
            (Some(p), _) => p.query(&q),
            (None, Ok(Provider::Command(c))) => {
                command::measure(&c.command, &q, &vars, cwd, timeout)
            }
            (None, _) => Err(ProviderError::Unreachable("no provider configured".into())),
        };
        r.map_err(|e| e.to_string())
    };
    let mut readings: Vec<MetricReading> = Vec::new();
    let mut unreachable: Option<String> = None;
    for m in &spec.metrics {
        if let Some(e) = &unreachable {
            // One unreachable provider is enough to know: do not wait for it per metric.
            readings.push(analysis::reading(m, Err(e.clone()), None));
            continue;
        }
        let value = ask(&m.query, s.version);
        if let Err(e) = &value {
            if e.starts_with("no provider reachable") {
                unreachable = Some(e.clone());
            }
        }
        let primary = match (m.max_increase_vs_primary, s.baseline, &value) {
            (Some(_), Some(b), Ok(_)) => Some(ask(&m.query, b)),
            _ => None,
        };
        readings.push(analysis::reading(m, value, primary));
    }
    Measurement::new(at, readings)
}

/// Measurements shown in status (the newest).
pub const VIEW_MEASUREMENTS: usize = 20;

/// A verification as status shows it (`verification` of a model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationView {
    pub version: String,
    pub role: Role,
    pub phase: Phase,
    pub started: DateTime<Utc>,
    /// The newest measurements, oldest first.
    pub measurements: Vec<Measurement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_note: Option<String>,
}

impl VerificationView {
    pub fn of(v: &Verification) -> Self {
        let from = v.measurements.len().saturating_sub(VIEW_MEASUREMENTS);
        VerificationView {
            version: v.version.clone(),
            role: v.role,
            phase: v.phase,
            started: v.started,
            measurements: v.measurements[from..].to_vec(),
            reason: v.reason.clone(),
            revert: v.revert.clone(),
            rollback_note: v.rollback_note.clone(),
        }
    }
}
