//! The release JSON a `webhook` receiver is POSTed and a `command` reads on stdin
//! (docs/targets.md#the-release-json), and the per-model shape an `observe_url` answers.

use crate::daemon::release::{DeploymentRecord, Release};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// What a switch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deploy,
    Undeploy,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Undeploy => "undeploy",
        }
    }
}

/// Which delivery a body belongs to (webhook only): the same `id` on every attempt of one
/// switch, `timestamp` (unix seconds) of the attempt, so the signature covers both.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub id: &'a str,
    pub timestamp: i64,
}

/// `versions` of a release: each with its traffic, artifact and metrics. `paths` names,
/// by version label, where the daemon staged an artifact on its host (`command`).
pub fn versions(release: &Release, paths: &BTreeMap<String, String>) -> Value {
    Value::Array(
        release
            .versions
            .iter()
            .map(|v| {
                let mut artifact = Map::new();
                artifact.insert("uri".into(), json!(v.uri));
                artifact.insert("sha256".into(), json!(v.sha256));
                artifact.insert("size".into(), json!(v.size));
                artifact.insert("format".into(), json!(v.format));
                if !v.files.is_empty() {
                    artifact.insert("files".into(), json!(v.files));
                }
                if let Some(p) = paths.get(&v.version) {
                    artifact.insert("path".into(), json!(p));
                }
                json!({
                    "version": v.version,
                    "traffic": v.traffic,
                    "primary": v.primary,
                    "artifact": artifact,
                    "metrics": v.metrics,
                    "requires": v.requires,
                })
            })
            .collect(),
    )
}

/// `previous`: what the target ran before, from baton's record (null when nothing).
fn previous(prev: Option<&DeploymentRecord>) -> Value {
    match prev {
        None => Value::Null,
        Some(r) => json!({
            "commit": r.commit,
            "deployed_at": r.time,
            "versions": versions(&r.release, &BTreeMap::new()),
        }),
    }
}

/// The body of a deploy of `release` to environment `env`.
pub fn deploy(
    env: &str,
    release: &Release,
    prev: Option<&DeploymentRecord>,
    paths: &BTreeMap<String, String>,
    delivery: Option<Delivery<'_>>,
) -> Value {
    let mut body = json!({
        "action": Action::Deploy.as_str(),
        "environment": env,
        "model": release.model,
        "commit": release.commit,
        "versions": versions(release, paths),
        "previous": previous(prev),
    });
    stamp(&mut body, delivery);
    body
}

/// The body of an undeploy of `model` from `env`: no versions, `previous` what ran.
pub fn undeploy(
    env: &str,
    model: &str,
    prev: Option<&DeploymentRecord>,
    delivery: Option<Delivery<'_>>,
) -> Value {
    let mut body = json!({
        "action": Action::Undeploy.as_str(),
        "environment": env,
        "model": model,
        "commit": prev.map(|r| r.commit.as_str()),
        "versions": [],
        "previous": previous(prev),
    });
    stamp(&mut body, delivery);
    body
}

fn stamp(body: &mut Value, delivery: Option<Delivery<'_>>) {
    if let (Some(d), Some(o)) = (delivery, body.as_object_mut()) {
        o.insert("delivery".into(), json!(d.id));
        o.insert("timestamp".into(), json!(d.timestamp));
    }
}

/// `BATON_TRAFFIC`: version label -> percent, as compact JSON (`{"3":90,"4":10}`).
pub fn traffic(release: &Release) -> String {
    let m: Map<String, Value> = release
        .versions
        .iter()
        .map(|v| (v.version.clone(), json!(v.traffic)))
        .collect();
    Value::Object(m).to_string()
}

/// What an `observe_url` answers: `{"models": {"<model>": <release JSON>}}`; only each
/// version's label, digest and traffic are read, every other field is ignored.
#[derive(Debug, Deserialize)]
pub struct ObservedModels {
    pub models: BTreeMap<String, Option<ObservedRelease>>,
}

#[derive(Debug, Deserialize)]
pub struct ObservedRelease {
    #[serde(default)]
    pub versions: Vec<ObservedVersion>,
}

#[derive(Debug, Deserialize)]
pub struct ObservedVersion {
    pub version: String,
    pub traffic: u32,
    #[serde(default)]
    pub primary: bool,
    pub artifact: ObservedArtifact,
}

#[derive(Debug, Deserialize)]
pub struct ObservedArtifact {
    pub sha256: String,
}

impl ObservedRelease {
    /// `version:sha256:traffic` of each version, as [`Release::key`] lists them.
    pub fn key(&self) -> Vec<(&str, &str, u32)> {
        self.versions
            .iter()
            .map(|v| (v.version.as_str(), v.artifact.sha256.as_str(), v.traffic))
            .collect()
    }

