//! `POST /hooks/alertmanager` (docs/verification.md): Alertmanager's webhook payload (version 4)
//! parsed into the failures it reports, a small inbox the controller drains, and the handler.
//!
//! A firing alert labelled `baton_model` (optionally `baton_environment`, `baton_version`)
//! fails the verification of the version the daemon deployed there; resolved alerts and alerts
//! without the label are ignored. The controller acts on the next pass (woken at once).

use crate::daemon::http::{ApiToken, Shared};
use crate::daemon::watch::Trigger;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Alerts queued at once; past it the oldest are dropped (a storm must not grow memory).
pub const INBOX_LIMIT: usize = 1000;

/// The webhook payload version this parser reads.
pub const PAYLOAD_VERSION: &str = "4";

/// One firing alert that names a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `alertname`, or `alert` when it has none.
    pub name: String,
    pub model: String,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    /// `annotations.summary` (or `description`), one line.
    pub summary: Option<String>,
}

impl Alert {
    /// One line for events and the rollback's reason.
    pub fn describe(&self) -> String {
        let mut s = format!("alert {} firing", self.name);
        if let Some(t) = self.starts_at {
            s.push_str(&format!(" since {}", t.to_rfc3339()));
        }
        if let Some(m) = &self.summary {
            s.push_str(&format!(": {m}"));
        }
        s
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AlertError {
    #[error("not an Alertmanager webhook payload: {0}")]
    Json(String),
    #[error("Alertmanager webhook payload version {0:?}; baton reads version \"4\"")]
    Version(String),
    #[error("alert {alert}: label {label}={value:?} is not a valid {what}")]
    Label {
        alert: String,
        label: &'static str,
        value: String,
        what: &'static str,
    },
}

#[derive(Deserialize)]
struct Payload {
    version: String,
    #[serde(default)]
    alerts: Vec<RawAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAlert {
    #[serde(default)]
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
}

/// What a payload says: its firing alerts naming a model, and how many alerts it ignored
/// (resolved, or without `baton_model`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub alerts: Vec<Alert>,
    pub ignored: usize,
}

fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.trim().chars().take(200).collect()
}

/// Parse an Alertmanager webhook body (pure). Label values are checked against the registry's
/// name rules, so nothing unvalidated reaches a query, a path or a commit message.
pub fn parse(body: &[u8]) -> Result<Parsed, AlertError> {
    let p: Payload = serde_json::from_slice(body).map_err(|e| AlertError::Json(e.to_string()))?;
    if p.version != PAYLOAD_VERSION {
        return Err(AlertError::Version(p.version));
    }
    let mut out = Parsed::default();
    for a in p.alerts {
        let Some(model) = a.labels.get("baton_model") else {
            out.ignored += 1;
            continue;
        };
        if a.status != "firing" {
            out.ignored += 1;
            continue;
        }
        let name = one_line(a.labels.get("alertname").map_or("alert", String::as_str));
        let bad = |label: &'static str, value: &str, what: &'static str| AlertError::Label {
            alert: name.clone(),
            label,
            value: value.chars().take(80).collect(),
            what,
        };
        if !crate::names::is_model_name(model) {
            return Err(bad("baton_model", model, "model name"));
        }
        let environment = a.labels.get("baton_environment").cloned();
        if let Some(e) = &environment {
            if !crate::names::is_model_name(e) {
                return Err(bad("baton_environment", e, "environment name"));
            }
        }
        let version = a.labels.get("baton_version").cloned();
        if let Some(v) = &version {
            if !crate::names::is_version_label(v) {
                return Err(bad("baton_version", v, "version label"));
            }
        }
        let starts_at = a
            .starts_at
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            // Alertmanager's zero time means unknown.
            .filter(|t| t.timestamp() > 0);
        let summary = a
            .annotations
            .get("summary")
            .or_else(|| a.annotations.get("description"))
            .map(|s| one_line(s))
            .filter(|s| !s.is_empty());
        out.alerts.push(Alert {
            name,
            model: model.clone(),
            environment,
            version,
            starts_at,
            summary,
        });
    }
    Ok(out)
}

/// Alerts received and not yet handled by the controller, with when they arrived.
#[derive(Debug, Default)]
pub struct Inbox(Mutex<Vec<(Alert, DateTime<Utc>)>>);

impl Inbox {
    pub fn push(&self, alerts: Vec<Alert>, at: DateTime<Utc>) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.extend(alerts.into_iter().map(|a| (a, at)));
        if q.len() > INBOX_LIMIT {
            let cut = q.len() - INBOX_LIMIT;
            q.drain(..cut);
        }
    }

