//! The command provider: a script that prints one number (the last non-empty line of its
//! stdout), run through [`crate::daemon::process::run`] with the query and the version named.

use super::ProviderError;
use crate::daemon::process::{self, Job};
use crate::manifest::verify::QueryVars;
use std::path::Path;
use std::time::Duration;

/// Run `command` for one metric's `query`.
pub fn measure(
    command: &str,
    query: &str,
    v: &QueryVars<'_>,
    cwd: &Path,
    timeout: Duration,
) -> Result<f64, ProviderError> {
    let env = [
        ("BATON_QUERY", query),
        ("BATON_MODEL", v.model),
        ("BATON_VERSION", v.version),
        ("BATON_ENVIRONMENT", v.environment),
        ("BATON_ENV", v.environment),
    ];
    let out = process::run(&Job {
        label: "verify command",
        command,
        env: &env,
        stdin: None,
        cwd,
        timeout,
    })
    .map_err(|e| match e {
        process::ProcessError::Spawn { .. } => ProviderError::Unreachable(e.to_string()),
        other => ProviderError::Invalid(other.to_string()),
    })?;
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or(ProviderError::NoData)?;
    super::prometheus::number(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: QueryVars<'static> = QueryVars {
        model: "m",
        version: "2",
        environment: "production",
    };

    fn run(cmd: &str) -> Result<f64, ProviderError> {
        let d = tempfile::tempdir().unwrap();
        measure(cmd, "q{x}", &V, d.path(), Duration::from_secs(5))
    }

    #[test]
    fn prints_a_number_with_the_query_in_its_environment() {
        assert_eq!(run("echo noise; echo 0.5").unwrap(), 0.5);
        assert_eq!(
            run(r#"[ "$BATON_QUERY" = 'q{x}' ] && [ "$BATON_VERSION" = 2 ] && echo 7"#).unwrap(),
            7.0
        );
    }

    #[test]
    fn no_output_garbage_and_failures_are_errors() {
        assert!(matches!(run("true"), Err(ProviderError::NoData)));
        assert!(run("echo abc")
            .unwrap_err()
            .to_string()
            .contains("not a number"));
        assert!(run("echo oops >&2; exit 3")
            .unwrap_err()
            .to_string()
            .contains("exited with 3"));
    }
}
