//! `models/<model>/versions/<version>.yaml`: one registered model version (docs/registry-format.md).

use super::small_map::SmallMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionManifest {
    pub model: String,
    #[serde(deserialize_with = "super::serde_util::label")]
    pub version: String,
    pub stage: String,
    pub artifact: Artifact,
    // The small maps are `SmallMap`s (BTreeMap API, a fraction of the memory).
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub metrics: SmallMap<String, f64>,
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub evidence: SmallMap<String, Evidence>,
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub lineage: SmallMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::serde_util::label_map"
    )]
    pub requires: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<u32>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Relative path (to the registry folder), `file://`, `s3://`, `gs://` or `https://`.
    pub uri: String,
    /// Lower-case hex sha256 of the artifact bytes.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl Artifact {
    /// True when `uri` is a path relative to the registry folder (no scheme).
    pub fn is_relative(&self) -> bool {
        !self.uri.contains("://")
    }
}
