//! Commands the daemon runs (health, reload, a `command` target's apply): `sh -c` in its own
//! process group, stdin fed, output drained while it runs, the group killed at the timeout and after exit.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// Bytes of each output stream kept while draining it (the rest is read and dropped).
pub const TAIL_BYTES: usize = 4096;

/// Characters of output quoted in a failure's reason.
pub const TAIL_CHARS: usize = 200;

/// How long to wait for the output pipes to close once the process group is gone. A process
/// that left the group (`setsid`) may hold them open; its reader thread is then left behind.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// One command to run.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// What it is, for error messages: `health command`, `apply command`...
    pub label: &'static str,
    /// Run with `sh -c`.
    pub command: &'a str,
    /// Set on top of the daemon's own environment.
    pub env: &'a [(&'a str, &'a str)],
    /// Written to its stdin (then closed); `None`: stdin is `/dev/null`.
    pub stdin: Option<&'a [u8]>,
    pub cwd: &'a Path,
    pub timeout: Duration,
}

/// What a command printed: the end of each stream as text ([`tail_text`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The tail a message quotes: stderr's, else stdout's.
    pub fn tail(&self) -> &str {
        if self.stderr.is_empty() {
            &self.stdout
        } else {
            &self.stderr
        }
    }
}

/// Why a command failed. `tail` is the end of its stderr (of its stdout when stderr was
/// empty), cut on a character boundary.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("{label} could not start: {source}")]
    Spawn {
        label: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{label} exited with {code}{}", suffix(.tail))]
    Exited {
        label: &'static str,
        code: i32,
        tail: String,
    },
    #[error("{label} was killed by signal {signal}{}", suffix(.tail))]
    Signalled {
        label: &'static str,
        signal: i32,
        tail: String,
    },
    #[error("{label} timed out after {}{}", humantime::format_duration(*.after), suffix(.tail))]
    TimedOut {
        label: &'static str,
        after: Duration,
        tail: String,
    },
    #[error("{label}: {source}")]
    Wait {
        label: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn suffix(tail: &str) -> String {
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
        .name("command-output".into())
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

/// Write `bytes` to the command's stdin from a thread and close it. A command that does not
/// read them is no failure: the write ends with EPIPE once the group is gone.
fn feed(mut w: impl Write + Send + 'static, bytes: Vec<u8>) {
    let _ = std::thread::Builder::new()
        .name("command-input".into())
        .spawn(move || {
            let _ = w.write_all(&bytes);
        });
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
        // SAFETY: waitid writes only into `info`, which outlives the call; WNOWAIT reaps nothing.
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

/// Run `job` to its end: `Ok` with its output when it exited 0, else why not. Nothing it
/// started outlives it: its process group is killed when it exits or times out.
pub fn run(job: &Job<'_>) -> Result<Output, ProcessError> {
    let label = job.label;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(job.command)
        .current_dir(job.cwd)
        // The daemon's own secrets are not a script's business (docs/targets.md, command).
        .env_remove("BATON_API_TOKEN")
        .env_remove("BATON_WEBHOOK_SECRET")
        .envs(job.env.iter().copied())
        .stdin(if job.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|source| ProcessError::Spawn { label, source })?;
    let pgid = child.id() as i32;
    if let (Some(w), Some(bytes)) = (child.stdin.take(), job.stdin) {
        feed(w, bytes.to_vec());
    }
    let (done_tx, done_rx) = mpsc::channel();
    let out = child.stdout.take().map(|s| drain(s, done_tx.clone()));
    let err = child.stderr.take().map(|s| drain(s, done_tx.clone()));
    drop(done_tx);

    let fail = |child: &mut std::process::Child, source| {
        kill_group(pgid);
        let _ = child.wait();
        ProcessError::Wait { label, source }
    };
    let (exit_tx, exit_rx) = mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("command-wait".into())
        .spawn(move || {
            let _ = exit_tx.send(wait_exited(pgid));
        });
    let timed_out = match waiter {
        Ok(_) => match exit_rx.recv_timeout(job.timeout) {
            Ok(Ok(())) => false,
            Ok(Err(e)) => return Err(fail(&mut child, e)),
            Err(_) => true,
        },
        Err(e) => return Err(fail(&mut child, e)),
    };
    // The command exited (or ran out of time): nothing it started outlives it.
    kill_group(pgid);
    let status = child
        .wait()
        .map_err(|source| ProcessError::Wait { label, source })?;
    for _ in out.iter().chain(err.iter()) {
        if done_rx.recv_timeout(DRAIN_GRACE).is_err() {
            break;
        }
    }
    let text = |t: &Option<Arc<Mutex<Tail>>>| {
        t.as_ref()
            .map(|t| tail_text(t.lock().unwrap_or_else(|p| p.into_inner()).bytes()))
            .unwrap_or_default()
    };
    let output = Output {
        stdout: text(&out),
        stderr: text(&err),
    };
    let tail = output.tail().to_owned();
    if timed_out {
        return Err(ProcessError::TimedOut {
            label,
            after: job.timeout,
            tail,
        });
    }
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(output),
        (Some(code), _) => Err(ProcessError::Exited { label, code, tail }),
        (None, Some(signal)) => Err(ProcessError::Signalled {
            label,
            signal,
            tail,
        }),
        (None, None) => Err(ProcessError::Signalled {
            label,
            signal: 0,
            tail,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(command: &'a str, cwd: &'a Path) -> Job<'a> {
        Job {
            label: "apply command",
            command,
            env: &[],
            stdin: None,
            cwd,
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn stdin_env_and_output_reach_the_caller() {
        let d = tempfile::tempdir().unwrap();
        let input = "x".repeat(300_000);
        let out = run(&Job {
            env: &[("BATON_ACTION", "deploy")],
            stdin: Some(input.as_bytes()),
            ..job(
                "n=$(wc -c); echo \"$BATON_ACTION $n\"; echo note >&2; pwd",
                d.path(),
            )
        })
        .unwrap();
        let cwd = d.path().canonicalize().unwrap();
        assert_eq!(out.stdout, format!("deploy 300000\n{}", cwd.display()));
        assert_eq!(out.stderr, "note");
        assert_eq!(out.tail(), "note");
    }

    #[test]
    fn a_command_that_ignores_its_stdin_is_judged_by_its_exit() {
        let d = tempfile::tempdir().unwrap();
        // More than a pipe holds, never read: the writer must not wedge the run.
        let input = vec![b'{'; 1 << 20];
        let j = Job {
            stdin: Some(&input),
            ..job("exit 0", d.path())
        };
        run(&j).unwrap();
        let err = run(&Job {
            command: "echo bad; exit 7",
            ..j
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "apply command exited with 7: bad");
        let err = run(&Job {
            command: "sleep 30",
            timeout: Duration::from_millis(100),
            ..j
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                ProcessError::TimedOut {
                    label: "apply command",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
