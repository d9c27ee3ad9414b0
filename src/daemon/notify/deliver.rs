//! Sending one notice to one sink over HTTP, with retries on network errors, 429 and 5xx
//! (honouring a short `Retry-After`); secrets are read from the environment at send time.

use super::payload::{self, Notice};
use crate::http_client::{self, Redirects};
use crate::manifest::notify::Sink;
use std::time::Duration;

/// Attempts per delivery (the first and three retries).
pub const ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubled for each next one.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// The longest `Retry-After` honoured; longer ones wait this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Timeout of one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One notice for one sink; `environments` are the contexts of a GitHub status when the
/// event names no environment (a blocked model holds every environment).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub sink: Sink,
    pub notice: Notice,
    pub environments: Vec<String>,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// Network errors, 429 and 5xx are worth another attempt.
    pub retry: bool,
    pub retry_after: Option<Duration>,
}

impl SendError {
    fn fatal(message: impl Into<String>) -> Self {
        SendError {
            message: message.into(),
            retry: false,
            retry_after: None,
        }
    }
}

/// Where a request goes and what it carries.
struct Request {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn env(name: &str) -> Result<String, SendError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| SendError::fatal(format!("environment variable {name} is not set")))
}

/// True for the Office 365 connector URLs Microsoft retired (Teams "incoming webhook"
/// connectors); a Workflows webhook URL is needed instead.
pub fn retired_teams_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    (host.ends_with(".webhook.office.com") && path.starts_with("webhookb2/"))
        || (host == "outlook.office.com" && path.starts_with("webhook/"))
}

/// A unique id for one delivery (`X-Baton-Delivery`): the same for its retries.
pub fn delivery_id() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let h = Sha256::digest(format!("{}:{}:{}", std::process::id(), now.as_nanos(), n));
    hex::encode(&h[..16])
}

/// The requests `d` makes (a GitHub status per environment; one for the others).
fn requests(d: &Delivery, delivery: &str) -> Result<Vec<Request>, SendError> {
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
    let ct = ("Content-Type".to_owned(), "application/json".to_owned());
    Ok(match &d.sink {
        Sink::Slack(u) => vec![Request {
            url: env(&u.url_env)?,
            headers: vec![ct],
            body: json(payload::slack(&d.notice)),
        }],
        Sink::Msteams(u) => {
            let url = env(&u.url_env)?;
            if retired_teams_url(&url) {
                return Err(SendError::fatal(format!(
                    "{}: Office 365 connector URLs were retired by Microsoft; create a Workflows \
                     webhook (\"When a Teams webhook request is received\") and put its URL there",
                    u.url_env
                )));
            }
            vec![Request {
                url,
                headers: vec![ct],
                body: json(payload::msteams(&d.notice)),
            }]
        }
        Sink::Webhook(w) => {
            let body = json(payload::webhook(&d.notice));
            let mut headers = vec![
                ct,
                ("X-Baton-Delivery".to_owned(), delivery.to_owned()),
                (
                    "X-Baton-Timestamp".to_owned(),
                    chrono::Utc::now().timestamp().to_string(),
                ),
            ];
            if let Some(name) = &w.secret_env {
                let secret = env(name)?;
                headers.push((
                    "X-Baton-Signature-256".to_owned(),
                    crate::daemon::webhook::sign(secret.as_bytes(), &body),
                ));
            }
            vec![Request {
                url: w.url.clone(),
                headers,
                body,
            }]
        }
        Sink::Github(g) => {
            let Some(state) = payload::github_state(d.notice.event.kind) else {
                return Ok(vec![]);
            };
            let Some(sha) = d.notice.event.commit.as_deref() else {
                return Ok(vec![]);
            };
            let token = env(&g.token_env)?;
            let api = std::env::var("GITHUB_API_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| "https://api.github.com".to_owned());
            let envs: Vec<String> = match &d.notice.event.environment {
                Some(e) => vec![e.clone()],
                None => d.environments.clone(),
            };
            envs.iter()
                .map(|e| Request {
                    url: format!(
                        "{}/repos/{}/statuses/{sha}",
                        api.trim_end_matches('/'),
                        g.repo
                    ),
                    headers: vec![
                        ct.clone(),
                        (
                            "Accept".to_owned(),
                            "application/vnd.github+json".to_owned(),
                        ),
                        ("Authorization".to_owned(), format!("Bearer {token}")),
                        ("X-GitHub-Api-Version".to_owned(), "2022-11-28".to_owned()),
                    ],
                    body: json(payload::github_status(&d.notice, state, e)),
                })
                .collect()
        }
    })
}

/// Send `r` once.
fn send_once(agent: &ureq::Agent, r: &Request) -> Result<(), SendError> {
    let mut req = agent.post(&r.url);
    for (k, v) in &r.headers {
        req = req.set(k, v);
    }
    match req.send_bytes(&r.body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, resp)) => {
            let retry_after = resp
                .header("retry-after")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text: String = resp.into_string().unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            Err(SendError {
                message: format!("HTTP {code}: {}", text.trim()),
                retry: code == 429 || code >= 500,
                retry_after,
            })
        }
        Err(e) => Err(SendError {
            message: e.to_string(),
            retry: true,
            retry_after: None,
        }),
    }
}

/// Deliver `d` with retries; `Err` after the last attempt (or at once when not retryable).
pub fn deliver(agent: &ureq::Agent, d: &Delivery, base: Duration) -> Result<(), SendError> {
    let id = delivery_id();
    for r in requests(d, &id)? {
        let mut attempt = 1;
        loop {
            match send_once(agent, &r) {
                Ok(()) => break,
                Err(e) if e.retry && attempt < ATTEMPTS => {
                    let wait = e
                        .retry_after
                        .map(|w| w.min(MAX_RETRY_AFTER))
                        .unwrap_or(base * 2u32.pow(attempt - 1));
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// An agent with the request timeout and no redirects (a webhook that redirects is refused).
pub fn agent() -> ureq::Agent {
    http_client::agent(REQUEST_TIMEOUT, Redirects::Refuse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_office_connectors_are_recognised() {
        assert!(retired_teams_url(
            "https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/x/y"
        ));
        assert!(retired_teams_url("https://outlook.office.com/webhook/abc"));
        assert!(!retired_teams_url(
            "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
        ));
        assert!(!retired_teams_url("https://example.com/webhookb2/x"));
    }

    #[test]
    fn delivery_ids_are_unique() {
        let a = delivery_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, delivery_id());
    }
}
