//! `baton.yaml`: the registry's policy — stages and their gates, groups, environments (docs/registry-format.md).

use super::serde_util::HumanDuration;
use chrono::{NaiveTime, Weekday};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy format; this baton reads version 1.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub rollback: RollbackPolicy,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub policy_owners: Vec<String>,
    /// Path (relative to the registry folder) of an ssh-keygen ALLOWED SIGNERS file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signers: Option<String>,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Routes of events to sinks (docs/notifications.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<super::notify::Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    #[serde(default)]
    pub canary: bool,
    #[serde(default)]
    pub terminal: bool,
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    #[schemars(with = "Vec<Gate>")]
    pub gates: Vec<Gate>,
    /// Live verification after a deploy into the stage (docs/verification.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<super::verify::VerifySpec>,
}

/// One gate of a stage, written as a single-key map: `- metric: {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    Metric(MetricGate),
    Evidence(String),
    Approvals(ApprovalsGate),
    Soak(SoakGate),
    Window(WindowGate),
}

impl Gate {
    /// The rule name this gate reports under.
    pub fn rule(&self) -> &'static str {
        match self {
            Gate::Metric(_) => "metric",
            Gate::Evidence(_) => "evidence",
            Gate::Approvals(_) => "approvals",
            Gate::Soak(_) => "soak",
            Gate::Window(_) => "window",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricGate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Largest allowed worsening vs. the version(s) in the target stage at base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_regression: Option<f64>,
    #[serde(default)]
    pub lower_is_better: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsGate {
    pub min: u32,
    /// `group:<name>`, `owners` (the model's owners), a principal, or `github:<login>`.
    #[serde(default)]
    pub from: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SoakGate {
    pub stage: String,
    #[serde(rename = "for")]
    pub duration: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowGate {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Day>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ClockTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ClockTime>,
    #[serde(default = "utc")]
    pub tz: TimeZone,
}

fn utc() -> TimeZone {
    TimeZone(chrono_tz::UTC)
}

/// A weekday written `mon`..`sun` (full names accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day(pub Weekday);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Weekday>().map(Day).map_err(|_| {
            de::Error::custom(format!(
                "invalid day `{s}` (use mon, tue, wed, thu, fri, sat, sun)"
            ))
        })
    }
}

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string().to_lowercase())
    }
}

/// A wall-clock time `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockTime(pub NaiveTime);

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(&s, "%H:%M")
            .map(ClockTime)
            .map_err(|_| de::Error::custom(format!("invalid time `{s}` (use HH:MM, 24-hour)")))
    }
}

impl Serialize for ClockTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.format("%H:%M").to_string())
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

/// An IANA time zone name such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            de::Error::custom(format!(
                "unknown time zone `{s}` (use an IANA name like Europe/Berlin)"
            ))
        })
    }
}

impl Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackPolicy {
    /// Approvals needed to return a version to a stage it held before on the branch.
    #[serde(default)]
    pub approvals: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The stage whose versions this environment runs.
    pub stage: String,
    pub target: TargetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
}

pub use super::target::{TargetKind, TargetSpec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Shell command run after a switch; non-zero exit = unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// An HTTP readiness URL (`{model}`, `{version}`, `{environment}` substituted); a 2xx
    /// answer = healthy (the Open Inference Protocol's `/v2/models/{model}/ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

impl Policy {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// The stage every new version enters.
    pub fn first_stage(&self) -> Option<&Stage> {
        self.stages.first()
    }

    /// True when some environment deploys `stage` (so it is exclusive unless canary).
    pub fn is_deployed(&self, stage: &str) -> bool {
        self.environments.values().any(|e| e.stage == stage)
    }

    /// Expand an approver reference list (`group:x`, `owners`, principals) into principals.
    /// `owners` expands through `model_owners`; groups may not nest deeper than 8.
    pub fn expand_principals(&self, refs: &[String], model_owners: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for r in refs {
            self.expand_one(r, model_owners, 0, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    fn expand_one(&self, r: &str, owners: &[String], depth: usize, out: &mut Vec<String>) {
        if depth > 8 {
            return;
        }
        if r == "owners" {
            for o in owners {
                self.expand_one(o, &[], depth + 1, out);
            }
        } else if let Some(g) = r.strip_prefix("group:") {
            if let Some(members) = self.groups.get(g) {
                for m in members {
                    self.expand_one(m, owners, depth + 1, out);
                }
            }
        } else {
            out.push(r.to_owned());
        }
    }
}
