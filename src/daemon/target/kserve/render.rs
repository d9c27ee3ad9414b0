//! The `kserve` target's pure half (docs/targets.md, "kserve"): a release rendered as one
//! KServe `InferenceService` document, `kustomization.yaml`, and reading a document back.
//!
//! Everything here is a function of its arguments, so the same release, environment and
//! config always render the same bytes: observing re-renders the recorded release and any
//! difference from the file in the GitOps repository is drift.

use crate::daemon::release::{DeploymentRecord, Release, ReleaseVersion};
use crate::daemon::target::Observed;
use crate::manifest::target::{KserveConfig, KserveMode};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// The annotation holding the release (versions, digests, traffic, URIs) as JSON.
pub const RELEASE_ANNOTATION: &str = "baton.dev/release";
/// The annotation naming the registry commit the release was read from.
pub const SOURCE_ANNOTATION: &str = "baton.dev/source-commit";
/// KServe's deployment-mode annotation (`Standard` is required for `spec.canary`).
pub const MODE_ANNOTATION: &str = "serving.kserve.io/deploymentMode";
/// The name KServe's defaulters give the model container (required in canary entries).
pub const CONTAINER_NAME: &str = "kserve-container";
/// The file listing every model file of the folder.
pub const KUSTOMIZATION: &str = "kustomization.yaml";
/// Longest Kubernetes object name (a DNS-1035 label).
const MAX_NAME: usize = 63;
/// What KServe adds around a named predictor: `{isvc}-{name}-predictor`.
const PREDICTOR_AFFIXES: usize = "-".len() + "-predictor".len();
/// Storage URI schemes KServe's storage initializer loads (docs/targets.md).
pub const STORAGE_SCHEMES: &[&str] = &["s3", "gs", "https", "http", "oci", "pvc"];

/// Why a release cannot be rendered for a KServe environment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    #[error("{model}@{version}: artifact `{uri}` lives in the registry (or on the daemon's host); KServe loads models from s3://, gs://, https://, oci:// or pvc:// URIs")]
    NotRemote {
        model: String,
        version: String,
        uri: String,
    },
    #[error("{model}@{version}: artifact.format is missing; a kserve environment needs it for modelFormat.name")]
    NoFormat { model: String, version: String },
    #[error("{model}@{version}: artifact.format `{format}` is not a model format name")]
    BadFormat {
        model: String,
        version: String,
        format: String,
    },
    #[error("{model}: knative mode expresses at most two versions (a primary and one canary); the release has {count} ({labels})")]
    KnativeSplit {
        model: String,
        count: usize,
        labels: String,
    },
    #[error("{model}: the model name is too long for named KServe predictors (`{model}-<version>-predictor` must fit in 63 characters)")]
    NameTooLong { model: String },
    #[error("{model}: predictor names of versions {labels} cannot be told apart within {budget} characters")]
    NameCollision {
        model: String,
        labels: String,
        budget: usize,
    },
    #[error("model `{model}` would be rendered as `{model}.yaml`, which is the folder's kustomization file")]
    ReservedName { model: String },
    #[error("{model}: the release has no versions")]
    Empty { model: String },
}

/// The DNS label made from a version label: lower-case, every character outside `[a-z0-9-]`
/// a `-`, runs of `-` collapsed, trimmed of `-`, prefixed with `v` unless it starts with a
/// letter, and cut to `max` characters (`v1.3.0` -> `v1-3-0`, `4` -> `v4`). The result
/// matches KServe's predictor name pattern `^[a-z]([-a-z0-9]*[a-z0-9])?$`.
pub fn dns_label(label: &str, max: usize) -> String {
    let mut s = String::with_capacity(label.len() + 1);
    for c in label.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (s.is_empty() || s.ends_with('-')) {
            continue;
        }
        s.push(c);
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.insert(0, 'v');
    }
    cut(&mut s, max.max(1));
    s
}

/// Shorten `s` to at most `max` bytes (all ASCII) without leaving a trailing `-`.
fn cut(s: &mut String, max: usize) {
    s.truncate(max);
    while s.ends_with('-') {
        s.pop();
    }
}

/// The first six hex digits of the sha256 of `label`: the deterministic suffix that tells
/// apart two versions whose labels make the same DNS label.
fn label_hash(label: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(label.as_bytes())[..3])
}

