//! An environment's `target:` block (docs/targets.md): the YAML shape every kind shares, and
//! [`TargetConfig`], the typed, validated form each kind is built from (vector's config stage).

use super::serde_util::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `target:` block as written. Each kind uses some of the fields; [`TargetSpec::config`]
/// refuses the ones a kind does not take, so a typo never passes silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub kind: TargetKind,
    /// `local`: folder under `<state-dir>/deploy/`; `kserve`: folder in the GitOps repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `local`: a command run after each switch so a model server picks the new version up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<CommandSpec>,
    /// `kserve`: the GitOps repository (a URL or a local path), pushed with the git CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// `kserve`: the branch of that repository (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `kserve`: the Kubernetes namespace of the InferenceServices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `kserve`: `standard` (KServe >= 0.20, `spec.canary[]`) or `knative`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<KserveMode>,
    /// `kserve`: the ServingRuntime; KServe picks one by `modelFormat` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// `kserve`: `minReplicas` of each predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// `webhook`: where releases are POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `webhook`: the environment variable holding the HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// `webhook`: a GET returning what runs, per model, so baton sees drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe_url: Option<String>,
    /// `command`: the command run per switch (`sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<String>,
    /// `webhook` (per request) and `command` (per run): how long one attempt may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Local,
    Kserve,
    Webhook,
    Command,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Local => "local",
            TargetKind::Kserve => "kserve",
            TargetKind::Webhook => "webhook",
            TargetKind::Command => "command",
        }
    }
}

/// How a KServe canary is expressed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KserveMode {
    /// KServe >= 0.20 raw deployments: `spec.predictor` + `spec.canary[]`, any split.
    #[default]
    Standard,
    /// Serverless: `canaryTrafficPercent`, so at most two versions.
    Knative,
}

/// A shell command with an optional timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

/// Default timeout of a `reload` command.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default timeout of a `command` target's run.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// Default timeout of one webhook request.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated target: every value safe to use as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetConfig {
    Local(LocalConfig),
    Kserve(KserveConfig),
    Webhook(WebhookConfig),
    Command(CommandConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// Normalised, relative, no `..`: stays under `<state-dir>/deploy/`.
    pub path: String,
    pub reload: Option<Reload>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    pub command: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KserveConfig {
    pub repo: String,
    pub branch: String,
    /// Normalised, relative, no `..`: the folder of the GitOps repository baton owns.
    pub path: String,
    /// A DNS label.
    pub namespace: String,
    pub mode: KserveMode,
    pub runtime: Option<String>,
    pub min_replicas: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://` or `https://`.
    pub url: String,
    /// The environment variable holding the HMAC secret (required: requests are signed).
    pub secret_env: String,
    pub observe_url: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    pub apply: String,
    pub timeout: Duration,
}

/// One problem with a `target:` block: the field it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub field: &'static str,
    pub message: String,
}

impl TargetSpec {
    /// A `local` target at `path` (tests and examples).
    pub fn local(path: &str) -> Self {
        TargetSpec {
            kind: TargetKind::Local,
            path: Some(path.to_owned()),
            reload: None,
            repo: None,
            branch: None,
            namespace: None,
            mode: None,
            runtime: None,
            min_replicas: None,
            url: None,
            secret_env: None,
            observe_url: None,
            apply: None,
            timeout: None,
        }
    }

