//! The environment's health command, run after a switch with `sh -c` and a timeout:
//! non-zero exit, a signal or the timeout make the new version unhealthy.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Default timeout when the policy sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the command is told about the switch.
pub struct HealthEnv<'a> {
    pub env: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    pub artifact: &'a Path,
    pub sha256: &'a str,
}

/// Run `command`; `Err` says why it is unhealthy (exit status and the tail of its output).
pub fn run(command: &str, e: &HealthEnv, cwd: &Path, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env("BATON_ENV", e.env)
        .env("BATON_MODEL", e.model)
        .env("BATON_VERSION", e.version)
        .env("BATON_ARTIFACT", e.artifact)
        .env("BATON_SHA256", e.sha256)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("health command could not start: {err}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if status.success() {
                    return Ok(());
                }
                let mut tail = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut tail);
                }
                let tail = tail.trim();
                let tail = &tail[tail.len().saturating_sub(200)..];
                return Err(match status.code() {
                    Some(c) if tail.is_empty() => format!("health command exited with {c}"),
                    Some(c) => format!("health command exited with {c}: {tail}"),
                    None => "health command was killed by a signal".to_owned(),
                });
            }
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "health command timed out after {}",
                    humantime::format_duration(timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(err) => return Err(format!("health command: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(p: &Path) -> HealthEnv<'_> {
        HealthEnv {
            env: "prod",
            model: "m",
            version: "2",
            artifact: p,
            sha256: "ab",
        }
    }

    #[test]
    fn passes_env_and_reports_failures() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        assert!(run(
            "test \"$BATON_MODEL@$BATON_VERSION\" = m@2",
            &e,
            d.path(),
            DEFAULT_TIMEOUT
        )
        .is_ok());
        let err = run("echo broken >&2; exit 3", &e, d.path(), DEFAULT_TIMEOUT).unwrap_err();
        assert!(
            err.contains("exited with 3") && err.contains("broken"),
            "{err}"
        );
        let err = run("sleep 5", &e, d.path(), Duration::from_millis(50)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
    }
}