/// The predictor name of each version of `release`, in the release's order.
///
/// Names are [`dns_label`]s short enough that KServe's `{model}-{name}-predictor` is a valid
/// object name. When two versions make the same name, the one whose label sorts first
/// (bytewise) keeps it and the others get `-<6 hex digits of sha256(label)>`, so a version's
/// name never depends on the order versions are listed in.
pub fn predictor_names(release: &Release) -> Result<Vec<String>, RenderError> {
    let model = &release.model;
    let budget = MAX_NAME
        .checked_sub(model.len() + PREDICTOR_AFFIXES)
        .filter(|b| *b >= 1)
        .ok_or_else(|| RenderError::NameTooLong {
            model: model.clone(),
        })?;
    let mut order: Vec<usize> = (0..release.versions.len()).collect();
    order.sort_by(|&a, &b| {
        release.versions[a]
            .version
            .as_bytes()
            .cmp(release.versions[b].version.as_bytes())
    });
    let mut names = vec![String::new(); release.versions.len()];
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for i in order {
        let label = &release.versions[i].version;
        let plain = dns_label(label, budget);
        let name = if !taken.contains(&plain) {
            plain
        } else {
            let suffix = format!("-{}", label_hash(label));
            if budget < suffix.len() + 1 {
                return Err(collision(release, budget));
            }
            let mut base = dns_label(label, budget - suffix.len());
            base.push_str(&suffix);
            if taken.contains(&base) {
                return Err(collision(release, budget));
            }
            base
        };
        taken.insert(name.clone());
        names[i] = name;
    }
    Ok(names)
}

fn collision(release: &Release, budget: usize) -> RenderError {
    RenderError::NameCollision {
        model: release.model.clone(),
        labels: labels(release),
        budget,
    }
}

