//! The read-only web dashboard on the daemon's listener (docs/dashboard.md): the pipeline
//! (`/`), a model's page (`/models/<model>`), events (`/events`) and their live stream.
//!
//! Routes and the edges live here; [`data`] reads (git, state files) on blocking threads,
//! [`view`] builds pure view-models, [`trail`] judges the audit trail, [`render`] makes HTML.

pub mod data;
pub mod render;
pub mod trail;
pub mod view;

use super::events::Event;
use super::http::Shared;
use super::view::StatusView;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The cookie a browser keeps after opening a page with `?token=` (docs/dashboard.md).
pub const COOKIE: &str = "baton_session";
/// Keep-alive comments on the event stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the stream looks for a newly published status (to say `event: status`).
const STATUS_POLL: Duration = Duration::from_millis(500);

/// What the dashboard needs besides [`Shared`].
pub struct Config {
    /// The watched repository (its clone with `--url`), opened read-only by the dashboard.
    pub repo: PathBuf,
    pub state_dir: PathBuf,
    /// Every event as the controller pushes it ([`super::events::EventLog::live`]).
    pub live: broadcast::Sender<Event>,
    /// The controller's parsed-registry cache: the dashboard reads the same folders.
    pub registry_cache: crate::registry::Cache,
}

struct Dash {
    shared: Arc<Shared>,
    sources: data::Sources,
    live: broadcast::Sender<Event>,
}

impl Dash {
    fn status(&self) -> Arc<StatusView> {
        self.shared
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .status
            .clone()
    }
}

/// The dashboard's routes, behind `BATON_API_TOKEN` when it is set (the static files are not:
/// they are the same for everyone and carry no state).
pub fn router(shared: Arc<Shared>, cfg: Config) -> Router {
    let d = Arc::new(Dash {
        sources: data::Sources::new(&cfg.repo, &cfg.state_dir, cfg.registry_cache),
        live: cfg.live,
        shared,
    });
    let guarded = Router::new()
        .route("/", get(pipeline))
        .route("/models/:model", get(model))
        .route("/events", get(events))
        .route("/api/v1/events/stream", get(stream))
        .route_layer(middleware::from_fn_with_state(d.clone(), auth));
    Router::new()
        .route("/static/:file", get(asset))
        .merge(guarded)
        .with_state(d)
}

// ---------------------------------------------------------------- auth

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The request's query pairs (decoded), in order.
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default()
}