    /// The fields that are set, by name (for refusing those a kind does not take).
    fn set_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |name: &'static str, set: bool| {
            if set {
                out.push(name);
            }
        };
        add("path", self.path.is_some());
        add("reload", self.reload.is_some());
        add("repo", self.repo.is_some());
        add("branch", self.branch.is_some());
        add("namespace", self.namespace.is_some());
        add("mode", self.mode.is_some());
        add("runtime", self.runtime.is_some());
        add("min_replicas", self.min_replicas.is_some());
        add("url", self.url.is_some());
        add("secret_env", self.secret_env.is_some());
        add("observe_url", self.observe_url.is_some());
        add("apply", self.apply.is_some());
        add("timeout", self.timeout.is_some());
        out
    }

    /// Validate into the typed config of its kind, or every problem found.
    pub fn config(&self) -> Result<TargetConfig, Vec<ConfigProblem>> {
        let allowed: &[&str] = match self.kind {
            TargetKind::Local => &["path", "reload"],
            TargetKind::Kserve => &[
                "path",
                "repo",
                "branch",
                "namespace",
                "mode",
                "runtime",
                "min_replicas",
            ],
            TargetKind::Webhook => &["url", "secret_env", "observe_url", "timeout"],
            TargetKind::Command => &["apply", "timeout"],
        };
        let mut problems: Vec<ConfigProblem> = self
            .set_fields()
            .into_iter()
            .filter(|f| !allowed.contains(f))
            .map(|f| ConfigProblem {
                field: f,
                message: format!("`{f}` is not a field of a `{}` target", self.kind.as_str()),
            })
            .collect();
        let mut need = |field: &'static str, v: &Option<String>| -> String {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => s.to_owned(),
                _ => {
                    problems.push(ConfigProblem {
                        field,
                        message: format!("a `{}` target needs `{field}`", self.kind.as_str()),
                    });
                    String::new()
                }
            }
        };
        let cfg = match self.kind {
            TargetKind::Local => {
                let path = need("path", &self.path);
                let reload = self.reload.as_ref().map(|r| Reload {
                    command: r.command.clone(),
                    timeout: r.timeout.map(|t| t.0).unwrap_or(DEFAULT_RELOAD_TIMEOUT),
                });
                if reload.as_ref().is_some_and(|r| r.command.trim().is_empty()) {
                    problems.push(ConfigProblem {
                        field: "reload",
                        message: "`reload.command` is empty".into(),
                    });
                }
                let path = relative(&path, "path", &mut problems);
                TargetConfig::Local(LocalConfig { path, reload })
            }
            TargetKind::Kserve => {
                let repo = need("repo", &self.repo);
                let path = need("path", &self.path);
                let namespace = need("namespace", &self.namespace);
                let branch = self.branch.clone().unwrap_or_else(|| "main".into());
                if !is_branch_name(&branch) {
                    problems.push(ConfigProblem {
                        field: "branch",
                        message: format!("`{branch}` is not a branch name"),
                    });
                }
                if !namespace.is_empty() && !crate::names::is_model_name(&namespace) {
                    problems.push(ConfigProblem {
                        field: "namespace",
                        message: format!("namespace `{namespace}` must be a lower-case DNS label"),
                    });
                }
                if repo.starts_with('-') {
                    problems.push(ConfigProblem {
                        field: "repo",
                        message: "`repo` must not start with `-`".into(),
                    });
                }
                let path = relative(&path, "path", &mut problems);
                TargetConfig::Kserve(KserveConfig {
                    repo,
                    branch,
                    path,
                    namespace,
                    mode: self.mode.unwrap_or_default(),
                    runtime: self.runtime.clone(),
                    min_replicas: self.min_replicas,
                })
            }
            TargetKind::Webhook => {
                let url = need("url", &self.url);
                // Required: every request is signed (docs/targets.md#webhook).
                let secret_env = need("secret_env", &self.secret_env);
                for (field, u) in [
                    ("url", Some(&url)),
                    ("observe_url", self.observe_url.as_ref()),
                ] {
                    if let Some(u) = u.filter(|u| !u.is_empty()) {
                        if !(u.starts_with("https://") || u.starts_with("http://")) {
                            problems.push(ConfigProblem {
                                field,
                                message: format!("`{u}` is not an http:// or https:// URL"),
                            });
                        }
                    }
                }
                let s = &secret_env;
                if !s.is_empty() && !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    problems.push(ConfigProblem {
                        field: "secret_env",
                        message: format!("`{s}` is not an environment variable name"),
                    });
                }
                TargetConfig::Webhook(WebhookConfig {
                    url,
                    secret_env,
                    observe_url: self.observe_url.clone(),
                    timeout: self.timeout.map(|t| t.0).unwrap_or(DEFAULT_WEBHOOK_TIMEOUT),
                })
            }
            TargetKind::Command => TargetConfig::Command(CommandConfig {
                apply: need("apply", &self.apply),
                timeout: self.timeout.map(|t| t.0).unwrap_or(DEFAULT_COMMAND_TIMEOUT),
            }),
        };
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }
}

