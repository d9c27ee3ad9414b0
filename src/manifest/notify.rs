//! The `notifications:` routes of `baton.yaml` (docs/notifications.md): which events go to
//! which sink, as written, and [`Route::sink`], the validated sink each route delivers to.

use serde::{Deserialize, Serialize};

/// One route: events of the kinds in `on` (optionally only for some environments or models)
/// are delivered to `sink`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Event kinds as in `events.jsonl` (`blocked`, `deployed`...), or `*` for every kind.
    pub on: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    pub sink: SinkSpec,
}

/// Where a route delivers, written as a single-key map (`{slack: {url_env: ...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct SinkSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<UrlFromEnv>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msteams: Option<UrlFromEnv>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubSink>,
}

/// A webhook URL that is itself a secret (Slack, Teams): named by environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlFromEnv {
    pub url_env: String,
}

/// A generic JSON webhook, HMAC-signed when `secret_env` is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSink {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

/// GitHub commit statuses (`baton/<environment>`) on the landed commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubSink {
    /// `owner/repo`.
    pub repo: String,
    pub token_env: String,
}

/// A route's validated sink.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sink {
    Slack(UrlFromEnv),
    Msteams(UrlFromEnv),
    Webhook(WebhookSink),
    Github(GithubSink),
}

impl Sink {
    /// The sink's kind, for metrics and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Sink::Slack(_) => "slack",
            Sink::Msteams(_) => "msteams",
            Sink::Webhook(_) => "webhook",
            Sink::Github(_) => "github",
        }
    }
}

/// True for a name a shell would accept as an environment variable.
pub fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Route {
    /// The one sink this route names, or why it names none or several, or a bad value.
    pub fn sink(&self) -> Result<Sink, String> {
        let s = &self.sink;
        let mut set: Vec<Sink> = Vec::new();
        if let Some(x) = &s.slack {
            set.push(Sink::Slack(x.clone()));
        }
        if let Some(x) = &s.msteams {
            set.push(Sink::Msteams(x.clone()));
        }
        if let Some(x) = &s.webhook {
            set.push(Sink::Webhook(x.clone()));
        }
        if let Some(x) = &s.github {
            set.push(Sink::Github(x.clone()));
        }
        if set.len() != 1 {
            return Err(format!(
                "`sink` names {} sinks; exactly one of slack, msteams, webhook, github",
                set.len()
            ));
        }
        let sink = set.remove(0);
        let bad_env = |n: &str| format!("`{n}` is not an environment variable name");
        match &sink {
            Sink::Slack(u) | Sink::Msteams(u) if !is_env_name(&u.url_env) => {
                return Err(bad_env(&u.url_env))
            }
            Sink::Webhook(w) => {
                if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                    return Err(format!(
                        "webhook url `{}` is not http:// or https://",
                        w.url
                    ));
                }
                if let Some(e) = w.secret_env.as_deref().filter(|e| !is_env_name(e)) {
                    return Err(bad_env(e));
                }
            }
            Sink::Github(g) => {
                let parts: Vec<&str> = g.repo.split('/').collect();
                let ok = |p: &str| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                };
                if parts.len() != 2 || !parts.iter().all(|p| ok(p)) {
                    return Err(format!("github repo `{}` is not owner/name", g.repo));
                }
                if !is_env_name(&g.token_env) {
                    return Err(bad_env(&g.token_env));
                }
            }
            _ => {}
        }
        Ok(sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(y: &str) -> Route {
        serde_yaml::from_str(y).unwrap()
    }

    #[test]
    fn each_sink_validates() {
        let r = route("{on: [blocked], sink: {slack: {url_env: SLACK_URL}}}");
        assert_eq!(r.sink().unwrap().kind(), "slack");
        let r = route("{on: ['*'], sink: {webhook: {url: 'https://h/x', secret_env: S}}}");
        assert_eq!(r.sink().unwrap().kind(), "webhook");
        let r =
            route("{on: [deployed], sink: {github: {repo: acme/reg, token_env: GITHUB_TOKEN}}}");
        assert_eq!(r.sink().unwrap().kind(), "github");
    }

    #[test]
    fn bad_sinks_are_refused() {
        let err = |y: &str| route(y).sink().unwrap_err();
        assert!(err("{on: [x], sink: {}}").contains("names 0 sinks"));
        assert!(
            err("{on: [x], sink: {slack: {url_env: A}, msteams: {url_env: B}}}")
                .contains("names 2 sinks")
        );
        assert!(err("{on: [x], sink: {slack: {url_env: 'A-B'}}}").contains("not an environment"));
        assert!(err("{on: [x], sink: {webhook: {url: 'ftp://x'}}}").contains("not http"));
        assert!(err("{on: [x], sink: {github: {repo: acme, token_env: T}}}").contains("owner/name"));
        assert!(
            serde_yaml::from_str::<Route>("{on: [x], sink: {slack: {url: 'https://x'}}}").is_err()
        );
    }
}