    /// The primary's digest (the first version's when none says `primary`).
    pub fn primary_sha256(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.primary)
            .or(self.versions.first())
            .map(|v| v.artifact.sha256.as_str())
    }

    /// `3 (90%), 4 (10%)`, for drift messages.
    pub fn label(&self) -> String {
        match self.versions.as_slice() {
            [] => "nothing".into(),
            [v] => v.version.clone(),
            vs => vs
                .iter()
                .map(|v| format!("{} ({}%)", v.version, v.traffic))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// What differs between what a receiver reports for a model and what baton applied: `None`
/// when it runs the same versions, digests and traffic.
pub fn drift(applied: &Release, reported: Option<&ObservedRelease>) -> Option<String> {
    match reported {
        None => Some(format!(
            "the receiver does not report {} (baton applied {})",
            applied.model,
            applied.label()
        )),
        Some(r) if r.versions.is_empty() => Some(format!(
            "the receiver reports nothing running for {} (baton applied {})",
            applied.model,
            applied.label()
        )),
        Some(r) if r.key() != applied.key() => Some(format!(
            "the receiver runs {} of {} (baton applied {})",
            r.label(),
            applied.model,
            applied.label()
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use chrono::{TimeZone, Utc};

    fn canary() -> Release {
        let mut r = test_release("fraud", &[("3", 'a', 90), ("4", 'b', 10)]);
        r.versions[1].size = Some(48213);
        r.versions[1].format = Some("onnx".into());
        r.versions[1].metrics = [(
            "auc".to_owned(),
            serde_json::Number::from_f64(0.941).unwrap(),
        )]
        .into_iter()
        .collect();
        r.versions[1].requires.insert("encoder".into(), "7".into());
        r
    }

    #[test]
    fn deploy_body_carries_versions_artifacts_metrics_and_previous() {
        let r = canary();
        let old = test_release("fraud", &[("3", 'a', 100)]);
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        let prev = DeploymentRecord::new("prod", &old, t);
        let paths = BTreeMap::from([("4".to_owned(), "/state/targets/prod/x".to_owned())]);
        let body = deploy(
            "prod",
            &r,
            Some(&prev),
            &paths,
            Some(Delivery {
                id: "d-1",
                timestamp: 1_790_000_000,
            }),
        );
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        assert_eq!(
            body,
            json!({
                "action": "deploy",
                "environment": "prod",
                "model": "fraud",
                "commit": "c0ffee",
                "delivery": "d-1",
                "timestamp": 1_790_000_000,
                "versions": [
                    {"version": "3", "traffic": 90, "primary": true,
                     "artifact": {"uri": "artifacts/fraud/3", "sha256": a, "size": null, "format": null},
                     "metrics": {}, "requires": {}},
                    {"version": "4", "traffic": 10, "primary": false,
                     "artifact": {"uri": "artifacts/fraud/4", "sha256": b, "size": 48213,
                                  "format": "onnx", "path": "/state/targets/prod/x"},
                     "metrics": {"auc": 0.941}, "requires": {"encoder": "7"}},
                ],
                "previous": {
                    "commit": "c0ffee",
                    "deployed_at": "2026-11-20T10:00:00Z",
                    "versions": [
                        {"version": "3", "traffic": 100, "primary": true,
                         "artifact": {"uri": "artifacts/fraud/3", "sha256": a, "size": null, "format": null},
                         "metrics": {}, "requires": {}},
                    ],
                },
            })
        );
        // Without a delivery (command) and a previous release.
        let body = deploy("prod", &r, None, &BTreeMap::new(), None);
        assert!(body.get("delivery").is_none() && body.get("timestamp").is_none());
        assert_eq!(body["previous"], Value::Null);
        assert!(body["versions"][1]["artifact"].get("path").is_none());
    }

    #[test]
    fn undeploy_body_names_what_ran() {
        let old = test_release("fraud", &[("3", 'a', 100)]);
        let prev = DeploymentRecord::new("prod", &old, Utc::now());
        let body = undeploy("prod", "fraud", Some(&prev), None);
        assert_eq!(body["action"], "undeploy");
        assert_eq!(body["versions"], json!([]));
        assert_eq!(body["previous"]["versions"][0]["version"], "3");
        assert_eq!(undeploy("prod", "fraud", None, None)["commit"], Value::Null);
    }

    #[test]
    fn traffic_is_a_compact_label_to_percent_map() {
        assert_eq!(traffic(&canary()), r#"{"3":90,"4":10}"#);
    }

    #[test]
    fn observed_shape_and_drift() {
        let r = canary();
        // What the receiver echoes back is the body it was sent.
        let sent = deploy("prod", &r, None, &BTreeMap::new(), None);
        let answer = json!({"models": {"fraud": sent, "gone": null}});
        let seen: ObservedModels = serde_json::from_value(answer).unwrap();
        let fraud = seen.models["fraud"].as_ref().unwrap();
        assert_eq!(drift(&r, Some(fraud)), None);
        assert_eq!(fraud.primary_sha256(), Some("a".repeat(64).as_str()));
        assert!(seen.models["gone"].is_none());

        let moved: ObservedRelease = serde_json::from_value(json!({"versions": [
            {"version": "3", "traffic": 50, "artifact": {"sha256": "a".repeat(64)}},
            {"version": "4", "traffic": 50, "artifact": {"sha256": "b".repeat(64)}},
        ]}))
        .unwrap();
        assert_eq!(
            drift(&r, Some(&moved)).unwrap(),
            "the receiver runs 3 (50%), 4 (50%) of fraud (baton applied 3 (90%), 4 (10%))"
        );
        assert!(drift(&r, None).unwrap().contains("does not report fraud"));
        let empty: ObservedRelease = serde_json::from_value(json!({})).unwrap();
        assert!(drift(&r, Some(&empty)).unwrap().contains("nothing running"));
    }
}
