//! The environment's health check after a switch: a command (run by [`process`], in its own
//! process group, killed at the timeout and after it exits) or a readiness URL polled until 2xx.

use super::process::{self, suffix, ProcessError};
use crate::http_client::{self, Redirects};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

pub use super::process::{tail_text, TAIL_BYTES, TAIL_CHARS};

/// Default timeout when the policy sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the command is told about the switch.
pub struct HealthEnv<'a> {
    pub env: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    /// A local path where the target put the bytes, else the artifact's URI.
    pub artifact: &'a str,
    pub sha256: &'a str,
}

impl HealthEnv<'_> {
    /// `BATON_ENV`, `BATON_MODEL`, `BATON_VERSION`, `BATON_ARTIFACT`, `BATON_SHA256`: what
    /// every command the daemon runs about a switch is told.
    pub fn vars(&self) -> [(&'static str, &str); 5] {
        [
            ("BATON_ENV", self.env),
            ("BATON_MODEL", self.model),
            ("BATON_VERSION", self.version),
            ("BATON_ARTIFACT", self.artifact),
            ("BATON_SHA256", self.sha256),
        ]
    }
}

/// Why a version is unhealthy. `tail` is the end of the command's stderr (of its stdout when
/// stderr was empty), cut on a character boundary.
#[derive(Debug, Error)]
pub enum HealthError {
    #[error("health command could not start: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("health command exited with {code}{}", suffix(.tail))]
    Exited { code: i32, tail: String },
    #[error("health command was killed by signal {signal}{}", suffix(.tail))]
    Signalled { signal: i32, tail: String },
    #[error("health command timed out after {}{}", humantime::format_duration(*.after), suffix(.tail))]
    TimedOut { after: Duration, tail: String },
    #[error("health command: {0}")]
    Wait(#[source] std::io::Error),
    #[error("readiness URL {url} did not answer 2xx within {}: {last}", humantime::format_duration(*.after))]
    NotReady {
        url: String,
        after: Duration,
        last: String,
    },
}

impl From<ProcessError> for HealthError {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Spawn { source, .. } => HealthError::Spawn(source),
            ProcessError::Exited { code, tail, .. } => HealthError::Exited { code, tail },
            ProcessError::Signalled { signal, tail, .. } => HealthError::Signalled { signal, tail },
            ProcessError::TimedOut { after, tail, .. } => HealthError::TimedOut { after, tail },
            ProcessError::Wait { source, .. } => HealthError::Wait(source),
        }
    }
}

/// The environment's health check, built once from its `health:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `health.command`: exit 0 = healthy.
    Command { command: String, timeout: Duration },
    /// `health.http`: polled until it answers 2xx or the timeout passes.
    Http { url: String, timeout: Duration },
}

/// How often a readiness URL is asked again.
const HTTP_POLL: Duration = Duration::from_millis(500);

impl Probe {
    /// The probe of a `health:` block (validation makes sure exactly one kind is set).
    pub fn from_spec(h: &crate::manifest::policy::HealthCheck) -> Option<Probe> {
        let timeout = h.timeout.map(|t| t.0).unwrap_or(DEFAULT_TIMEOUT);
        match (&h.command, &h.http) {
            (Some(command), _) => Some(Probe::Command {
                command: command.clone(),
                timeout,
            }),
            (None, Some(url)) => Some(Probe::Http {
                url: url.clone(),
                timeout,
            }),
            (None, None) => None,
        }
    }

    /// Judge the switched version; `Err` says why it is unhealthy.
    pub fn check(&self, e: &HealthEnv, cwd: &Path) -> Result<(), HealthError> {
        match self {
            Probe::Command { command, timeout } => run(command, e, cwd, *timeout),
            Probe::Http { url, timeout } => http_ready(&readiness_url(url, e), *timeout),
        }
    }
}

/// `url` with `{model}`, `{version}` and `{environment}` filled in.
pub fn readiness_url(url: &str, e: &HealthEnv) -> String {
    url.replace("{model}", e.model)
        .replace("{version}", e.version)
        .replace("{environment}", e.env)
}

/// Poll `url` until it answers 2xx (ready) or `timeout` passes.
fn http_ready(url: &str, timeout: Duration) -> Result<(), HealthError> {
    let start = std::time::Instant::now();
    let mut last;
    let agent = http_client::agent(Duration::from_secs(10), Redirects::Refuse);
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let wait = left.clamp(Duration::from_millis(100), Duration::from_secs(10));
        match agent.get(url).timeout(wait).call() {
            Ok(r) if (200..300).contains(&r.status()) => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(ureq::Error::Status(code, _)) => last = format!("HTTP {code}"),
            Err(e) => last = e.to_string(),
        }
        if start.elapsed() + HTTP_POLL >= timeout {
            return Err(HealthError::NotReady {
                url: url.to_owned(),
                after: timeout,
                last,
            });
        }
        std::thread::sleep(HTTP_POLL);
    }
}

