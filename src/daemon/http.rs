//! The HTTP API (axum): `/healthz`, `/readyz`, `/metrics`, `/api/v1/*` (behind
//! `BATON_API_TOKEN` when set), `POST /hooks/git` and `POST /hooks/alertmanager`, served by a
//! bounded accept loop. The dashboard's routes are in [`super::dashboard`].

use super::events::Event;
use super::metrics::Metrics;
use super::view::StatusView;
use super::watch::Trigger;
use super::webhook;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

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
    /// Set while the controller thread runs: `/healthz` fails when it is not.
    pub alive: Arc<AtomicBool>,
    /// `BATON_API_TOKEN`: when set, `/api/*` needs `Authorization: Bearer <token>`.
    pub api_token: Option<ApiToken>,
    /// `POST /hooks/alertmanager`: its token and the alerts queued for the controller.
    pub alerts: super::verify::alerts::AlertHook,
}

impl Shared {
    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bearer token, kept as its SHA-256 so the comparison is constant-time and does not
/// depend on the length of what a client sends.
#[derive(Clone)]
pub struct ApiToken([u8; 32]);

impl ApiToken {
    pub fn new(token: &str) -> Self {
        ApiToken(Sha256::digest(token.as_bytes()).into())
    }

    /// True when `authorization` is `Bearer <the token>`.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some(given) = authorization.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        }) else {
            return false;
        };
        self.matches(given)
    }

    /// True when `given` is the token itself (`?token=` of the dashboard).
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(given.ct_eq(&self.0))
    }

    /// The dashboard's session cookie: derived from the token, so a cookie that leaks opens
    /// the dashboard but is not the bearer token of the API.
    pub fn cookie_value(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"baton-dashboard-session\0");
        h.update(self.0);
        hex::encode(h.finalize())
    }

    pub fn accepts_cookie(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.cookie_value().as_bytes()))
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    // Behind the token when one is set: the API (and the dashboard, when there is one).
    // Probes and metrics stay open; the webhook authenticates itself (HMAC).
    let protected = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/hooks/git", post(hook))
        .route("/hooks/alertmanager", post(super::verify::alerts::hook))
        .merge(protected)
        .with_state(shared)
}

async fn require_token(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.api_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token.accepts(given) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token (BATON_API_TOKEN)\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    if s.alive.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "controller not running\n").into_response()
    }
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
    ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], body).into_response()
}

async fn status(State(s): State<Arc<Shared>>) -> Json<StatusView> {
    let st = s.published().status.clone();
    Json((*st).clone())
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    /// Newest N events (default 100); parsed by the handler, which names a bad value.
    limit: Option<String>,
    model: Option<String>,
    environment: Option<String>,
    kind: Option<String>,
}

/// A refused query string in a sentence naming the parameter (axum's own rejection reads
/// `Failed to deserialize query string: invalid digit found in string`).
fn bad_events_query(why: &str) -> Response {
    let message = format!(
        "GET /api/v1/events: bad query string ({why}); it takes limit (a whole number), model, environment and kind"
    );
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": message})),
    )
        .into_response()
}

async fn events(State(s): State<Arc<Shared>>, Query(q): Query<EventQuery>) -> Response {
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            let given = q.limit.as_deref().unwrap_or_default();
            return bad_events_query(&format!("limit: `{given}` is not a whole number"));
        }
    };
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
        .take(limit)
        .cloned()
        .collect();
    out.reverse();
    Json(out).into_response()
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

// ---------------------------------------------------------------- serving

/// Bounds of the HTTP server, so that idle or slow clients cannot use up the process's file
/// descriptors (which the controller needs for git and the targets) or hang the probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections kept open at once. Past it, the oldest connection is asked to close
    /// (at once when idle, after its response otherwise), so a new client is always served.
    pub max_connections: usize,
    /// Time to send a request's headers, and the longest idle time between the requests of a
    /// keep-alive connection (hyper restarts the same timer when a connection goes idle).
    pub header_timeout: Duration,
    /// The longest life of one connection.
    pub max_lifetime: Duration,
}

