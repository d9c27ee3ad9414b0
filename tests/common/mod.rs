//! Shared helpers for integration tests: real git repositories in temp dirs, SSH keys made
//! with `ssh-keygen`, and the `baton` binary run as a subprocess.
#![allow(dead_code)]

pub mod github;
pub mod moto;
pub mod receiver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A real git repository in a temporary directory, on branch `main`.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// An empty repository with a committer identity configured.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = TestRepo { dir };
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["config", "user.name", "Test Author"]);
        r.git(&["config", "user.email", "author@acme.com"]);
        r.git(&["config", "commit.gpgsign", "false"]);
        r
    }

    /// A repository whose root holds a copy of `registry-example/`, committed.
    pub fn with_example() -> Self {
        let r = Self::new();
        copy_dir(&example_dir(), r.path());
        r.commit_all("register example registry");
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run git in the repository; panics on failure. Returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env(
                "GIT_AUTHOR_DATE",
                std::env::var("GIT_AUTHOR_DATE").unwrap_or_default(),
            )
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Run git with extra environment (e.g. GIT_AUTHOR_DATE / GIT_COMMITTER_DATE).
    pub fn git_env(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap();
    }

    /// Replace `from` with `to` in a file (panics when `from` is absent).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let s = self.read(rel);
        assert!(s.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &s.replacen(from, to, 1));
    }

    /// Stage a file at a raw (possibly not UTF-8) path, bypassing the working tree: commit it
    /// with `git commit` (not [`TestRepo::commit_all`], whose `add -A` would drop it again).
    pub fn stage_raw(&self, path: &[u8], content: &[u8]) {
        let blob = self.git_stdin(&["hash-object", "-w", "--stdin"], content);
        let mut line = format!("100644 {blob}\t").into_bytes();
        line.extend_from_slice(path);
        line.push(b'\n');
        self.git_stdin(&["update-index", "--add", "--index-info"], &line);
    }

    /// Run git with `input` on stdin; panics on failure. Returns stdout.
    pub fn git_stdin(&self, args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut child = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run git");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "git {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `git add -A && git commit`; returns the new commit id.
    pub fn commit_all(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Run the baton binary with `--repo <this repo>` prepended to `args`.
    pub fn baton(&self, args: &[&str]) -> Output {
        let mut full = vec!["--repo", self.path().to_str().unwrap()];
        full.extend_from_slice(args);
        baton(&full, self.path())
    }
}

/// Run the baton binary in `cwd`.
pub fn baton(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GITHUB_TOKEN")
        .output()
        .expect("run baton")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code of a finished process.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("registry-example")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// An SSH key pair made with `ssh-keygen` (ed25519, no passphrase).
pub struct SshKey {
    pub private: PathBuf,
    pub principal: String,
}

impl SshKey {
    pub fn generate(dir: &Path, name: &str, principal: &str) -> Self {
        let private = dir.join(name);
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f"])
            .arg(&private)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        SshKey {
            private,
            principal: principal.to_owned(),
        }
    }

    /// The allowed-signers line for this key: `<principal> namespaces="git" <type> <base64>`.
    pub fn allowed_signers_line(&self) -> String {
        let pubkey = std::fs::read_to_string(self.private.with_extension("pub")).unwrap();
        let mut parts = pubkey.split_whitespace();
        let (t, k) = (parts.next().unwrap(), parts.next().unwrap());
        format!("{} namespaces=\"git\" {} {}", self.principal, t, k)
    }
}
