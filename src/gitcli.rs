//! The one way baton runs the git CLI (clone, fetch, push, signed commits, reverts): never
//! through a shell, never prompting, with git's stderr (credentials masked) in a typed error.
//!
//! Reads go through libgit2; the CLI is used where git's own behaviour is the point: the
//! user's signing configuration, transports and credential helpers, `push --porcelain`.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GitCliError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
}

impl GitCliError {
    /// The command line (without `git`) and what git said, for callers' own error types.
    pub fn into_parts(self, args: &[impl AsRef<OsStr>]) -> (String, String) {
        match self {
            GitCliError::Spawn(e) => (show_args(args), e.to_string()),
            GitCliError::Failed { args, stderr } => (args, stderr),
        }
    }
}

/// How one git invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    /// Trimmed, with the `user:password@` of URLs masked.
    pub stderr: String,
}

/// A git command line builder for one working directory (or none, for `git clone`).
#[derive(Debug, Clone, Default)]
pub struct GitCli {
    dir: Option<PathBuf>,
    isolated: bool,
    /// Variables set for every command.
    env: Vec<(OsString, OsString)>,
    /// Variables set only when the process's environment does not set them.
    env_defaults: Vec<(OsString, OsString)>,
}

impl GitCli {
    /// git in `dir` (`git -C <dir>`).
    pub fn in_dir(dir: &Path) -> Self {
        GitCli {
            dir: Some(dir.to_path_buf()),
            ..Self::default()
        }
    }

    /// git outside any repository (`git clone <url> <dir>`).
    pub fn anywhere() -> Self {
        Self::default()
    }

    /// A clone only baton writes: none of its hooks run (a push keeps the remote's: `-c`
    /// would reach a local remote's receive-pack), commits are not signed by the user's
    /// configuration, gc runs in the foreground, pathspecs are literal, and the process's
    /// `GIT_DIR` / `GIT_WORK_TREE` / `GIT_INDEX_FILE` do not redirect it.
    pub fn isolated(mut self) -> Self {
        self.isolated = true;
        self
    }

    /// Commit as `name <email>` (author and committer), whatever the environment says.
    pub fn identity(mut self, name: &str, email: &str) -> Self {
        for (var, value) in identity_vars(name, email) {
            self.env.push((var.into(), value.into()));
        }
        self
    }

    /// Commit as `name <email>` unless the environment names somebody.
    pub fn default_identity(mut self, name: &str, email: &str) -> Self {
        for (var, value) in identity_vars(name, email) {
            self.env_defaults.push((var.into(), value.into()));
        }
        self
    }

    fn command(&self, args: &[&OsStr]) -> Command {
        let mut c = Command::new("git");
        if let Some(dir) = &self.dir {
            c.arg("-C").arg(dir);
        }
        if self.isolated {
            if args.first() != Some(&OsStr::new("push")) {
                c.args(["-c", "core.hooksPath=/dev/null"]);
            }
            c.args(["-c", "commit.gpgSign=false"])
                .args(["-c", "gc.autoDetach=false"])
                .arg("--literal-pathspecs")
                .env_remove("GIT_DIR")
                .env_remove("GIT_WORK_TREE")
                .env_remove("GIT_INDEX_FILE");
        }
        c.args(args).env("GIT_TERMINAL_PROMPT", "0");
        for (var, value) in &self.env {
            c.env(var, value);
        }
        for (var, value) in &self.env_defaults {
            if std::env::var_os(var).is_none() {
                c.env(var, value);
            }
        }
        c
    }

    /// Run `git <args>`; `input` goes to its stdin (else stdin is empty). A non-zero exit is
    /// an [`Output`] too: the caller decides what it means.
    pub fn output<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: Option<&[u8]>,
    ) -> Result<Output, GitCliError> {
        let argv: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
        let mut c = self.command(&argv);
        c.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(GitCliError::Spawn)?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            // A git that exits early closes the pipe; its status says why.
            let _ = stdin.write_all(bytes);
        }
        let out = child.wait_with_output().map_err(GitCliError::Spawn)?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: mask_credentials(String::from_utf8_lossy(&out.stderr).trim()),
        })
    }

    /// Run `git <args>`, failing on a non-zero exit; returns stdout as git wrote it.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, GitCliError> {
        self.run_input(args, None)
    }

    /// [`GitCli::run`] with `input` on stdin.
    pub fn run_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: Option<&[u8]>,
    ) -> Result<String, GitCliError> {
        let out = self.output(args, input)?;
        if out.success {
            return Ok(out.stdout);
        }
        Err(GitCliError::Failed {
            args: show_args(args),
            stderr: out.stderr,
        })
    }
}

fn identity_vars(name: &str, email: &str) -> [(&'static str, String); 4] {
    [
        ("GIT_AUTHOR_NAME", name.to_owned()),
        ("GIT_AUTHOR_EMAIL", email.to_owned()),
        ("GIT_COMMITTER_NAME", name.to_owned()),
        ("GIT_COMMITTER_EMAIL", email.to_owned()),
    ]
}

/// The arguments as one line, for messages.
fn show_args<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with the `user:password@` of every URL in it masked, so that git's messages can be
/// logged and shown in status.
pub fn mask_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_command_and_what_git_said() {
        let d = tempfile::tempdir().unwrap();
        let err = GitCli::in_dir(d.path())
            .run(&["rev-parse", "HEAD"])
            .unwrap_err();
        match err {
            GitCliError::Failed { args, stderr } => {
                assert_eq!(args, "rev-parse HEAD");
                assert!(stderr.contains("not a git repository"), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn input_goes_to_stdin_and_identity_to_the_commit() {
        let d = tempfile::tempdir().unwrap();
        let git = GitCli::in_dir(d.path())
            .isolated()
            .identity("baton", "baton@localhost");
        git.run(&["init", "-q"]).unwrap();
        let blob = git
            .run_input(&["hash-object", "-w", "--stdin"], Some(b"hello\n"))
            .unwrap();
        assert_eq!(blob.trim(), "ce013625030ba8dba906f756967f9e9ca394464a");
        git.run(&["commit", "-q", "--allow-empty", "-m", "empty"])
            .unwrap();
        let who = git.run(&["log", "-1", "--format=%an <%ae>"]).unwrap();
        assert_eq!(who.trim(), "baton <baton@localhost>");
    }

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(
            mask_credentials("fatal: https://user:tok@h/x.git: denied"),
            "fatal: https://***@h/x.git: denied"
        );
        assert_eq!(
            mask_credentials("ssh://git@h/x and https://h/y"),
            "ssh://***@h/x and https://h/y"
        );
        assert_eq!(mask_credentials("no urls"), "no urls");
    }
}