impl TargetConfig {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetConfig::Local(_) => TargetKind::Local,
            TargetConfig::Kserve(_) => TargetKind::Kserve,
            TargetConfig::Webhook(_) => TargetKind::Webhook,
            TargetConfig::Command(_) => TargetKind::Command,
        }
    }
}

fn relative(p: &str, field: &'static str, problems: &mut Vec<ConfigProblem>) -> String {
    if p.is_empty() {
        return String::new();
    }
    match crate::registry::invariants::safe_relative(p) {
        Ok(norm) => norm,
        Err(why) => {
            problems.push(ConfigProblem {
                field,
                message: format!("`{field}` `{p}`: {why}"),
            });
            String::new()
        }
    }
}

/// A conservative git branch name: what `git check-ref-format --branch` accepts, minus the
/// characters a shell or a refspec would treat specially.
fn is_branch_name(b: &str) -> bool {
    !b.is_empty()
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("@{")
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TargetSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn each_kind_validates_into_its_config() {
        let l = spec("{kind: local, path: ./prod/, reload: {command: 'kill -HUP 1'}}");
        match l.config().unwrap() {
            TargetConfig::Local(c) => {
                assert_eq!(c.path, "prod");
                assert_eq!(c.reload.unwrap().timeout, DEFAULT_RELOAD_TIMEOUT);
            }
            c => panic!("{c:?}"),
        }
        let k = spec("{kind: kserve, repo: /tmp/gitops, path: clusters/prod, namespace: ml}");
        match k.config().unwrap() {
            TargetConfig::Kserve(c) => {
                assert_eq!(c.branch, "main");
                assert_eq!(c.mode, KserveMode::Standard);
            }
            c => panic!("{c:?}"),
        }
        let w = spec("{kind: webhook, url: 'https://d.example/x', secret_env: DEPLOYER_SECRET}");
        assert_eq!(w.config().unwrap().kind(), TargetKind::Webhook);
        let c = spec("{kind: command, apply: ./deploy.sh, timeout: 10m}");
        match c.config().unwrap() {
            TargetConfig::Command(c) => assert_eq!(c.timeout, Duration::from_secs(600)),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn wrong_fields_and_unsafe_values_are_refused() {
        let fields = |y: &str| -> Vec<&'static str> {
            spec(y)
                .config()
                .unwrap_err()
                .into_iter()
                .map(|p| p.field)
                .collect()
        };
        assert_eq!(fields("{kind: local, path: a, url: 'https://x'}"), ["url"]);
        assert_eq!(fields("{kind: local, path: ../out}"), ["path"]);
        assert_eq!(fields("{kind: local}"), ["path"]);
        assert_eq!(
            fields("{kind: kserve, repo: r, path: p, namespace: Bad_NS, branch: '-x'}"),
            ["branch", "namespace"]
        );
        assert_eq!(
            fields("{kind: webhook, url: 'ftp://x', secret_env: S}"),
            ["url"]
        );
        assert_eq!(fields("{kind: webhook, url: 'http://x'}"), ["secret_env"]);
        assert_eq!(
            fields("{kind: webhook, url: 'http://x', secret_env: 'A B'}"),
            ["secret_env"]
        );
        assert_eq!(fields("{kind: command}"), ["apply"]);
    }
}