/// Run `command`; `Err` says why the version is unhealthy.
pub fn run(command: &str, e: &HealthEnv, cwd: &Path, timeout: Duration) -> Result<(), HealthError> {
    let env = e.vars();
    process::run(&process::Job {
        label: "health command",
        command,
        env: &env,
        stdin: None,
        cwd,
        timeout,
    })
    .map(|_| ())
    .map_err(HealthError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(p: &Path) -> HealthEnv<'_> {
        HealthEnv {
            env: "prod",
            model: "m",
            version: "2",
            artifact: p.to_str().unwrap(),
            sha256: "ab",
        }
    }

    /// True once `pid` is gone or a zombie (killed, waiting to be reaped by init).
    fn dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(s) => s
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    fn eventually_dead(pid: &str) -> bool {
        for _ in 0..500 {
            if dead(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn passes_env_and_reports_failures() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        run(
            "test \"$BATON_MODEL@$BATON_VERSION\" = m@2",
            &e,
            d.path(),
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let err = run("echo broken >&2; exit 3", &e, d.path(), DEFAULT_TIMEOUT).unwrap_err();
        assert!(
            matches!(&err, HealthError::Exited { code: 3, tail } if tail == "broken"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "health command exited with 3: broken");
        let err = run("sleep 5", &e, d.path(), Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, HealthError::TimedOut { .. }), "{err:?}");
        assert!(err.to_string().contains("timed out"), "{err}");
        let err = run("echo only stdout; exit 1", &e, d.path(), DEFAULT_TIMEOUT).unwrap_err();
        assert_eq!(err.to_string(), "health command exited with 1: only stdout");
        let err = run("kill -9 $$", &e, d.path(), DEFAULT_TIMEOUT).unwrap_err();
        assert!(
            matches!(err, HealthError::Signalled { signal: 9, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_multibyte_character_at_the_cut_is_not_split() {
        // 300 two-byte characters and one ASCII byte: a cut 200 bytes from the end falls
        // inside a character (where the old byte slicing panicked).
        let text = format!("{}x", "é".repeat(300));
        let bytes = text.as_bytes();
        assert!(!text.is_char_boundary(bytes.len() - TAIL_CHARS));
        let t = tail_text(bytes);
        assert!(t.ends_with("éx") && t.starts_with('…'), "{t}");
        assert_eq!(t.chars().count(), TAIL_CHARS + 1);
        // A byte window that starts inside a character drops the partial one.
        assert_eq!(tail_text(&"aé€b".as_bytes()[2..]), "€b");
        assert_eq!(tail_text(&"€b".as_bytes()[1..]), "b");

        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        let cmd =
            "i=0; while [ $i -lt 300 ]; do printf 'é' >&2; i=$((i+1)); done; printf x >&2; exit 4";
        let err = run(cmd, &e, d.path(), DEFAULT_TIMEOUT).unwrap_err();
        match err {
            HealthError::Exited { code: 4, tail } => {
                assert!(tail.ends_with("éééx"), "{tail}");
                assert_eq!(tail.chars().count(), TAIL_CHARS + 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn more_than_a_pipe_buffer_of_output_is_not_a_timeout() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        // 200 KB on stderr and on stdout: far more than the 64 KiB a pipe holds.
        let noisy = "head -c 200000 /dev/zero | tr '\\0' e >&2; head -c 200000 /dev/zero";
        run(
            &format!("{noisy}; exit 0"),
            &e,
            d.path(),
            Duration::from_secs(60),
        )
        .unwrap();
        let err = run(
            &format!("{noisy}; echo done >&2; exit 5"),
            &e,
            d.path(),
            Duration::from_secs(60),
        )
        .unwrap_err();
        match err {
            HealthError::Exited { code: 5, tail } => {
                assert!(tail.ends_with("eeedone"), "{tail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn children_holding_the_pipes_do_not_wedge_it_and_are_killed() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        let pidfile = d.path().join("bg.pid");
        // The background sleep inherits stdout and stderr and would hold them for 100 s.
        let cmd = format!(
            "sleep 100 & echo $! > {}; echo failing >&2; exit 1",
            pidfile.display()
        );
        let err = run(&cmd, &e, d.path(), Duration::from_secs(60)).unwrap_err();
        assert!(
            matches!(&err, HealthError::Exited { code: 1, tail } if tail == "failing"),
            "{err:?}"
        );
        let bg = std::fs::read_to_string(&pidfile).unwrap();
        assert!(eventually_dead(bg.trim()), "background child {bg} survived");

        // At the timeout the whole group goes, not only `sh`.
        let cmd = format!("sleep 100 & echo $! > {}; sleep 100", pidfile.display());
        let err = run(&cmd, &e, d.path(), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, HealthError::TimedOut { .. }), "{err:?}");
        let bg = std::fs::read_to_string(&pidfile).unwrap();
        assert!(eventually_dead(bg.trim()), "background child {bg} survived");
    }
}
