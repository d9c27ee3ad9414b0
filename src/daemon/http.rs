//! The HTTP API (axum): `/healthz`, `/readyz`, `/metrics`, `/api/v1/status`,
//! `/api/v1/events` and the `POST /hooks/git` webhook. Reads what the controller publishes.

use super::events::Event;
use super::metrics::Metrics;
use super::view::StatusView;
use super::watch::Trigger;
use super::webhook;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

/// What the controller publishes after each pass.
#[derive(Default)]
pub struct Published {
    pub status: Arc<StatusView>,
    pub metrics: Metrics,
}

pub struct Shared {
    pub published: Mutex<Published>,
    pub events: Arc<Mutex<VecDeque<Event>>>,
    pub trigger: Mutex<Sender<Trigger>>,
    /// `BATON_WEBHOOK_SECRET`; without it the webhook refuses every request.
    pub secret: Option<Vec<u8>>,
    pub branch: String,
    /// `--url` mode: a webhook means fetch.
    pub remote: bool,
}

impl Shared {
    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .route("/hooks/git", post(hook))
        .with_state(shared)
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    if s.published().status.ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: first reconcile not finished\n",
        )
            .into_response()
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let body = s.published().metrics.render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn status(State(s): State<Arc<Shared>>) -> Json<StatusView> {
    let st = s.published().status.clone();
    Json((*st).clone())
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    /// Newest N events (default 100).
    limit: Option<usize>,
    model: Option<String>,
    environment: Option<String>,
    kind: Option<String>,
}

async fn events(State(s): State<Arc<Shared>>, Query(q): Query<EventQuery>) -> Json<Vec<Event>> {
    let ring = s.events.lock().unwrap_or_else(|p| p.into_inner());
    let keep = |e: &&Event| {
        q.model.as_ref().is_none_or(|m| e.model.as_ref() == Some(m))
            && q.environment
                .as_ref()
                .is_none_or(|m| e.environment.as_ref() == Some(m))
            && q.kind.as_ref().is_none_or(|k| e.kind.as_str() == k)
    };
    let mut out: Vec<Event> = ring
        .iter()
        .rev()
        .filter(keep)
        .take(q.limit.unwrap_or(100))
        .cloned()
        .collect();
    out.reverse();
    Json(out)
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &s.secret else {
        return (
            StatusCode::UNAUTHORIZED,
            "webhook disabled: set BATON_WEBHOOK_SECRET\n",
        )
            .into_response();
    };
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !webhook::verify(secret, &body, sig) {
        tracing::warn!("webhook with a missing or wrong X-Hub-Signature-256 refused");
        return (StatusCode::UNAUTHORIZED, "bad signature\n").into_response();
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push");
    if event == "ping" {
        return (StatusCode::OK, "pong\n").into_response();
    }
    match webhook::pushed_branch(&body) {
        Some(b) if b == s.branch => {
            let t = if s.remote {
                Trigger::Fetch
            } else {
                Trigger::Changed
            };
            let _ = s.trigger.lock().unwrap_or_else(|p| p.into_inner()).send(t);
            (StatusCode::ACCEPTED, "fetch scheduled\n").into_response()
        }
        Some(other) => (
            StatusCode::ACCEPTED,
            format!("ignored: push to {other}, watching {}\n", s.branch),
        )
            .into_response(),
        None => (StatusCode::BAD_REQUEST, "not a push payload (no `ref`)\n").into_response(),
    }
}