fn labels(release: &Release) -> String {
    release
        .versions
        .iter()
        .map(|v| v.version.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `uri` is one KServe's storage initializer loads (`s3://`, `gs://`, `https://`,
/// `http://`, `oci://`, `pvc://` with something after the scheme).
pub fn is_storage_uri(uri: &str) -> bool {
    uri.split_once("://")
        .is_some_and(|(scheme, rest)| STORAGE_SCHEMES.contains(&scheme) && !rest.is_empty())
}

/// A model format name as KServe's ServingRuntimes list them (`sklearn`, `onnx`,
/// `tensorflow`, `huggingface`...): letters, digits, `.`, `_`, `-`.
fn is_format_name(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 63
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Every reason `release` cannot run in a KServe environment of `mode`, empty when it can:
/// what `baton validate` reports, and what [`render`] refuses.
pub fn problems(release: &Release, mode: KserveMode) -> Vec<RenderError> {
    let mut out = Vec::new();
    let model = &release.model;
    if release.versions.is_empty() {
        out.push(RenderError::Empty {
            model: model.clone(),
        });
        return out;
    }
    if format!("{model}.yaml") == KUSTOMIZATION {
        out.push(RenderError::ReservedName {
            model: model.clone(),
        });
    }
    for v in &release.versions {
        if !is_storage_uri(&v.uri) {
            out.push(RenderError::NotRemote {
                model: model.clone(),
                version: v.version.clone(),
                uri: v.uri.clone(),
            });
        }
        match v.format.as_deref() {
            None => out.push(RenderError::NoFormat {
                model: model.clone(),
                version: v.version.clone(),
            }),
            Some(f) if !is_format_name(f) => out.push(RenderError::BadFormat {
                model: model.clone(),
                version: v.version.clone(),
                format: f.to_owned(),
            }),
            Some(_) => {}
        }
    }
    match mode {
        KserveMode::Knative if release.versions.len() > 2 => out.push(RenderError::KnativeSplit {
            model: model.clone(),
            count: release.versions.len(),
            labels: labels(release),
        }),
        KserveMode::Knative => {}
        KserveMode::Standard => {
            if let Err(e) = predictor_names(release) {
                out.push(e);
            }
        }
    }
    out
}

// ---------------------------------------------------------------- the document

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InferenceService<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: BTreeMap<&'static str, &'a str>,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Spec<'a> {
    predictor: Predictor<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    canary: Vec<Canary<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predictor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    canary_traffic_percent: Option<u32>,
    model: Model<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Canary<'a> {
    traffic_percent: u32,
    predictor: Predictor<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Model<'a> {
    name: &'static str,
    model_format: ModelFormat<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<&'a str>,
    storage_uri: &'a str,
}

#[derive(Serialize)]
struct ModelFormat<'a> {
    name: &'a str,
}

/// What the release annotation records: enough to rebuild the [`DeploymentRecord`] from the
/// GitOps repository alone. Directory artifacts' file lists are left out (KServe loads the
/// folder URI; annotations are size-limited).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseNote {
    commit: String,
    #[serde(rename = "deployed-at")]
    deployed_at: String,
    versions: Vec<NoteVersion>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteVersion {
    version: String,
    sha256: String,
    traffic: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    primary: bool,
    uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    requires: BTreeMap<String, String>,
}

/// `time` as the annotation writes it: whole seconds, UTC (so it reads back equal).
fn show_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `time` cut to whole seconds, the precision the annotation keeps.
pub fn whole_seconds(time: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(time.timestamp(), 0)
        .single()
        .unwrap_or(time)
}

fn note(release: &Release, time: DateTime<Utc>) -> String {
    let n = ReleaseNote {
        commit: release.commit.clone(),
        deployed_at: show_time(time),
        versions: release
            .versions
            .iter()
            .map(|v| NoteVersion {
                version: v.version.clone(),
                sha256: v.sha256.clone(),
                traffic: v.traffic,
                primary: v.primary,
                uri: v.uri.clone(),
                format: v.format.clone(),
                size: v.size,
                requires: v.requires.clone(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&n).expect("plain data serializes")
}

fn model_spec<'a>(cfg: &'a KserveConfig, v: &'a ReleaseVersion) -> Model<'a> {
    Model {
        name: CONTAINER_NAME,
        model_format: ModelFormat {
            name: v.format.as_deref().unwrap_or_default(),
        },
        runtime: cfg.runtime.as_deref(),
        storage_uri: &v.uri,
    }
}

/// The index of the version taking the rest of the traffic, and the others (with their
/// indexes) in release order.
fn split(release: &Release) -> (usize, Vec<(usize, &ReleaseVersion)>) {
    let p = release.versions.iter().position(|v| v.primary).unwrap_or(0);
    let others = release
        .versions
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != p)
        .collect();
    (p, others)
}

/// The `InferenceService` that runs `release` in environment `env`, deployed at `time`
/// (recorded, whole seconds), as YAML with a fixed key order.
///
/// * `standard`: the primary is `spec.predictor`, every other version a `spec.canary[]`
///   entry with its `trafficPercent`; predictors are named after their versions
///   ([`predictor_names`]) so a promotion keeps the canary's pods.
/// * `knative`: one version is the predictor; of two, the predictor is the non-primary one
///   (the newer build, the canary) with `canaryTrafficPercent`, and KServe sends the rest to
///   the revision rolled out before it. Predictors stay unnamed so every version is a
///   revision of the same Knative service.
pub fn render(
    cfg: &KserveConfig,
    env: &str,
    release: &Release,
    time: DateTime<Utc>,
) -> Result<String, RenderError> {
    if let Some(e) = problems(release, cfg.mode).into_iter().next() {
        return Err(e);
    }
    let (p, others) = split(release);
    let primary = &release.versions[p];
    let mut annotations = BTreeMap::new();
    annotations.insert(SOURCE_ANNOTATION, release.commit.clone());
    annotations.insert(RELEASE_ANNOTATION, note(release, time));
    let spec = match cfg.mode {
        KserveMode::Standard => {
            annotations.insert(MODE_ANNOTATION, "Standard".to_owned());
            let names = predictor_names(release)?;
            Spec {
                predictor: Predictor {
                    name: Some(names[p].clone()),
                    min_replicas: cfg.min_replicas,
                    canary_traffic_percent: None,
                    model: model_spec(cfg, primary),
                },
                canary: others
                    .iter()
                    .map(|(i, v)| Canary {
                        traffic_percent: v.traffic,
                        // No replica or autoscaling fields: KServe sizes canaries from the
                        // stable predictor and refuses them there.
                        predictor: Predictor {
                            name: Some(names[*i].clone()),
                            min_replicas: None,
                            canary_traffic_percent: None,
                            model: model_spec(cfg, v),
                        },
                    })
                    .collect(),
            }
        }
        KserveMode::Knative => {
            annotations.insert(MODE_ANNOTATION, "Knative".to_owned());
            annotations.insert("serving.kserve.io/enable-tag-routing", "true".to_owned());
            let (live, percent) = match others.first() {
                Some((_, canary)) => (*canary, Some(canary.traffic)),
                None => (primary, None),
            };
            Spec {
                predictor: Predictor {
                    name: None,
                    min_replicas: cfg.min_replicas,
                    canary_traffic_percent: percent,
                    model: model_spec(cfg, live),
                },
                canary: Vec::new(),
            }
        }
    };
    let mut labels = BTreeMap::new();
    labels.insert("app.kubernetes.io/managed-by", "baton");
    labels.insert("baton.dev/environment", env);
    labels.insert("baton.dev/model", release.model.as_str());
    let doc = InferenceService {
        api_version: "serving.kserve.io/v1beta1",
        kind: "InferenceService",
        metadata: Metadata {
            name: &release.model,
            namespace: &cfg.namespace,
            labels,
            annotations,
        },
        spec,
    };
    let body = serde_yaml::to_string(&doc).expect("plain data serializes");
    Ok(format!(
        "# Rendered by baton for environment {env} from registry commit {}.\n# Edit the registry, not this file: baton renders hand edits back.\n{body}",
        release.commit
    ))
}

/// `kustomization.yaml` listing `<model>.yaml` of every model in `models` (sorted).
pub fn kustomization<'a>(models: impl IntoIterator<Item = &'a str>) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Kustomization {
        api_version: &'static str,
        kind: &'static str,
        resources: Vec<String>,
    }
    let set: BTreeSet<&str> = models.into_iter().collect();
    let k = Kustomization {
        api_version: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: set.iter().map(|m| format!("{m}.yaml")).collect(),
    };
    format!(
        "# Rendered by baton: the InferenceServices of this folder.\n{}",
        serde_yaml::to_string(&k).expect("plain data serializes")
    )
}

// ---------------------------------------------------------------- reading back

#[derive(Deserialize)]
struct Doc {
    metadata: DocMeta,
}

#[derive(Deserialize)]
struct DocMeta {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The deployment record `bytes` (the file `<model>.yaml`) carries, read from its release
/// annotation. The record's environment is `env`: a file rendered for another environment
/// does not re-render equal, so it shows up as drift.
pub fn read_record(env: &str, model: &str, bytes: &[u8]) -> Result<DeploymentRecord, String> {
    let doc: Doc = serde_yaml::from_slice(bytes).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
            .unwrap_or_default();
        format!("{model}.yaml is not an InferenceService baton can read{at}: {e}")
    })?;
    let text = doc
        .metadata
        .annotations
        .get(RELEASE_ANNOTATION)
        .ok_or_else(|| format!("{model}.yaml has no `{RELEASE_ANNOTATION}` annotation"))?;
    let n: ReleaseNote = serde_json::from_str(text).map_err(|e| {
        format!("{model}.yaml: annotation `{RELEASE_ANNOTATION}` is unreadable: {e}")
    })?;
    let time = DateTime::parse_from_rfc3339(&n.deployed_at)
        .map_err(|e| format!("{model}.yaml: `deployed-at` is not a time: {e}"))?
        .with_timezone(&Utc);
    if n.versions.is_empty() {
        return Err(format!(
            "{model}.yaml: the release annotation lists no versions"
        ));
    }
    let mut versions: Vec<ReleaseVersion> = n
        .versions
        .into_iter()
        .map(|v| ReleaseVersion {
            version: v.version,
            sha256: v.sha256,
            uri: v.uri,
            size: v.size,
            format: v.format,
            files: Vec::new(),
            traffic: v.traffic,
            primary: v.primary,
            requires: v.requires,
            metrics: Default::default(),
        })
        .collect();
    if versions.iter().filter(|v| v.primary).count() != 1 {
        // One primary, as every release has: the first one, when the note is odd (it then
        // re-renders differently and is reported as drift).
        for (i, v) in versions.iter_mut().enumerate() {
            v.primary = i == 0;
        }
    }
    let release = Release {
        model: model.to_owned(),
        commit: n.commit,
        root: String::new(),
        versions,
    };
    Ok(DeploymentRecord::new(env, &release, time))
}

