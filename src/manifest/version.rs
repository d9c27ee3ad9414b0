//! `models/<model>/versions/<version>.yaml`: one registered model version (docs/registry-format.md).

use super::small_map::SmallMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionManifest {
    pub model: String,
    #[serde(deserialize_with = "super::serde_util::label")]
    #[schemars(with = "super::schema::Label")]
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
    #[schemars(with = "BTreeMap<String, super::schema::Label>")]
    pub requires: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<u32>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Relative path (to the registry folder), `file://`, `s3://`, `gs://` or `https://`.
    pub uri: String,
    /// Lower-case hex sha256 of the artifact bytes; of a directory artifact, the digest of
    /// its listing ([`listing_digest`]).
    pub sha256: String,
    /// Bytes (of a directory artifact: of all its files); required for remote URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The model format a server loads (KServe's `modelFormat`): `onnx`, `sklearn`, `mlflow`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A directory artifact's files (`uri` then names the folder and ends in `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<ArtifactFile>>,
}

/// One file of a directory artifact, verified on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactFile {
    /// Relative to the artifact's folder, `/`-separated, no leading `./`, no `..`.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The digest that names a directory artifact: sha256 of one line `<sha256>  <path>\n` per
/// file, sorted by path bytewise (docs/registry-format.md).
pub fn listing_digest(files: &[ArtifactFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&ArtifactFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut h = Sha256::new();
    for f in sorted {
        h.update(f.sha256.as_bytes());
        h.update(b"  ");
        h.update(f.path.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Check one path of a directory artifact: relative, `/`-separated, every component a
/// plain name (no empty, `.` or `..` component, no NUL, no `\`).
pub fn check_file_path(path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("file path `{}` {why}", path.escape_default()));
    if path.is_empty() {
        return bad("is empty");
    }
    if path.starts_with('/') {
        return bad("must be relative (no leading `/`)");
    }
    if path.contains(['\0', '\\']) {
        return bad("must not contain NUL or `\\`");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("must not have empty, `.` or `..` components");
    }
    Ok(())
}

/// What is wrong with a directory artifact's listing on its own (no file is read): no
/// files, unsafe paths, a path listed twice, a file that is also a folder of another, a
/// digest that is not 64 lower-case hex digits. Empty when it is sound.
pub fn listing_problems(files: &[ArtifactFile]) -> Vec<String> {
    let mut out = Vec::new();
    if files.is_empty() {
        out.push("a directory artifact lists no files".to_owned());
    }
    for f in files {
        if let Err(e) = check_file_path(&f.path) {
            out.push(e);
        }
        if !(f.sha256.len() == 64
            && f.sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            out.push(format!(
                "file `{}`: sha256 must be 64 lower-case hex characters",
                f.path.escape_default()
            ));
        }
    }
    let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for w in paths.windows(2) {
        if w[0] == w[1] {
            out.push(format!("file `{}` is listed twice", w[0].escape_default()));
        }
    }
    for p in &paths {
        let mut prefix = String::new();
        for c in p.split('/') {
            if !prefix.is_empty()
                && paths
                    .binary_search_by(|x| x.as_bytes().cmp(prefix.as_bytes()))
                    .is_ok()
            {
                out.push(format!(
                    "file `{}` is also a folder of `{}`",
                    prefix.escape_default(),
                    p.escape_default()
                ));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
        }
    }
    out.dedup();
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl Artifact {
    /// True for a directory artifact (one with a `files:` list).
    pub fn is_directory(&self) -> bool {
        self.files.is_some()
    }

    /// True when `uri` is a path relative to the registry folder (no scheme).
    pub fn is_relative(&self) -> bool {
        !self.uri.contains("://")
    }
}