/// Like `/api/*` (`Authorization: Bearer`), and for a browser also the session cookie, or
/// `?token=`: on a page that sets the cookie and redirects to the same URL without the token;
/// on the stream (EventSource sends no headers) it is accepted as it is.
async fn auth(State(d): State<Arc<Dash>>, req: Request, next: Next) -> Response {
    let Some(token) = &d.shared.api_token else {
        return next.run(req).await;
    };
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if token.accepts(bearer) || cookie(headers, COOKIE).is_some_and(|c| token.accepts_cookie(c)) {
        return next.run(req).await;
    }
    let pairs = query_pairs(&req);
    let given = pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v);
    if given.is_some_and(|t| token.matches(t)) {
        if req.uri().path() == "/api/v1/events/stream" {
            return next.run(req).await;
        }
        let rest: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k != "token")
            .map(|(k, v)| format!("{}={}", view::encode(k), view::encode(v)))
            .collect();
        let mut location = req.uri().path().to_owned();
        if !rest.is_empty() {
            location.push('?');
            location.push_str(&rest.join("&"));
        }
        let set = format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            token.cookie_value()
        );
        return (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, location),
                (header::SET_COOKIE, set),
                (header::CACHE_CONTROL, "no-store".into()),
                (header::REFERRER_POLICY, "no-referrer".into()),
            ],
        )
            .into_response();
    }
    let mut r = html_page(
        StatusCode::UNAUTHORIZED,
        render::message(
            "Token needed",
            &["This dashboard needs the daemon's BATON_API_TOKEN: send `Authorization: Bearer <token>`, or open this page once with ?token=<token> (the browser then keeps a session cookie).".to_owned()],
        ),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

// ---------------------------------------------------------------- pages

/// Security headers of every page: no inline script or style, nothing from elsewhere.
fn html_page(code: StatusCode, body: Result<String, askama::Error>) -> Response {
    let (code, body) = match body {
        Ok(b) => (code, b),
        Err(e) => {
            tracing::error!("dashboard: rendering failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering failed: {e}\n"),
            )
        }
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// A page whose content could not be read (git, state dir).
fn unavailable(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::warn!("dashboard: {what}: {e}");
    html_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        render::message(what, &[e.to_string()]),
    )
}

/// Run `f` on a blocking thread (git and file reads, rendering).
async fn blocking(d: Arc<Dash>, f: impl FnOnce(&Dash) -> Response + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(move || f(&d)).await {
        Ok(r) => r,
        Err(e) => unavailable("The page failed", e),
    }
}

#[derive(Debug, Default, Deserialize)]
struct PipelineParams {
    #[serde(flatten)]
    query: view::PipelineQuery,
    /// `rows`: only the part live updates replace.
    fragment: Option<String>,
}

async fn pipeline(State(d): State<Arc<Dash>>, q: Option<Query<PipelineParams>>) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    blocking(d, move |d| {
        let status = d.status();
        let registry = match d.sources.registry(&status) {
            Ok(r) => r,
            Err(e) => return unavailable("The registry could not be read", e),
        };
        let entered = d.sources.entered();
        let commits = match d
            .sources
            .commit_meta(status.held.iter().filter_map(|h| h.offending.as_deref()))
        {
            Ok(c) => c,
            Err(e) => return unavailable("Commits could not be read", e),
        };
        let page = view::pipeline(
            &view::PipelineInput {
                status: &status,
                registry: registry.as_deref(),
                entered: &entered,
                commits: &commits,
                now: Utc::now(),
            },
            &q.query,
        );
        let html = match q.fragment.as_deref() {
            Some("rows") => render::pipeline_rows(&page),
            _ => render::pipeline(&page),
        };
        html_page(StatusCode::OK, html)
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
struct ModelParams {
    /// `runs`: only what each environment runs.
    fragment: Option<String>,
}

/// Events about the model shown on its page.
const MODEL_EVENTS: usize = 20;

async fn model(
    State(d): State<Arc<Dash>>,
    Path(name): Path<String>,
    q: Option<Query<ModelParams>>,
) -> Response {
    let fragment = q.and_then(|q| q.0.fragment);
    let not_found = |name: &str| {
        html_page(
            StatusCode::NOT_FOUND,
            render::message(
                "Unknown model",
                &[format!(
                    "No model `{name}` in the registry at the accepted head, in the daemon's status or in the branch's history."
                )],
            ),
        )
    };
    if !crate::names::is_model_name(&name) {
        return not_found(&name);
    }
    blocking(d, move |d| {
        let status = d.status();
        // A held model's accepted manifests are those of its baseline, not the head's.
        let baseline = status
            .held
            .iter()
            .find(|h| h.model == name)
            .map(|h| h.baseline.clone());
        let registry = match &baseline {
            Some(b) => d.sources.registry_at(b, &status.registry),
            None => d.sources.registry(&status),
        };
        let registry = match registry {
            Ok(r) => r,
            Err(e) => return unavailable("The registry could not be read", e),
        };
        let mut events = d.sources.model_events(&name);
        if events.is_empty() {
            let ring = d.shared.events.lock().unwrap_or_else(|p| p.into_inner());
            events = ring
                .iter()
                .filter(|e| e.model.as_deref() == Some(name.as_str()))
                .cloned()
                .collect();
        }
        let trail = if fragment.is_some() {
            Vec::new()
        } else {
            match d.sources.trail(&name, &status, &events) {
                Ok(t) => t,
                Err(e) => return unavailable("The history could not be read", e),
            }
        };
        let commits = match d
            .sources
            .commit_meta(status.held.iter().filter_map(|h| h.offending.as_deref()))
        {
            Ok(c) => c,
            Err(e) => return unavailable("Commits could not be read", e),
        };
        let entered = d.sources.entered();
        let page = view::model_page(view::ModelInput {
            model: &name,
            status: &status,
            registry: registry.as_deref(),
            entered: &entered,
            commits: &commits,
            trail,
            events: events
                .iter()
                .rev()
                .take(MODEL_EVENTS)
                .map(view::event_row)
                .collect(),
            now: Utc::now(),
        });
        let Some(page) = page else {
            return not_found(&name);
        };
        let html = match fragment.as_deref() {
            Some("runs") => render::model_runs(&page),
            _ => render::model(&page),
        };
        html_page(StatusCode::OK, html)
    })
    .await
}

async fn events(State(d): State<Arc<Dash>>, q: Option<Query<view::EventsQuery>>) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    let page = {
        let ring = d.shared.events.lock().unwrap_or_else(|p| p.into_inner());
        view::events_page(ring.iter(), &q)
    };
    html_page(StatusCode::OK, render::events(&page))
}

// ---------------------------------------------------------------- the stream

#[derive(Debug, Default, Deserialize)]
struct StreamParams {
    #[serde(flatten)]
    filter: view::EventsQuery,
    /// Replay the events of the ring newer than this (RFC 3339); `Last-Event-ID` wins.
    since: Option<String>,
}

struct StreamState {
    replay: VecDeque<Event>,
    rx: broadcast::Receiver<Event>,
    /// Events at or before this were replayed (or predate the stream).
    floor: Option<DateTime<Utc>>,
    filter: view::EventsQuery,
    dash: Arc<Dash>,
    status: (Option<DateTime<Utc>>, Option<String>),
    tick: tokio::time::Interval,
}

fn sse_event(e: &Event) -> sse::Event {
    sse::Event::default()
        .id(e.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .data(serde_json::to_string(e).unwrap_or_default())
}

/// `text/event-stream`: one `data: <event JSON>` per event (its `id:` is its time), an
/// `event: status` when a new status is published, a keep-alive comment every 15 s.
async fn stream(
    State(d): State<Arc<Dash>>,
    headers: HeaderMap,
    q: Option<Query<StreamParams>>,
) -> impl IntoResponse {
    let q = q.map(|q| q.0).unwrap_or_default();
    let since = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.since)
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc));
    // Subscribe first, then read the ring: nothing falls between the two.
    let rx = d.live.subscribe();
    let replay: VecDeque<Event> = match since {
        Some(t) => d
            .shared
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.time > t && q.filter.keeps(e))
            .cloned()
            .collect(),
        None => VecDeque::new(),
    };
    let floor = replay.back().map(|e| e.time).or(since);
    let st = d.status();
    let mut tick = tokio::time::interval(STATUS_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = StreamState {
        replay,
        rx,
        floor,
        filter: q.filter,
        status: (st.updated, st.head.clone()),
        dash: d,
        tick,
    };
    let s = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(e) = st.replay.pop_front() {
                return Some((Ok::<_, Infallible>(sse_event(&e)), st));
            }
            tokio::select! {
                r = st.rx.recv() => match r {
                    Ok(e) => {
                        if st.floor.is_some_and(|f| e.time <= f) || !st.filter.keeps(&e) {
                            continue;
                        }
                        return Some((Ok(sse_event(&e)), st));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let ev = sse::Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(ev), st));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = st.tick.tick() => {
                    let now = st.dash.status();
                    let key = (now.updated, now.head.clone());
                    if key != st.status {
                        st.status = key;
                        let data = serde_json::json!({
                            "updated": now.updated,
                            "head": now.head,
                        });
                        let ev = sse::Event::default().event("status").data(data.to_string());
                        return Some((Ok(ev), st));
                    }
                }
            }
        }
    });
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Sse::new(s).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")),
    )
}

// ---------------------------------------------------------------- static files

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let a = render::assets();
    let (body, ctype, tag) = match file.as_str() {
        "dashboard.css" => (render::CSS, "text/css; charset=utf-8", &a.css_tag),
        "dashboard.js" => (render::JS, "text/javascript; charset=utf-8", &a.js_tag),
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    let etag = format!("\"{tag}\"");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    // The pages link `?v=<digest>`: a new build gets a new URL, so a day's caching is safe.
    let cache = [
        (header::CACHE_CONTROL, "public, max-age=86400".to_owned()),
        (header::ETAG, etag),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (StatusCode::OK, cache, [(header::CONTENT_TYPE, ctype)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; baton_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "baton"), None);
    }
}