/// What runs according to the file `<model>.yaml` (`bytes`): its record, the primary's
/// digest, and drift when the file is not exactly what baton renders for that record.
pub fn observe_document(cfg: &KserveConfig, env: &str, model: &str, bytes: &[u8]) -> Observed {
    let record = match read_record(env, model, bytes) {
        Ok(r) => r,
        Err(why) => {
            return Observed {
                record: None,
                current: None,
                drift: vec![why],
            }
        }
    };
    let mut drift = Vec::new();
    match render(cfg, env, &record.release, record.time) {
        Ok(expected) if expected.as_bytes() == bytes => {}
        Ok(expected) => drift.push(format!(
            "{model}.yaml differs from what baton renders for its release ({})",
            first_difference(&expected, bytes)
        )),
        Err(e) => drift.push(format!(
            "{model}.yaml records a release that cannot be rendered: {e}"
        )),
    }
    Observed {
        current: Some(record.sha256.clone()),
        record: Some(Arc::new(record)),
        drift,
    }
}

/// `line N: <the file's line>` of the first line that differs from `expected`.
fn first_difference(expected: &str, found: &[u8]) -> String {
    let found = String::from_utf8_lossy(found);
    let mut e = expected.lines();
    let mut f = found.lines();
    let mut n = 0;
    loop {
        n += 1;
        match (e.next(), f.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (_, Some(b)) => {
                let b = b.trim();
                let shown: String = b.chars().take(80).collect();
                let more = if shown.len() < b.len() { "…" } else { "" };
                return format!("line {n}: `{shown}{more}`");
            }
            (Some(_), None) => return format!("line {n}: the file ends early"),
            (None, None) => return "whitespace at the end".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;

    fn cfg(mode: KserveMode) -> KserveConfig {
        KserveConfig {
            repo: "/tmp/gitops".into(),
            branch: "main".into(),
            path: "clusters/prod".into(),
            namespace: "ml-prod".into(),
            mode,
            runtime: Some("kserve-sklearnserver".into()),
            min_replicas: Some(2),
        }
    }

    fn remote(mut r: Release) -> Release {
        for v in &mut r.versions {
            v.uri = format!("s3://models/{}/{}", r.model, v.version);
            v.format = Some("sklearn".into());
        }
        r
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
    }

    #[test]
    fn version_labels_become_predictor_names() {
        for (label, want) in [
            ("v1.3.0", "v1-3-0"),
            ("4", "v4"),
            ("1.0_RC..2", "v1-0-rc-2"),
            ("Champion", "champion"),
            ("-x-", "x"),
            ("a-", "a"),
        ] {
            let got = dns_label(label, 52);
            assert_eq!(got, want, "{label}");
            assert!(is_predictor_name(&got), "{got}");
        }
        // Cut to the budget without a trailing dash.
        assert_eq!(dns_label("abcd-efgh", 5), "abcd");
        assert_eq!(dns_label("123456", 3), "v12");
    }

    fn is_predictor_name(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && !s.ends_with('-')
    }

    #[test]
    fn colliding_names_are_told_apart_whatever_the_order() {
        let r = remote(test_release("m", &[("1.0", 'a', 90), ("1-0", 'b', 10)]));
        let names = predictor_names(&r).unwrap();
        // "1-0" sorts before "1.0": it keeps the plain name.
        assert_eq!(names[1], "v1-0");
        assert_eq!(names[0], format!("v1-0-{}", label_hash("1.0")));
        let mut swapped = r.clone();
        swapped.versions.reverse();
        let again = predictor_names(&swapped).unwrap();
        assert_eq!(again, [names[1].clone(), names[0].clone()]);
        assert!(names.iter().all(|n| is_predictor_name(n)));
    }

    #[test]
    fn names_fit_kserve_object_names() {
        let model = "m".repeat(40);
        let long = "1.".repeat(30) + "9";
        let r = remote(test_release(&model, &[(long.as_str(), 'a', 100)]));
        let n = &predictor_names(&r).unwrap()[0];
        assert!(model.len() + n.len() + PREDICTOR_AFFIXES <= MAX_NAME, "{n}");
        let too_long = remote(test_release(&"m".repeat(52), &[("1", 'a', 100)]));
        assert_eq!(
            predictor_names(&too_long),
            Err(RenderError::NameTooLong {
                model: "m".repeat(52)
            })
        );
    }

    #[test]
    fn knative_expresses_two_versions_at_most() {
        let two = remote(test_release("m", &[("1", 'a', 90), ("2", 'b', 10)]));
        let y = render(&cfg(KserveMode::Knative), "prod", &two, t0()).unwrap();
        // The canary (the non-primary version) is the predictor, with its share.
        assert!(y.contains("canaryTrafficPercent: 10"), "{y}");
        assert!(y.contains("storageUri: s3://models/m/2"), "{y}");
        assert!(!y.contains("storageUri: s3://models/m/1\n"), "{y}");
        assert!(
            !y.contains("\n    name: v"),
            "knative predictors are unnamed: {y}"
        );
        let three = remote(test_release(
            "m",
            &[("1", 'a', 80), ("2", 'b', 10), ("3", 'c', 10)],
        ));
        let err = render(&cfg(KserveMode::Knative), "prod", &three, t0()).unwrap_err();
        assert!(
            matches!(err, RenderError::KnativeSplit { count: 3, .. }),
            "{err}"
        );
        // Standard mode takes the same split.
        let y = render(&cfg(KserveMode::Standard), "prod", &three, t0()).unwrap();
        assert_eq!(y.matches("trafficPercent:").count(), 2, "{y}");
    }

    #[test]
    fn registry_artifacts_and_missing_formats_are_refused() {
        let mut r = remote(test_release("m", &[("1", 'a', 90), ("2", 'b', 10)]));
        r.versions[0].uri = "artifacts/m/1/model.onnx".into();
        r.versions[1].format = None;
        let p = problems(&r, KserveMode::Standard);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(matches!(&p[0], RenderError::NotRemote { version, .. } if version == "1"));
        assert!(matches!(&p[1], RenderError::NoFormat { version, .. } if version == "2"));
        r.versions[0].uri = "file:///srv/m/1".into();
        assert!(render(&cfg(KserveMode::Standard), "prod", &r, t0()).is_err());
        for ok in ["gs://b/m", "oci://r/m:1", "pvc://claim/m", "https://h/m"] {
            assert!(is_storage_uri(ok), "{ok}");
        }
        for bad in ["s3://", "ftp://h/m", "m/1", "hf://org/m"] {
            assert!(!is_storage_uri(bad), "{bad}");
        }
        let k = remote(test_release("kustomization", &[("1", 'a', 100)]));
        assert!(matches!(
            problems(&k, KserveMode::Standard)[0],
            RenderError::ReservedName { .. }
        ));
    }

    #[test]
    fn a_rendered_document_reads_back_as_its_record() {
        let mut r = remote(test_release("m", &[("1.2.0", 'a', 90), ("1.3.0", 'b', 10)]));
        r.versions[1].requires.insert("enc".into(), "7".into());
        r.versions[0].size = Some(42);
        for mode in [KserveMode::Standard, KserveMode::Knative] {
            let y = render(&cfg(mode), "prod", &r, t0()).unwrap();
            let obs = observe_document(&cfg(mode), "prod", "m", y.as_bytes());
            assert!(obs.drift.is_empty(), "{:?}", obs.drift);
            let rec = obs.record.unwrap();
            assert_eq!(rec.release, r);
            assert_eq!(rec.time, t0());
            assert_eq!(rec.environment, "prod");
            assert_eq!(obs.current.as_deref(), Some(r.versions[0].sha256.as_str()));
            assert_eq!(
                render(&cfg(mode), "prod", &r, t0()).unwrap(),
                y,
                "rendering is deterministic"
            );
        }
    }

    #[test]
    fn edits_are_drift_naming_the_line() {
        let r = remote(test_release("m", &[("1", 'a', 100)]));
        let c = cfg(KserveMode::Standard);
        let y = render(&c, "prod", &r, t0()).unwrap();
        let edited = y.replace("minReplicas: 2", "minReplicas: 5");
        let obs = observe_document(&c, "prod", "m", edited.as_bytes());
        assert!(obs.record.is_some());
        assert_eq!(obs.drift.len(), 1);
        assert!(obs.drift[0].contains("`minReplicas: 5`"), "{:?}", obs.drift);
        // Rendered for another environment, or another config: drift too.
        assert!(!observe_document(&c, "staging", "m", y.as_bytes())
            .drift
            .is_empty());
        let other = KserveConfig {
            runtime: None,
            ..c.clone()
        };
        assert!(!observe_document(&other, "prod", "m", y.as_bytes())
            .drift
            .is_empty());
        // Unreadable or foreign files: no record, drift says why.
        let o = observe_document(&c, "prod", "m", b"kind: [");
        assert!(
            o.record.is_none() && o.drift[0].contains("line"),
            "{:?}",
            o.drift
        );
        let o = observe_document(&c, "prod", "m", b"metadata: {name: m}\n");
        assert!(
            o.drift[0].contains("no `baton.dev/release`"),
            "{:?}",
            o.drift
        );
        let broken = y.replace("\"traffic\": 100", "\"traffic\": \"x\"");
        let o = observe_document(&c, "prod", "m", broken.as_bytes());
        assert!(o.drift[0].contains("unreadable"), "{:?}", o.drift);
    }

    #[test]
    fn kustomization_lists_model_files_sorted() {
        let k = kustomization(["b", "a", "b"]);
        assert!(k.ends_with("resources:\n- a.yaml\n- b.yaml\n"), "{k}");
        assert!(kustomization([]).contains("resources: []"));
    }
}
