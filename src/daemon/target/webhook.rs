//! The `webhook` target (docs/targets.md#webhook): each switch POSTs the release JSON, signed,
//! retried on network errors, 429 and 5xx; what was applied is recorded, or read back from `observe_url`.

use super::payload::{self, Delivery, ObservedModels};
use super::records::Records;
use super::{BuildContext, Observed, Switched, Target, TargetError};
use crate::daemon::artifact::ArtifactSource;
use crate::daemon::release::{DeploymentRecord, Release};
use crate::daemon::webhook::sign;
use crate::http_client::{self, Redirects};
use crate::manifest::target::WebhookConfig;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;

/// Attempts per switch (the first and three retries).
pub const ATTEMPTS: u32 = 4;
/// The wait before the first retry; doubled before each next one.
pub const BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` waited for within a switch; a longer one ends the switch (a
/// later pass tries again, after the controller's own backoff).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Bytes of a receiver's answer read: an error body is quoted, an `observe_url` answer parsed.
const ERROR_BODY_BYTES: u64 = 4096;
const OBSERVE_BYTES: u64 = 16 << 20;
/// Characters of an error body quoted in a message.
const QUOTED_CHARS: usize = 200;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status (a redirect is an answer too: none is followed).
    Status(u16),
    /// No answer: connection refused or reset, DNS failure, timeout.
    Network,
}

/// Why a switch's requests end without the release applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// A 4xx other than 429, or a redirect: the receiver refused; retrying changes nothing.
    Refused,
    /// Every attempt failed.
    Exhausted,
    /// The receiver asked to wait longer than [`MAX_RETRY_AFTER`] (seconds).
    RetryAfter(u64),
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Applied,
    Retry(Duration),
    Stop(GiveUp),
}

/// After attempt `n` (1-based) answered `answer` (with its `Retry-After` header, if any): 2xx
/// is applied; network errors, 429 and 5xx are retried after [`BACKOFF`] doubled per attempt
/// (or `Retry-After` seconds, when at most [`MAX_RETRY_AFTER`]) until [`ATTEMPTS`]; anything
/// else is refused at once.
pub fn next(answer: Answer, retry_after: Option<&str>, n: u32) -> Next {
    let retryable = match answer {
        Answer::Status(s) if (200..300).contains(&s) => return Next::Applied,
        Answer::Status(s) => s == 429 || (500..600).contains(&s),
        Answer::Network => true,
    };
    if !retryable {
        return Next::Stop(GiveUp::Refused);
    }
    if n >= ATTEMPTS {
        return Next::Stop(GiveUp::Exhausted);
    }
    // Only the delay-seconds form: an HTTP date falls back to the backoff.
    match retry_after.and_then(|h| h.trim().parse::<u64>().ok()) {
        Some(s) if Duration::from_secs(s) > MAX_RETRY_AFTER => Next::Stop(GiveUp::RetryAfter(s)),
        Some(s) => Next::Retry(Duration::from_secs(s)),
        None => Next::Retry(BACKOFF * 2u32.saturating_pow(n.saturating_sub(1))),
    }
}

/// A new delivery id (a UUID v4 layout): unique per switch, the same on its retries.
pub fn delivery_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let mut b = [0u8; 16];
        if f.read_exact(&mut b).is_ok() {
            h.update(b);
        }
    }
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// `url` without credentials or query, for messages and logs.
pub fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = auth.rsplit_once('@').map(|(_, h)| h).unwrap_or(auth);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// The headers of a signed request: `(name, value)`.
pub fn headers(
    secret: &[u8],
    body: &[u8],
    delivery: Option<&str>,
    ts: i64,
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("X-Baton-Signature-256", sign(secret, body)),
        ("X-Baton-Timestamp", ts.to_string()),
    ];
    if let Some(id) = delivery {
        h.push(("X-Baton-Delivery", id.to_owned()));
    }
    h
}

#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("webhook {url} refused the {action}: {answer} (not retried)")]
    Refused {
        url: String,
        action: &'static str,
        answer: String,
    },
    #[error("webhook {url}: {attempts} attempts failed, the last: {answer}")]
    Exhausted {
        url: String,
        attempts: u32,
        answer: String,
    },
    #[error(
        "webhook {url} answered {answer} and asked to retry after {secs} s: a later pass will"
    )]
    RetryAfter {
        url: String,
        answer: String,
        secs: u64,
    },
    #[error("observe_url {url}: {why}")]
    Observe { url: String, why: String },
}

impl From<WebhookError> for TargetError {
    fn from(e: WebhookError) -> Self {
        TargetError::Other(e.to_string())
    }
}

/// One attempt's result: how it ended and, for messages, what was said.
struct Reply {
    answer: Answer,
    retry_after: Option<String>,
    text: String,
}

pub struct WebhookTarget {
    env: String,
    url: String,
    observe_url: Option<String>,
    /// `None` only for a read-only target built without its secret (`baton status`).
    secret: Option<Vec<u8>>,
    read_only: bool,
    records: Records,
    agent: ureq::Agent,
}

impl WebhookTarget {
    /// The target of `env`; refused when the secret's variable is unset or empty (a read-only
    /// target, which never sends, does without it).
    pub fn new(env: &str, c: &WebhookConfig, cx: &BuildContext<'_>) -> Result<Self, TargetError> {
        let secret = std::env::var_os(&c.secret_env)
            .filter(|s| !s.is_empty())
            .map(|s| s.into_encoded_bytes());
        Self::with_secret(env, c, cx, secret)
    }

    /// [`WebhookTarget::new`] with the secret given (`None`: the variable is not set).
    pub fn with_secret(
        env: &str,
        c: &WebhookConfig,
        cx: &BuildContext<'_>,
        secret: Option<Vec<u8>>,
    ) -> Result<Self, TargetError> {
        if secret.is_none() && !cx.read_only {
            return Err(TargetError::Config(format!(
                "environment variable {} (target.secret_env) is not set: every webhook request is signed with it",
                c.secret_env
            )));
        }
        if !crate::names::is_model_name(env) {
            return Err(TargetError::Config(format!(
                "environment `{env}` is not a DNS label"
            )));
        }
        let agent = http_client::agent(c.timeout, Redirects::Refuse);
        Ok(WebhookTarget {
            env: env.to_owned(),
            url: c.url.clone(),
            observe_url: c.observe_url.clone(),
            secret,
            read_only: cx.read_only,
            records: Records::new(&cx.state_dir.join("targets").join(env)),
            agent,
        })
    }

    fn secret(&self) -> &[u8] {
        self.secret.as_deref().unwrap_or_default()
    }

    /// One POST of `body`.
    fn post(&self, body: &[u8], delivery: &str, ts: i64) -> Reply {
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json");
        for (k, v) in headers(self.secret(), body, Some(delivery), ts) {
            req = req.set(k, &v);
        }
        reply(req.send_bytes(body))
    }

    /// POST what `body_at(timestamp)` builds until it is applied or [`next`] says stop. The
    /// body is rebuilt per attempt (its timestamp is signed with it); the delivery id is not.
    fn deliver(
        &self,
        action: payload::Action,
        body_at: impl Fn(Delivery<'_>) -> serde_json::Value,
    ) -> Result<(), WebhookError> {
        let id = delivery_id();
        let url = redact(&self.url);
        let mut n = 0;
        loop {
            n += 1;
            let ts = Utc::now().timestamp();
            let body = serde_json::to_vec(&body_at(Delivery {
                id: &id,
                timestamp: ts,
            }))
            .unwrap_or_default();
            let r = self.post(&body, &id, ts);
            match next(r.answer, r.retry_after.as_deref(), n) {
                Next::Applied => return Ok(()),
                Next::Retry(wait) => {
                    tracing::warn!(
                        environment = %self.env,
                        "webhook {url}: {} (attempt {n}); retrying in {}",
                        r.text,
                        humantime::format_duration(wait)
                    );
                    std::thread::sleep(wait);
                }
                Next::Stop(GiveUp::Refused) => {
                    return Err(WebhookError::Refused {
                        url,
                        action: action.as_str(),
                        answer: r.text,
                    })
                }
                Next::Stop(GiveUp::Exhausted) => {
                    return Err(WebhookError::Exhausted {
                        url,
                        attempts: n,
                        answer: r.text,
                    })
                }
                Next::Stop(GiveUp::RetryAfter(secs)) => {
                    return Err(WebhookError::RetryAfter {
                        url,
                        answer: r.text,
                        secs,
                    })
                }
            }
        }
    }

    /// GET `observe_url` (signed over its timestamp) and parse the models it reports.
    fn fetch_observed(&self, url: &str) -> Result<ObservedModels, WebhookError> {
        let fail = |why: String| WebhookError::Observe {
            url: redact(url),
            why,
        };
        let ts = Utc::now().timestamp();
        let mut req = self.agent.get(url).set("Accept", "application/json");
        for (k, v) in headers(self.secret(), ts.to_string().as_bytes(), None, ts) {
            req = req.set(k, &v);
        }
        let resp = match req.call() {
            Ok(r) if (200..300).contains(&r.status()) => r,
            other => return Err(fail(reply(other).text)),
        };
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(OBSERVE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("reading the answer: {e}")))?;
        if bytes.len() as u64 > OBSERVE_BYTES {
            return Err(fail(format!(
                "the answer is larger than {OBSERVE_BYTES} bytes"
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            fail(format!(
                "the answer is not {{\"models\": {{\"<model>\": <release JSON>}}}}: {e}"
            ))
        })
    }
}

/// How a request ended, as a [`Reply`].
fn reply(r: Result<ureq::Response, ureq::Error>) -> Reply {
    let (status, resp) = match r {
        Ok(resp) => (resp.status(), resp),
        Err(ureq::Error::Status(s, resp)) => (s, resp),
        Err(ureq::Error::Transport(t)) => {
            return Reply {
                answer: Answer::Network,
                retry_after: None,
                text: t.to_string(),
            }
        }
    };
    let retry_after = resp.header("Retry-After").map(str::to_owned);
    let location = resp.header("Location").map(redact);
    let mut bytes = Vec::new();
    let _ = resp
        .into_reader()
        .take(ERROR_BODY_BYTES)
        .read_to_end(&mut bytes);
    let quoted: String = String::from_utf8_lossy(&bytes)
        .trim()
        .chars()
        .take(QUOTED_CHARS)
        .collect();
    let mut text = format!("HTTP {status}");
    if let Some(l) = location.filter(|_| (300..400).contains(&status)) {
        text.push_str(&format!(" (a redirect to {l}, not followed)"));
    }
    if !quoted.is_empty() && !(200..300).contains(&status) {
        text.push_str(&format!(": {quoted}"));
    }
    Reply {
        answer: Answer::Status(status),
        retry_after,
        text,
    }
}

impl Target for WebhookTarget {
    fn describe(&self) -> String {
        format!("webhook {}", redact(&self.url))
    }

    fn observe(&mut self) -> Result<BTreeMap<String, Observed>, TargetError> {
        let mut out = self.records.observe()?;
        let Some(url) = self.observe_url.clone().filter(|_| !self.read_only) else {
            return Ok(out);
        };
        let seen = self.fetch_observed(&url)?;
        // Models the receiver reports but baton never applied are not baton's: left alone.
        for obs in out.values_mut() {
            let Some(rec) = obs.record.clone() else {
                continue;
            };
            let reported = seen.models.get(&rec.model).and_then(Option::as_ref);
            if let Some(d) = payload::drift(&rec.release, reported) {
                obs.drift.push(d);
                obs.current = reported.and_then(|r| r.primary_sha256()).map(str::to_owned);
            }
        }
        Ok(out)
    }

    /// Nothing to fetch: the receiver fetches the artifact from its URI.
    fn stage(
        &mut self,
        _release: &Release,
        _source: &dyn ArtifactSource,
    ) -> Result<(), TargetError> {
        Ok(())
    }

    fn switch(&mut self, release: &Release, now: DateTime<Utc>) -> Result<Switched, TargetError> {
        let previous = self.records.read(&release.model).ok().flatten();
        let prev = previous.as_deref();
        let none = BTreeMap::new();
        let env = self.env.clone();
        self.deliver(payload::Action::Deploy, |d| {
            payload::deploy(&env, release, prev, &none, Some(d))
        })?;
        self.records
            .write(&DeploymentRecord::new(&self.env, release, now))?;
        Ok(Switched {
            previous: previous.map(|p| (*p).clone()),
            artifact: release.primary().uri.clone(),
        })
    }

    fn undeploy(&mut self, model: &str) -> Result<(), TargetError> {
        let previous = self.records.read(model).ok().flatten();
        let prev = previous.as_deref();
        let env = self.env.clone();
        self.deliver(payload::Action::Undeploy, |d| {
            payload::undeploy(&env, model, prev, Some(d))
        })?;
        self.records.remove(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use crate::daemon::webhook::verify;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn retry_classification() {
        let s = Answer::Status;
        assert_eq!(next(s(200), None, 1), Next::Applied);
        assert_eq!(next(s(204), None, ATTEMPTS), Next::Applied);
        for refused in [400, 401, 403, 404, 409, 422, 301, 302, 100] {
            assert_eq!(
                next(s(refused), None, 1),
                Next::Stop(GiveUp::Refused),
                "{refused}"
            );
        }
        // Network errors, 429 and 5xx: backoff doubling, at least 3 attempts in all.
        for retried in [Answer::Network, s(429), s(500), s(502), s(503), s(599)] {
            assert_eq!(next(retried, None, 1), Next::Retry(BACKOFF), "{retried:?}");
            assert_eq!(next(retried, None, 2), Next::Retry(BACKOFF * 2));
            assert_eq!(next(retried, None, 3), Next::Retry(BACKOFF * 4));
            assert_eq!(next(retried, None, ATTEMPTS), Next::Stop(GiveUp::Exhausted));
        }
        const { assert!(ATTEMPTS >= 3) };
        // Retry-After: honoured when small, else the switch ends; a date is ignored.
        assert_eq!(
            next(s(429), Some("2"), 1),
            Next::Retry(Duration::from_secs(2))
        );
        assert_eq!(next(s(503), Some(" 0 "), 1), Next::Retry(Duration::ZERO));
        assert_eq!(next(s(503), Some("30"), 1), Next::Retry(MAX_RETRY_AFTER));
        assert_eq!(
            next(s(503), Some("3600"), 1),
            Next::Stop(GiveUp::RetryAfter(3600))
        );
        assert_eq!(
            next(s(503), Some("Wed, 21 Oct 2026 07:28:00 GMT"), 2),
            Next::Retry(BACKOFF * 2)
        );
        // Retry-After on the last attempt does not extend the attempts.
        assert_eq!(
            next(s(429), Some("1"), ATTEMPTS),
            Next::Stop(GiveUp::Exhausted)
        );
    }

    #[test]
    fn requests_are_signed_over_the_exact_body() {
        let body = br#"{"action":"deploy"}"#;
        let h = headers(b"s3cret", body, Some("d-1"), 1_790_000_000);
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert!(verify(b"s3cret", body, get("X-Baton-Signature-256")));
        assert!(!verify(
            b"s3cret",
            br#"{"action":"undeploy"}"#,
            get("X-Baton-Signature-256")
        ));
        assert!(!verify(b"other", body, get("X-Baton-Signature-256")));
        assert_eq!(get("X-Baton-Delivery"), Some("d-1"));
        assert_eq!(get("X-Baton-Timestamp"), Some("1790000000"));
        // A GET (observe_url) is signed over its timestamp and carries no delivery.
        let h = headers(b"s3cret", b"1790000000", None, 1_790_000_000);
        assert!(h.iter().all(|(k, _)| *k != "X-Baton-Delivery"));
    }

    #[test]
    fn delivery_ids_are_unique_uuids() {
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| delivery_id()).collect();
        assert_eq!(ids.len(), 1000);
        let id = ids.first().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4', "{id}");
    }

    #[test]
    fn urls_in_messages_lose_credentials_and_queries() {
        assert_eq!(
            redact("https://user:pw@deployer.acme/baton?token=x"),
            "https://deployer.acme/baton"
        );
        assert_eq!(redact("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x");
        assert_eq!(redact("https://h"), "https://h");
    }

    /// A loopback server answering each connection with the next of `answers` (raw HTTP
    /// status line and headers); returns its URL and how many requests it got.
    fn server(answers: Vec<&'static str>) -> (String, Arc<AtomicU64>) {
        use std::io::{BufRead, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let n = Arc::new(AtomicU64::new(0));
        let count = n.clone();
        std::thread::spawn(move || {
            for (conn, answer) in l.incoming().zip(answers) {
                let mut conn = conn.unwrap();
                let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "{answer}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
                );
            }
        });
        (url, n)
    }

    fn target(url: &str, d: &Path) -> WebhookTarget {
        let c = WebhookConfig {
            url: url.into(),
            secret_env: "BATON_TEST_WEBHOOK_SECRET".into(),
            observe_url: None,
            timeout: Duration::from_secs(5),
        };
        let cx = BuildContext {
            state_dir: d,
            read_only: false,
        };
        WebhookTarget::with_secret("prod", &c, &cx, Some(b"k".to_vec())).unwrap()
    }

    #[test]
    fn redirects_and_long_retry_afters_end_the_switch_at_once() {
        let d = tempfile::tempdir().unwrap();
        let r = test_release("m", &[("1", 'a', 100)]);
        let (url, n) = server(vec![
            "HTTP/1.1 307 Moved\r\nLocation: http://elsewhere.example/x?t=1",
        ]);
        let mut t = target(&url, d.path());
        let err = t.switch(&r, Utc::now()).unwrap_err().to_string();
        assert!(
            err.contains("HTTP 307 (a redirect to http://elsewhere.example/x, not followed)"),
            "{err}"
        );
        assert_eq!(n.load(Ordering::SeqCst), 1);

        let (url, n) = server(vec!["HTTP/1.1 503 Busy\r\nRetry-After: 3600"]);
        let mut t = target(&url, d.path());
        let err = t.switch(&r, Utc::now()).unwrap_err().to_string();
        assert!(err.contains("asked to retry after 3600 s"), "{err}");
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(t.observe().unwrap().is_empty(), "nothing recorded");

        // 429 with a short Retry-After, then 2xx: applied and recorded.
        let (url, n) = server(vec![
            "HTTP/1.1 429 Slow down\r\nRetry-After: 0",
            "HTTP/1.1 202 Accepted",
        ]);
        let mut t = target(&url, d.path());
        t.switch(&r, Utc::now()).unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
        assert_eq!(
            t.observe().unwrap()["m"].current.as_deref(),
            Some("a".repeat(64).as_str())
        );
    }

    #[test]
    fn a_missing_secret_refuses_to_build_unless_read_only() {
        let d = tempfile::tempdir().unwrap();
        let c = WebhookConfig {
            url: "http://127.0.0.1:9/x".into(),
            secret_env: "BATON_TEST_SURELY_UNSET_SECRET".into(),
            observe_url: None,
            timeout: Duration::from_secs(1),
        };
        let cx = |read_only| BuildContext {
            state_dir: d.path(),
            read_only,
        };
        let err = WebhookTarget::new("prod", &c, &cx(false)).err().unwrap();
        assert!(
            err.to_string().contains("BATON_TEST_SURELY_UNSET_SECRET"),
            "{err}"
        );
        let mut t = WebhookTarget::new("prod", &c, &cx(true)).unwrap();
        assert!(t.observe().unwrap().is_empty());
    }
}