    pub fn drain(&self) -> Vec<(Alert, DateTime<Utc>)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The hook's configuration in [`Shared`]: its token and its inbox.
#[derive(Debug, Default)]
pub struct AlertHook {
    /// `BATON_ALERTMANAGER_TOKEN`, else `BATON_API_TOKEN`: the bearer token the hook needs.
    pub token: Option<ApiToken>,
    pub inbox: Arc<Inbox>,
}

/// `POST /hooks/alertmanager`.
pub async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(token) = &s.alerts.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token.accepts(given) {
            tracing::warn!("alertmanager hook with a missing or wrong bearer token refused");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token (BATON_ALERTMANAGER_TOKEN)\n",
            )
                .into_response();
        }
    }
    let parsed = match parse(&body) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let n = parsed.alerts.len();
    if n == 0 {
        return (
            StatusCode::OK,
            format!(
                "ignored {} alert(s): resolved, or without a baton_model label\n",
                parsed.ignored
            ),
        )
            .into_response();
    }
    for a in &parsed.alerts {
        tracing::info!(model = %a.model, environment = ?a.environment, version = ?a.version, "{}", a.describe());
    }
    s.alerts.inbox.push(parsed.alerts, Utc::now());
    let _ = s
        .trigger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(Trigger::Pass);
    (
        StatusCode::ACCEPTED,
        format!(
            "{n} firing alert(s) queued for the next pass ({} ignored)\n",
            parsed.ignored
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alertmanager's documented webhook payload (version 4), two alerts in the group.
    const PAYLOAD: &str = r#"{
      "version": "4",
      "groupKey": "{}:{alertname=\"ModelErrorRate\"}",
      "truncatedAlerts": 0,
      "status": "firing",
      "receiver": "baton",
      "groupLabels": {"alertname": "ModelErrorRate"},
      "commonLabels": {"alertname": "ModelErrorRate"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager:9093",
      "alerts": [
        {"status": "firing",
         "labels": {"alertname": "ModelErrorRate", "baton_model": "fraud-detector",
                    "baton_environment": "production", "baton_version": "5", "severity": "page"},
         "annotations": {"summary": "5xx ratio 0.31 over 5m\nfor fraud-detector 5"},
         "startsAt": "2026-12-01T10:00:00.123Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph", "fingerprint": "1a2b"},
        {"status": "resolved",
         "labels": {"alertname": "ModelErrorRate", "baton_model": "churn-predictor"},
         "annotations": {}, "startsAt": "2026-12-01T09:00:00Z", "endsAt": "2026-12-01T09:30:00Z"},
        {"status": "firing", "labels": {"alertname": "DiskFull"}, "annotations": {},
         "startsAt": "0001-01-01T00:00:00Z"}
      ]
    }"#;

    #[test]
    fn firing_alerts_with_baton_model_are_kept_the_rest_ignored() {
        let p = parse(PAYLOAD.as_bytes()).unwrap();
        assert_eq!(p.ignored, 2);
        assert_eq!(p.alerts.len(), 1);
        let a = &p.alerts[0];
        assert_eq!(a.name, "ModelErrorRate");
        assert_eq!(a.model, "fraud-detector");
        assert_eq!(a.environment.as_deref(), Some("production"));
        assert_eq!(a.version.as_deref(), Some("5"));
        assert_eq!(
            a.starts_at.unwrap().to_rfc3339(),
            "2026-12-01T10:00:00.123+00:00"
        );
        assert_eq!(
            a.describe(),
            "alert ModelErrorRate firing since 2026-12-01T10:00:00.123+00:00: 5xx ratio 0.31 over 5m for fraud-detector 5"
        );
    }

    #[test]
    fn bad_payloads_and_labels_are_refused() {
        assert!(matches!(parse(b"nope"), Err(AlertError::Json(_))));
        assert_eq!(
            parse(br#"{"version":"3","alerts":[]}"#),
            Err(AlertError::Version("3".into()))
        );
        let bad = |labels: &str| {
            parse(
                format!(r#"{{"version":"4","alerts":[{{"status":"firing","labels":{{"alertname":"A",{labels}}}}}]}}"#)
                    .as_bytes(),
            )
        };
        assert!(matches!(
            bad(r#""baton_model":"../etc""#),
            Err(AlertError::Label {
                label: "baton_model",
                ..
            })
        ));
        assert!(matches!(
            bad(r#""baton_model":"m","baton_version":"1 2""#),
            Err(AlertError::Label {
                label: "baton_version",
                ..
            })
        ));
        assert!(matches!(
            bad(r#""baton_model":"m","baton_environment":"Prod""#),
            Err(AlertError::Label {
                label: "baton_environment",
                ..
            })
        ));
        let ok = bad(r#""baton_model":"m""#).unwrap();
        assert_eq!(ok.alerts[0].starts_at, None);
        assert_eq!(ok.alerts[0].describe(), "alert A firing");
    }

    #[test]
    fn the_inbox_is_bounded_and_drains() {
        let i = Inbox::default();
        let a = parse(PAYLOAD.as_bytes()).unwrap().alerts;
        let now = Utc::now();
        for _ in 0..INBOX_LIMIT + 5 {
            i.push(a.clone(), now);
        }
        assert_eq!(i.drain().len(), INBOX_LIMIT);
        assert!(i.drain().is_empty());
    }
}
