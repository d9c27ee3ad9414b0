//! The environment's health command, run after a switch with `sh -c` in its own process group:
//! output drained while it runs, the whole group killed at the timeout and after it exits.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// Default timeout when the policy sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of each output stream kept while draining it (the rest is read and dropped).
pub const TAIL_BYTES: usize = 4096;

/// Characters of output quoted in a failure's reason.
pub const TAIL_CHARS: usize = 200;

/// How long to wait for the output pipes to close once the process group is gone. A process
/// that left the group (`setsid`) may hold them open; its reader thread is then left behind.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// What the command is told about the switch.
pub struct HealthEnv<'a> {
    pub env: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    /// A local path where the target put the bytes, else the artifact's URI.
    pub artifact: &'a str,
    pub sha256: &'a str,
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
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let agent = ureq::AgentBuilder::new()
            .timeout(left.clamp(Duration::from_millis(100), Duration::from_secs(10)))
            .redirects(0)
            .build();
        match agent.get(url).call() {
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

fn suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// The last [`TAIL_BYTES`] bytes written to one stream, shared with its reader thread.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
        if self.0.len() > 2 * TAIL_BYTES {
            let cut = self.0.len() - TAIL_BYTES;
            self.0.drain(..cut);
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.0[self.0.len().saturating_sub(TAIL_BYTES)..]
    }
}

/// The end of `bytes` as text: at most [`TAIL_CHARS`] characters, trimmed, never split inside
/// a character (a partial character at the front of the kept bytes is dropped).
pub fn tail_text(bytes: &[u8]) -> String {
    // Skip UTF-8 continuation bytes at the start: the byte window may begin mid-character.
    let start = bytes
        .iter()
        .take(3)
        .take_while(|b| (**b & 0xC0) == 0x80)
        .count();
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    let n = text.chars().count();
    if n <= TAIL_CHARS {
        return text.to_owned();
    }
    let (cut, _) = text
        .char_indices()
        .nth(n - TAIL_CHARS)
        .expect("n > TAIL_CHARS characters");
    format!("…{}", text[cut..].trim_start())
}

/// Read `r` to its end, keeping the tail; says `()` on `done` when the pipe closed.
fn drain(mut r: impl Read + Send + 'static, done: mpsc::Sender<()>) -> Arc<Mutex<Tail>> {
    let tail = Arc::new(Mutex::new(Tail::default()));
    let t = tail.clone();
    // Without a thread the pipe is closed at once: the command then gets EPIPE or SIGPIPE
    // when it writes, which it reports as a failure.
    let _ = std::thread::Builder::new()
        .name("health-output".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => t.lock().unwrap_or_else(|p| p.into_inner()).push(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        });
    tail
}

/// Kill every process of the group `pgid` (the command and whatever it started).
fn kill_group(pgid: i32) {
    // SAFETY: killpg only sends a signal; a group that no longer exists gives ESRCH.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Wait, without reaping, until the process `pid` has exited: while it is a zombie its id
/// (and so its process group id) cannot be reused, so killing the group after this is safe.
fn wait_exited(pid: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Run `command`; `Err` says why the version is unhealthy.
pub fn run(command: &str, e: &HealthEnv, cwd: &Path, timeout: Duration) -> Result<(), HealthError> {
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(HealthError::Spawn)?;
    let pgid = child.id() as i32;
    let (done_tx, done_rx) = mpsc::channel();
    let out = child.stdout.take().map(|s| drain(s, done_tx.clone()));
    let err = child.stderr.take().map(|s| drain(s, done_tx.clone()));
    drop(done_tx);

    let (exit_tx, exit_rx) = mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("health-wait".into())
        .spawn(move || {
            let _ = exit_tx.send(wait_exited(pgid));
        });
    let timed_out = match waiter {
        Ok(_) => match exit_rx.recv_timeout(timeout) {
            Ok(Ok(())) => false,
            Ok(Err(err)) => {
                kill_group(pgid);
                let _ = child.wait();
                return Err(HealthError::Wait(err));
            }
            Err(_) => true,
        },
        Err(err) => {
            kill_group(pgid);
            let _ = child.wait();
            return Err(HealthError::Wait(err));
        }
    };
    // The command exited (or ran out of time): nothing it started outlives it.
    kill_group(pgid);
    let status = child.wait().map_err(HealthError::Wait)?;
    for _ in out.iter().chain(err.iter()) {
        if done_rx.recv_timeout(DRAIN_GRACE).is_err() {
            break;
        }
    }
    let tail = [&err, &out]
        .into_iter()
        .flatten()
        .map(|t| tail_text(t.lock().unwrap_or_else(|p| p.into_inner()).bytes()))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    if timed_out {
        return Err(HealthError::TimedOut {
            after: timeout,
            tail,
        });
    }
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(HealthError::Exited { code, tail }),
        (None, Some(signal)) => Err(HealthError::Signalled { signal, tail }),
        (None, None) => Err(HealthError::Signalled { signal: 0, tail }),
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