impl Limits {
    /// Limits for a process allowed `nofile` descriptors: a reserve for the controller (git
    /// packs, state files, health commands), and the HTTP server's hard ceiling
    /// (`max_connections` plus a quarter, for connections finishing after being asked to
    /// close) within the rest.
    pub fn for_fd_limit(nofile: u64) -> Self {
        let reserve = (nofile / 2).min(256);
        let usable = nofile.saturating_sub(reserve);
        Limits {
            max_connections: (usable.saturating_mul(4) / 5).clamp(8, 1024) as usize,
            header_timeout: Duration::from_secs(10),
            max_lifetime: Duration::from_secs(300),
        }
    }

    fn ceiling(&self) -> usize {
        self.max_connections + self.max_connections / 4
    }
}

/// Open connections not yet asked to close, oldest first.
#[derive(Default)]
struct Open {
    next: u64,
    conns: BTreeMap<u64, Arc<Notify>>,
}

/// Serve `app` on `listener` until `shutdown` resolves, then let connections finish their
/// response (a few seconds at most).
///
/// Why a hand-written accept loop: `axum::serve` (0.7) has no header or idle timeout and no
/// connection cap. hyper's own HTTP/1 connection builder, already in the tree under axum, has
/// `header_read_timeout` (which also bounds keep-alive idle time) and graceful shutdown per
/// connection; `hyper_util`'s `auto::Builder` would add HTTP/2 and the `h2` crate, which the
/// API does not need; tower-http's `TimeoutLayer` bounds handlers only, not idle sockets.
/// The cap and the lifetime are a semaphore and `tokio::time::timeout` around each connection.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let ceiling = limits.ceiling();
    let permits = Arc::new(Semaphore::new(ceiling));
    let open = Arc::new(Mutex::new(Open::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut warned = false;
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: wait a
                    // moment instead of spinning, and say so once.
                    if !warned {
                        tracing::warn!("http: accept failed: {e}");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        warned = false;
        let _ = stream.set_nodelay(true);
        let (id, close) = {
            let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
            while o.conns.len() >= limits.max_connections {
                match o.conns.pop_first() {
                    Some((_, oldest)) => oldest.notify_one(),
                    None => break,
                }
            }
            let id = o.next;
            o.next += 1;
            let close = Arc::new(Notify::new());
            o.conns.insert(id, close.clone());
            (id, close)
        };
        let svc = TowerToHyperService::new(app.clone());
        let open = open.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let life = tokio::time::timeout(limits.max_lifetime, async {
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = close.notified() => {}
                    _ = stop_rx.wait_for(|s| *s) => {}
                }
                // Asked to close: an idle connection closes at once, a busy one after its
                // response.
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
            });
            let _ = life.await;
            open.lock()
                .unwrap_or_else(|p| p.into_inner())
                .conns
                .remove(&id);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Connections finish their response; past a few seconds they are dropped.
    let all = u32::try_from(ceiling).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(5), permits.acquire_many(all)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_compared_whole() {
        let t = ApiToken::new("s3cret");
        assert!(t.accepts(Some("Bearer s3cret")));
        assert!(t.accepts(Some("bearer  s3cret ")));
        for bad in [
            None,
            Some(""),
            Some("s3cret"),
            Some("Bearer"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
        ] {
            assert!(!t.accepts(bad), "{bad:?}");
        }
    }

    #[test]
    fn limits_leave_descriptors_for_the_controller() {
        for n in [64u64, 128, 256, 1024, 20_000, 1 << 20, u64::MAX] {
            let l = Limits::for_fd_limit(n);
            assert!(l.max_connections >= 8, "{n}");
            assert!(l.max_connections <= 1024, "{n}");
            if n >= 128 {
                assert!(
                    (l.ceiling() as u64) + 32 < n,
                    "{n}: ceiling {} leaves too few",
                    l.ceiling()
                );
            }
        }
        assert_eq!(Limits::for_fd_limit(20_000).max_connections, 1024);
    }
}
