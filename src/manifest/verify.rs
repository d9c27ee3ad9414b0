//! A stage's `verify:` block (docs/verification.md): live analysis of a newly deployed version
//! against a metrics provider, in Argo Rollouts' vocabulary, and the templating of its queries.

use super::serde_util::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `consecutive_error_limit` when the stage does not set it (Argo Rollouts' default).
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: u32 = 4;

/// `verify:` on a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    pub provider: ProviderSpec,
    /// Time between two measurements.
    pub interval: HumanDuration,
    /// Good measurements after which the verification passes.
    pub count: u32,
    /// Failed measurements tolerated: one more fails the verification.
    #[serde(default)]
    pub failure_limit: u32,
    /// Errors in a row (no data, provider unreachable) after which the verification is
    /// inconclusive: the model is held, never rolled back. An error is never a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<u32>,
    pub metrics: Vec<VerifyMetric>,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default)]
    pub rollback: RollbackSpec,
}

impl VerifySpec {
    pub fn interval(&self) -> Duration {
        self.interval.0
    }

    pub fn error_limit(&self) -> u32 {
        self.consecutive_error_limit
            .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    }
}

/// Where measurements come from: exactly one of the fields (written `{prometheus: {...}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ProviderSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandProvider>,
}

/// The provider a [`ProviderSpec`] names, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider<'a> {
    Prometheus(&'a PrometheusProvider),
    Command(&'a CommandProvider),
}

impl ProviderSpec {
    /// The one provider named, or why not.
    pub fn kind(&self) -> Result<Provider<'_>, String> {
        match (&self.prometheus, &self.command) {
            (Some(p), None) => Ok(Provider::Prometheus(p)),
            (None, Some(c)) => Ok(Provider::Command(c)),
            (None, None) => Err("`provider` names no provider (use prometheus or command)".into()),
            (Some(_), Some(_)) => {
                Err("`provider` names two providers (use prometheus or command)".into())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusProvider {
    /// Base URL of the Prometheus HTTP API: `http://prometheus:9090`.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandProvider {
    /// Run with `sh -c` and `BATON_QUERY`, `BATON_MODEL`, `BATON_VERSION`,
    /// `BATON_ENVIRONMENT` set; prints one number.
    pub command: String,
}

/// One metric of the analysis; at least one bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyMetric {
    pub name: String,
    /// PromQL (or the command's `BATON_QUERY`), with `{{model}}`, `{{version}}` and
    /// `{{environment}}` substituted.
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest relative increase over the same query for the primary version (0.10 = +10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase_vs_primary: Option<f64>,
}

impl VerifyMetric {
    pub fn has_bound(&self) -> bool {
        self.max.is_some() || self.min.is_some() || self.max_increase_vs_primary.is_some()
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Contain, then write the revert to git.
    #[default]
    Rollback,
    /// Contain only; people decide.
    Hold,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    #[serde(default)]
    pub mode: RollbackMode,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RollbackMode {
    /// Commit the revert to the watched branch.
    #[default]
    Push,
    /// Push `baton/rollback/<model>-<version>` for a pull request.
    Branch,
}

/// The values a query is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct QueryVars<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub environment: &'a str,
}

/// Escape `s` for a PromQL double-quoted string literal.
pub fn promql_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// `query` with `{{model}}`, `{{version}}` and `{{environment}}` replaced (escaped for a
/// PromQL string literal; the values are validated names already). Other text is kept.
pub fn render_query(query: &str, v: &QueryVars<'_>) -> String {
    let mut out = String::with_capacity(query.len() + 32);
    let mut rest = query;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let value = match after[..j].trim() {
            "model" => Some(v.model),
            "version" => Some(v.version),
            "environment" => Some(v.environment),
            _ => None,
        };
        match value {
            Some(x) => out.push_str(&promql_escape(x)),
            None => out.push_str(&rest[i..i + 2 + j + 2]),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    out
}

/// The placeholders of `query` that are not `model`, `version` or `environment`.
pub fn unknown_placeholders(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            break;
        };
        let name = after[..j].trim();
        if !matches!(name, "model" | "version" | "environment") {
            out.push(name.to_owned());
        }
        rest = &after[j + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: QueryVars<'static> = QueryVars {
        model: "fraud",
        version: "4",
        environment: "production",
    };

    #[test]
    fn renders_the_three_placeholders_and_keeps_the_rest() {
        let q = r#"sum(rate(x{model="{{model}}",version="{{ version }}",env="{{environment}}"}[5m])) {{other}}"#;
        assert_eq!(
            render_query(q, &V),
            r#"sum(rate(x{model="fraud",version="4",env="production"}[5m])) {{other}}"#
        );
        assert_eq!(unknown_placeholders(q), vec!["other".to_owned()]);
        assert_eq!(render_query("a {{model", &V), "a {{model");
    }

    #[test]
    fn escapes_for_promql_string_literals() {
        let v = QueryVars {
            model: "a\"b",
            version: "1\\2",
            environment: "e'",
        };
        assert_eq!(
            render_query("{{model}} {{version}} {{environment}}", &v),
            r#"a\"b 1\\2 e\'"#
        );
    }

    #[test]
    fn parses_a_full_block_with_defaults() {
        let y = "provider: {prometheus: {address: http://p:9090}}\ninterval: 1m\ncount: 3\nmetrics:\n  - {name: err, query: q, max: 0.01}\n";
        let s: VerifySpec = serde_yaml::from_str(y).unwrap();
        assert_eq!(s.interval(), Duration::from_secs(60));
        assert_eq!(s.error_limit(), 4);
        assert_eq!(s.on_failure, OnFailure::Rollback);
        assert_eq!(s.rollback.mode, RollbackMode::Push);
        assert!(matches!(s.provider.kind(), Ok(Provider::Prometheus(_))));
        let bad = "provider: {}\ninterval: 1m\ncount: 3\nmetrics: []\nsurprise: 1\n";
        assert!(serde_yaml::from_str::<VerifySpec>(bad).is_err());
        let two = ProviderSpec {
            prometheus: Some(PrometheusProvider {
                address: "x".into(),
            }),
            command: Some(CommandProvider {
                command: "y".into(),
            }),
        };
        assert!(two.kind().is_err());
    }
}
