//! What one environment runs of one model: a [`Release`] (one version, or several sharing
//! traffic in a canary stage) and the [`DeploymentRecord`] a target writes once it is in place.

use crate::manifest::small_map::SmallMap;
use crate::registry::desired::EnvironmentDesired;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One version of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseVersion {
    pub version: String,
    pub sha256: String,
    /// Artifact URI as written in the manifest (relative to the registry folder, or a URL).
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The model format (`artifact.format`), for servers that pick a runtime by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A directory artifact's files (`uri` names the folder); empty for a single file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::manifest::version::ArtifactFile>,
    /// Percent of traffic.
    pub traffic: u32,
    /// The version that takes the rest of the traffic (the only one outside canary stages);
    /// `current` points at it.
    #[serde(default)]
    pub primary: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requires: BTreeMap<String, String>,
    /// The manifest's `metrics`, for receivers of the release (webhook, command). Not content:
    /// a manifest may gain metrics, which is no redeploy ([`Release::same_content`]). JSON
    /// numbers (finite by validation), so the release stays `Eq`.
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub metrics: SmallMap<String, serde_json::Number>,
}

/// The desired content of one (environment, model), read at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub model: String,
    /// The commit the manifests were read from (relative artifacts are read there too).
    pub commit: String,
    /// Registry folder inside the repository.
    #[serde(default)]
    pub root: String,
    /// Versions in natural order; exactly one is `primary`.
    #[serde(deserialize_with = "exact_vec")]
    pub versions: Vec<ReleaseVersion>,
}

/// A `Vec` without spare capacity: serde grows a JSON array to at least 4 slots, and the
/// daemon keeps tens of thousands of one-version releases (state.json, deployment.json).
fn exact_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut v = Vec::<T>::deserialize(d)?;
    v.shrink_to_fit();
    Ok(v)
}

impl Release {
    /// The version `current` points at.
    pub fn primary(&self) -> &ReleaseVersion {
        self.versions
            .iter()
            .find(|v| v.primary)
            .unwrap_or(&self.versions[0])
    }

    /// True when both run the same versions, artifacts and traffic (commits may differ).
    pub fn same_content(&self, other: &Release) -> bool {
        self.key() == other.key()
    }

    /// `version:sha256:traffic` of every version: what identifies the content.
    pub fn key(&self) -> Vec<(&str, &str, u32)> {
        self.versions
            .iter()
            .map(|v| (v.version.as_str(), v.sha256.as_str(), v.traffic))
            .collect()
    }

    /// Short human label: `4` or `3 (90%), 4 (10%)`.
    pub fn label(&self) -> String {
        if self.versions.len() == 1 {
            return self.versions[0].version.clone();
        }
        self.versions
            .iter()
            .map(|v| format!("{} ({}%)", v.version, v.traffic))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A stable fingerprint of the content, for remembering failures.
    pub fn fingerprint(&self) -> String {
        self.key()
            .iter()
            .map(|(v, s, t)| format!("{v}:{}:{t}", &s[..s.len().min(12)]))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Per environment, the release of each model present in `desired` (read at `commit`).
pub fn releases_of(
    desired: &EnvironmentDesired,
    commit: &str,
    root: &str,
) -> BTreeMap<String, Release> {
    desired
        .models
        .iter()
        .map(|(model, versions)| {
            let primary = versions
                .iter()
                .position(|v| v.manifest.traffic.is_none())
                .unwrap_or(0);
            let versions = versions
                .iter()
                .enumerate()
                .map(|(i, v)| ReleaseVersion {
                    version: v.version.clone(),
                    sha256: v.manifest.artifact.sha256.clone(),
                    uri: v.manifest.artifact.uri.clone(),
                    size: v.manifest.artifact.size,
                    format: v.manifest.artifact.format.clone(),
                    files: v.manifest.artifact.files.clone().unwrap_or_default(),
                    traffic: v.traffic,
                    primary: i == primary,
                    requires: v.manifest.requires.clone(),
                    metrics: v
                        .manifest
                        .metrics
                        .iter()
                        .filter_map(|(k, x)| Some((k.clone(), serde_json::Number::from_f64(*x)?)))
                        .collect(),
                })
                .collect();
            (
                model.clone(),
                Release {
                    model: model.clone(),
                    commit: commit.to_owned(),
                    root: root.to_owned(),
                    versions,
                },
            )
        })
        .collect()
}

/// `deployment.json`: what a target put in place, written after the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub model: String,
    pub environment: String,
    /// The primary version (the one `current` points at).
    pub version: String,
    pub sha256: String,
    /// The commit whose manifests were deployed.
    pub commit: String,
    /// When the switch happened.
    pub time: DateTime<Utc>,
    /// Every version with its traffic (one outside canary stages).
    pub release: Release,
}

impl DeploymentRecord {
    pub fn new(environment: &str, release: &Release, time: DateTime<Utc>) -> Self {
        let p = release.primary();
        DeploymentRecord {
            model: release.model.clone(),
            environment: environment.to_owned(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
            commit: release.commit.clone(),
            time,
            release: release.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) fn test_release(model: &str, versions: &[(&str, char, u32)]) -> Release {
    Release {
        model: model.into(),
        commit: "c0ffee".into(),
        root: String::new(),
        versions: versions
            .iter()
            .enumerate()
            .map(|(i, (v, c, t))| ReleaseVersion {
                version: (*v).into(),
                sha256: std::iter::repeat_n(*c, 64).collect(),
                uri: format!("artifacts/{model}/{v}"),
                size: None,
                format: None,
                files: Vec::new(),
                traffic: *t,
                primary: i == 0,
                requires: BTreeMap::new(),
                metrics: SmallMap::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_travel_with_a_release_but_are_not_its_content() {
        let a = test_release("m", &[("3", 'a', 100)]);
        let mut b = a.clone();
        b.versions[0].metrics = [("auc".to_owned(), serde_json::Number::from_f64(0.9).unwrap())]
            .into_iter()
            .collect();
        assert_ne!(a, b);
        assert!(a.same_content(&b), "a new metric is no redeploy");
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains(r#""metrics":{"auc":0.9}"#), "{json}");
        assert_eq!(serde_json::from_str::<Release>(&json).unwrap(), b);
        // Records written before metrics existed still read.
        assert!(!serde_json::to_string(&a).unwrap().contains("metrics"));
    }
}
