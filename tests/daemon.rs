//! `baton serve` end to end: a real daemon process on a loopback port, watching a real git
//! repository (signed approvals made with ssh-keygen), deploying to a local target.

use crate::common;

use common::{code, stderr, stdout, SshKey, TestRepo};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- fixture

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

const POLICY: &str = r#"version: 1
stages:
  - name: development
  - name: staging
  - name: production
    gates:
      - approvals: {min: 1, from: [group:leads]}
  - name: archived
    terminal: true
rollback:
  approvals: 0
groups:
  leads: [alice@acme.com]
  admins: [carol@acme.com]
policy_owners: [group:admins]
signers: .baton/allowed_signers
environments:
  staging:
    stage: staging
    target: {kind: local, path: staging}
  production:
    stage: production
    target: {kind: local, path: production}
    health: {command: "! grep -q unhealthy \"$BATON_ARTIFACT\"", timeout: 10s}
"#;

/// A registry at the repository root with models `alpha` and `beta`, and alice's key.
struct Fixture {
    repo: TestRepo,
    _keys: tempfile::TempDir,
    alice: SshKey,
    state: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        Self::with_policy(POLICY)
    }

    fn with_policy(policy: &str) -> Self {
        let repo = TestRepo::new();
        let keys = tempfile::tempdir().unwrap();
        let alice = SshKey::generate(keys.path(), "alice", "alice@acme.com");
        repo.write("baton.yaml", policy);
        repo.write(
            ".baton/allowed_signers",
            &format!("{}\n", alice.allowed_signers_line()),
        );
        for m in ["alpha", "beta"] {
            repo.write(
                &format!("models/{m}/model.yaml"),
                &format!("name: {m}\ndescription: test model {m}\nowners: [alice@acme.com]\n"),
            );
        }
        let f = Fixture {
            state: repo.path().join(".git/baton"),
            repo,
            _keys: keys,
            alice,
        };
        f.version("alpha", "1", "production", b"alpha one");
        f.version("alpha", "2", "staging", b"alpha two");
        f.version("alpha", "3", "development", b"alpha three");
        f.version("beta", "1", "production", b"beta one");
        f.version("beta", "2", "staging", b"beta two");
        f.repo.commit_all("registry with alpha and beta");
        f
    }

    /// Write a version manifest and its artifact (the manifest's sha256 is of `content`).
    fn version(&self, model: &str, v: &str, stage: &str, content: &[u8]) {
        self.version_with_sha(model, v, stage, content, &sha(content));
    }

    fn version_with_sha(&self, model: &str, v: &str, stage: &str, content: &[u8], digest: &str) {
        let uri = format!("artifacts/{model}/{v}.bin");
        let p = self.repo.path().join(&uri);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self.repo.write(
            &format!("models/{model}/versions/{v}.yaml"),
            &format!(
                "model: {model}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {digest}\ncreated: 2026-11-01T10:00:00Z\n"
            ),
        );
    }

    /// Write a version manifest of a directory artifact `artifacts/<model>/<v>/` holding
    /// `files`; returns its digest (of the listing).
    fn version_dir(&self, model: &str, v: &str, stage: &str, files: &[(&str, &[u8])]) -> String {
        let mut listing = Vec::new();
        for (path, bytes) in files {
            let p = self
                .repo
                .path()
                .join(format!("artifacts/{model}/{v}/{path}"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
            listing.push(baton::manifest::version::ArtifactFile {
                path: (*path).to_owned(),
                sha256: sha(bytes),
                size: bytes.len() as u64,
            });
        }
        let digest = baton::manifest::version::listing_digest(&listing);
        let files_yaml: String = listing
            .iter()
            .map(|f| {
                format!(
                    "    - {{path: {}, sha256: {}, size: {}}}\n",
                    f.path, f.sha256, f.size
                )
            })
            .collect();
        self.repo.write(
            &format!("models/{model}/versions/{v}.yaml"),
            &format!(
                "model: {model}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: artifacts/{model}/{v}/\n  sha256: {digest}\n  format: mlflow\n  files:\n{files_yaml}created: 2026-11-01T10:00:00Z\n"
            ),
        );
        digest
    }

    fn stage(&self, model: &str, v: &str, stage: &str) {
        let rel = format!("models/{model}/versions/{v}.yaml");
        let s = self.repo.read(&rel);
        let line = s
            .lines()
            .find(|l| l.starts_with("stage: "))
            .unwrap()
            .to_owned();
        self.repo.edit(&rel, &line, &format!("stage: {stage}"));
    }

    /// A signed, empty approval commit by alice (docs/approvals.md).
    fn approve(&self, trailer: &str) {
        let key = self.alice.private.to_str().unwrap().to_owned();
        self.repo.git(&[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={key}"),
            "commit",
            "-q",
            "-S",
            "--allow-empty",
            "-m",
            "approve",
            "-m",
            &format!("Baton-Approve: {trailer}"),
        ]);
    }

    fn deploy_dir(&self, env: &str, model: &str) -> PathBuf {
        self.state.join("deploy").join(env).join(model)
    }

    /// The version `deployment.json` records, if any.
    fn deployed(&self, env: &str, model: &str) -> Option<String> {
        let b = std::fs::read(self.deploy_dir(env, model).join("deployment.json")).ok()?;
        let v: Value = serde_json::from_slice(&b).ok()?;
        Some(v["version"].as_str()?.to_owned())
    }

    /// The digest `current` points at (`releases/<sha256>`), after checking the build in
    /// that folder hashes to its name: its one file, or the listing of its files.
    fn current_verified(&self, env: &str, model: &str) -> Option<String> {
        let dir = self.deploy_dir(env, model);
        let link = std::fs::read_link(dir.join("current")).ok()?;
        assert_eq!(link.parent(), Some(Path::new("releases")), "{link:?}");
        let name = link.file_name()?.to_string_lossy().into_owned();
        let files = build_files(&dir.join(&link));
        let digest = match files.as_slice() {
            [f] if !f.path.contains('/') => f.sha256.clone(),
            _ => baton::manifest::version::listing_digest(&files),
        };
        assert_eq!(
            digest, name,
            "{env}/{model}: `current` points at a corrupt build"
        );
        Some(name)
    }

    fn once(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["serve", "--once"];
        args.extend_from_slice(extra);
        self.repo.baton(&args)
    }

    fn start(&self, extra: &[&str]) -> Daemon {
        Daemon::start(self.repo.path(), &self.state, extra, &[])
    }

    /// Status JSON as `baton status --state-dir` prints it.
    fn status(&self) -> Value {
        let st = self.repo.baton(&[
            "--format",
            "json",
            "status",
            "--state-dir",
            self.state.to_str().unwrap(),
        ]);
        assert_eq!(code(&st), 0, "{}", stderr(&st));
        serde_json::from_str(&stdout(&st)).unwrap()
    }
}

/// The files of a stored build folder, with their digests (recursively, no links).
fn build_files(dir: &Path) -> Vec<baton::manifest::version::ArtifactFile> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<baton::manifest::version::ArtifactFile>) {
        for e in std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .map(Result::unwrap)
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = e.file_type().unwrap();
            assert!(!kind.is_symlink(), "a link in a build: {rel}");
            if kind.is_dir() {
                walk(&e.path(), &rel, out);
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.push(baton::manifest::version::ArtifactFile {
                    path: rel,
                    sha256: sha(&bytes),
                    size: bytes.len() as u64,
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out
}

// ---------------------------------------------------------------- daemon process

struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Daemon {
    fn start(repo: &Path, state: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut args = vec![
            "--repo",
            repo.to_str().unwrap(),
            "serve",
            "--interval",
            "200ms",
        ];
        args.extend_from_slice(&["--state-dir", state.to_str().unwrap()]);
        args.extend_from_slice(extra);
        Daemon::spawn(&args, env)
    }

    /// `baton ARGS --listen 127.0.0.1:0`, waiting for its `listening on` line and readiness.
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(args, env, "127.0.0.1:0", None)
    }

    /// [`Daemon::spawn`] on `listen`, optionally allowed only `nofile` open files.
    fn spawn_with(
        args: &[&str],
        env: &[(&str, &str)],
        listen: &str,
        nofile: Option<u64>,
    ) -> Daemon {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("daemon.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(args)
            .args(["--listen", listen])
            .env_remove("BATON_WEBHOOK_SECRET")
            .env_remove("BATON_API_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("start baton serve");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "daemon did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        // A wildcard listen is reached over loopback.
        let addr = addr
            .strip_prefix("0.0.0.0:")
            .map(|port| format!("127.0.0.1:{port}"))
            .unwrap_or(addr);
        let d = Daemon {
            child,
            addr,
            log,
            _logdir: logdir,
        };
        d.eventually("ready", || d.get("/readyz").0 == 200);
        d
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// (status, body) of a GET.
    fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let mut req = ureq::post(&self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_string(body) {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// (status, body) of a GET with request headers.
    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = ureq::get(&self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.get("/api/v1/status").1).unwrap()
    }

    /// The value of an unlabelled series on `/metrics`.
    fn metric(&self, name: &str) -> f64 {
        let (code, text) = self.get("/metrics");
        assert_eq!(code, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll `cond` until it holds; a deadline only to fail a broken build, not a timing claim.
    fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "timed out waiting for {what}\n--- daemon log ---\n{}",
            self.log()
        );
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn model_view<'a>(status: &'a Value, env: &str, model: &str) -> &'a Value {
    status["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == env)
        .and_then(|e| {
            e["models"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["model"] == model)
        })
        .unwrap_or(&Value::Null)
}

// ---------------------------------------------------------------- tests

#[test]
fn initial_deploy_once_records_state_and_status_shows_it() {
    let f = Fixture::new();
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!(
        "deploying to {}",
        f.state.join("deploy").display()
    )));

    for (env, model, v, content) in [
        ("production", "alpha", "1", &b"alpha one"[..]),
        ("production", "beta", "1", b"beta one"),
        ("staging", "alpha", "2", b"alpha two"),
        ("staging", "beta", "2", b"beta two"),
    ] {
        assert_eq!(f.deployed(env, model).as_deref(), Some(v), "{env}/{model}");
        assert_eq!(f.current_verified(env, model), Some(sha(content)));
        let rec: Value = serde_json::from_slice(
            &std::fs::read(f.deploy_dir(env, model).join("deployment.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(rec["model"], model);
        assert_eq!(rec["sha256"], sha(content));
        assert_eq!(rec["commit"], f.repo.head());
        assert!(rec["time"].is_string());
        assert!(f.deploy_dir(env, model).join("routing.json").exists());
    }
    // Development versions are not deployed anywhere.
    assert!(!f.deploy_dir("development", "alpha").exists());

    let state: Value =
        serde_json::from_slice(&std::fs::read(f.state.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["head"], f.repo.head());
    let events = std::fs::read_to_string(f.state.join("events.jsonl")).unwrap();
    assert!(events.lines().any(|l| l.contains("\"kind\":\"trusted\"")));
    assert_eq!(
        events
            .lines()
            .filter(|l| l.contains("\"kind\":\"deployed\""))
            .count(),
        4
    );

    let st = f
        .repo
        .baton(&["status", "--state-dir", f.state.to_str().unwrap()]);
    assert_eq!(code(&st), 0, "{}", stderr(&st));
    let text = stdout(&st);
    assert!(
        text.contains("DEPLOYED") && text.contains("synced"),
        "{text}"
    );
    let st = f.repo.baton(&[
        "--format",
        "json",
        "status",
        "--state-dir",
        f.state.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&stdout(&st)).unwrap();
    let a = model_view(&v, "production", "alpha");
    assert_eq!(a["sync"], "synced");
    assert_eq!(a["deployed"][0]["version"], "1");
    assert_eq!(a["desired"][0]["version"], "1");

    // A second pass changes nothing.
    let out = f.once(&[]);
    assert_eq!(code(&out), 0);
    let events = std::fs::read_to_string(f.state.join("events.jsonl")).unwrap();
    assert_eq!(
        events
            .lines()
            .filter(|l| l.contains("\"kind\":\"deployed\""))
            .count(),
        4
    );
}

#[test]
fn tampered_artifact_is_refused_while_other_models_deploy() {
    let f = Fixture::new();
    // alpha@2's manifest names a digest its artifact does not have.
    f.version_with_sha(
        "alpha",
        "2",
        "staging",
        b"alpha two, tampered",
        &sha(b"alpha two"),
    );
    f.repo.commit_all("tamper with alpha 2");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("staging", "alpha"), None);
    assert_eq!(f.current_verified("staging", "alpha"), None);
    assert_eq!(f.deployed("staging", "beta").as_deref(), Some("2"));
    let st = f.repo.baton(&[
        "--format",
        "json",
        "status",
        "--state-dir",
        f.state.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&stdout(&st)).unwrap();
    let a = model_view(&v, "staging", "alpha");
    assert_eq!(a["sync"], "out-of-sync");
    let reasons = a["reasons"].to_string();
    assert!(
        reasons.contains(&format!(
            "refused: sha256 mismatch: expected {}",
            sha(b"alpha two")
        )),
        "{a}"
    );
    // What the tampered bytes hash to is never published.
    let leaked = sha(b"alpha two, tampered");
    assert!(!reasons.contains(&leaked), "{a}");
    let events = std::fs::read_to_string(f.state.join("events.jsonl")).unwrap();
    assert!(!events.contains(&leaked));
    // Nothing half-written is left in the store.
    let store = f.deploy_dir("staging", "alpha").join("releases");
    assert_eq!(std::fs::read_dir(&store).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn drift_is_repaired_by_the_resync() {
    let f = Fixture::new();
    let d = f.start(&[]);
    let good = sha(b"alpha one");
    d.eventually("initial deploy", || {
        f.current_verified("production", "alpha").as_deref() == Some(good.as_str())
    });
    let dir = f.deploy_dir("production", "alpha");
    let repaired = || -> Vec<Value> {
        serde_json::from_str(&d.get("/api/v1/events?kind=repaired&model=alpha").1).unwrap()
    };
    // Each drift is repaired (one `repaired` event each) before the next is made.
    let settled = |n: usize, what: &str| {
        d.eventually(what, || {
            repaired().len() == n
                && f.current_verified("production", "alpha").as_deref() == Some(good.as_str())
                && f.deployed("production", "alpha").as_deref() == Some("1")
        })
    };

    // A deleted `current`.
    std::fs::remove_file(dir.join("current")).unwrap();
    settled(1, "current restored");

    // A re-pointed `current` (to beta's build copied in).
    let other = dir.join("releases").join(sha(b"beta one"));
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("1.bin"), b"beta one").unwrap();
    std::os::unix::fs::symlink(
        Path::new("releases").join(sha(b"beta one")),
        dir.join("current.new"),
    )
    .unwrap();
    std::fs::rename(dir.join("current.new"), dir.join("current")).unwrap();
    settled(2, "current re-pointed back");

    // A modified artifact.
    let art = dir.join("releases").join(&good).join("1.bin");
    let mut perm = std::fs::metadata(&art).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&art, perm).unwrap();
    std::fs::write(&art, b"alpha one, but evil").unwrap();
    settled(3, "artifact restored");
    assert_eq!(std::fs::read(&art).unwrap(), b"alpha one");

    // A deleted deployment.json.
    std::fs::remove_file(dir.join("deployment.json")).unwrap();
    settled(4, "record restored");
    assert!(repaired()[3]["message"]
        .as_str()
        .unwrap()
        .contains("deployment.json is missing"));
    let s = d.status();
    assert_eq!(model_view(&s, "production", "alpha")["sync"], "synced");
}

#[test]
fn http_api_metrics_and_webhook_signatures() {
    let f = Fixture::new();
    let secret = "s3cret";
    let d = Daemon::start(
        f.repo.path(),
        &f.state,
        &[],
        &[("BATON_WEBHOOK_SECRET", secret)],
    );
    assert_eq!(d.get("/healthz").0, 200);
    assert_eq!(d.get("/readyz").0, 200);
    let s = d.status();
    assert_eq!(s["ready"], true);
    assert_eq!(s["head"], f.repo.head());
    assert_eq!(
        model_view(&s, "production", "beta")["deployed"][0]["version"],
        "1"
    );

    let (code_, metrics) = d.get("/metrics");
    assert_eq!(code_, 200);
    for needle in [
        "baton_reconcile_duration_seconds_bucket{le=\"+Inf\"}",
        "baton_deployments_total 4",
        "baton_failures_total 0",
        "baton_blocked_models 0",
        "baton_commit_to_deployed_seconds_count",
        "baton_model_info{env=\"production\",model=\"alpha\",version=\"1\",sync=\"synced\",health=\"healthy\"} 1",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    let events: Vec<Value> = serde_json::from_str(&d.get("/api/v1/events?limit=3").1).unwrap();
    assert_eq!(events.len(), 3);
    // A bad query string is a sentence naming the parameter, not axum's raw text.
    let (status, body) = d.get("/api/v1/events?limit=abc");
    assert_eq!(status, 400, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    let msg = err["error"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("GET /api/v1/events: bad query string (limit: "),
        "{msg}"
    );
    assert!(
        msg.ends_with("it takes limit (a whole number), model, environment and kind"),
        "{msg}"
    );
    assert!(!msg.contains("Failed to deserialize"), "{msg}");

    let body = r#"{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}"#;
    let good = baton::daemon::webhook::sign(secret.as_bytes(), body.as_bytes());
    let bad = baton::daemon::webhook::sign(b"wrong", body.as_bytes());
    assert_eq!(
        d.post("/hooks/git", &[("X-Hub-Signature-256", &bad)], body)
            .0,
        401
    );
    assert_eq!(d.post("/hooks/git", &[], body).0, 401);
    assert_eq!(
        d.post("/hooks/git", &[("X-Hub-Signature-256", &good)], body)
            .0,
        202
    );
    assert_eq!(
        d.post(
            "/hooks/git",
            &[("X-Hub-Signature-256", &good), ("X-GitHub-Event", "ping")],
            body
        )
        .0,
        200
    );
}

#[test]
fn second_daemon_on_the_same_state_dir_refuses_and_sigterm_exits_0() {
    let f = Fixture::new();
    let mut d = f.start(&[]);
    let out = f.once(&["--state-dir", f.state.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another baton serve is running"),
        "{}",
        stderr(&out)
    );
    d.signal(libc::SIGTERM);
    let st = d.wait();
    assert_eq!(st.code(), Some(0), "{}", d.log());
    // The lock went with the process.
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn json_logs() {
    let f = Fixture::new();
    let d = f.start(&["--log-format", "json"]);
    d.eventually("a deployed event in the log", || {
        d.log().contains("\"kind\":\"deployed\"")
    });
    for line in d.log().lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
    }
}

#[test]
fn text_logs_in_a_file_carry_no_escape_codes_and_say_what_is_off() {
    let f = Fixture::new();
    // Even with a terminal-loving TERM: stderr is a file, so no colour.
    let d = Daemon::start(
        f.repo.path(),
        &f.state,
        &[],
        &[("TERM", "xterm-256color"), ("CLICOLOR_FORCE", "1")],
    );
    d.eventually("a deployed event in the log", || {
        d.log().contains("deployed")
    });
    let log = d.log();
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains(" INFO ")
            && l.contains("push webhook off: BATON_WEBHOOK_SECRET is not set")),
        "{log}"
    );
}

#[test]
fn json_logs_of_a_blocked_commit_carry_its_fields_at_warn() {
    let f = Fixture::new();
    let d = f.start(&["--log-format", "json"]);
    d.eventually("initial deploy", || {
        f.deployed("production", "beta").as_deref() == Some("1")
    });
    f.stage("beta", "2", "production");
    f.stage("beta", "1", "archived");
    let commit = f
        .repo
        .commit_all("push beta 2 to production without review");
    let blocked = || {
        d.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["kind"] == "blocked" && v["model"] == "beta")
    };
    d.eventually("a blocked line for beta", || blocked().is_some());
    let line = blocked().unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["commit"], commit.as_str(), "{line}");
    assert!(
        line["message"].as_str().unwrap().contains("blocked"),
        "{line}"
    );
    // A hold is branch-wide; a deploy names its environment and version too.
    let deployed = d
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "deployed" && v["model"] == "beta")
        .expect("a deployed line for beta");
    assert_eq!(deployed["level"], "INFO", "{deployed}");
    assert!(deployed["environment"].is_string(), "{deployed}");
    assert_eq!(deployed["version"], "1", "{deployed}");
    assert!(deployed["commit"].is_string(), "{deployed}");
    assert!(!d.log().contains('\u{1b}'));
}

// ------------------------------------------------- re-checking what landed (gates engine)

#[test]
fn approved_merge_deploys_unapproved_push_blocks_and_reverts_roll_back() {
    let f = Fixture::new();
    let d = f.start(&[]);
    d.eventually("initial deploy", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });

    // An approved merge deploys: alpha 2 -> production on a branch, approved by alice.
    f.repo.git(&["checkout", "-q", "-b", "promote-alpha"]);
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2 to production");
    f.approve("alpha@2 -> production");
    f.repo.git(&["checkout", "-q", "main"]);
    f.repo.git(&[
        "merge",
        "-q",
        "--no-ff",
        "promote-alpha",
        "-m",
        "Merge promote-alpha",
    ]);
    let merge = f.repo.head();
    d.eventually("alpha 2 in production", || {
        f.deployed("production", "alpha").as_deref() == Some("2")
    });
    // Staging keeps serving what was promoted out of it (docs/registry-format.md).
    d.eventually("staging keeps alpha 2", || {
        f.deployed("staging", "alpha").as_deref() == Some("2")
    });

    // A direct push without approvals: beta is blocked, alpha 3 (to staging) still deploys.
    f.stage("beta", "2", "production");
    f.stage("beta", "1", "archived");
    f.stage("alpha", "3", "staging");
    f.repo
        .commit_all("push beta 2 to production without review");
    d.eventually("alpha 3 in staging", || {
        f.deployed("staging", "alpha").as_deref() == Some("3")
    });
    d.eventually("beta blocked", || {
        model_view(&d.status(), "production", "beta")["sync"] == "blocked"
    });
    assert_eq!(f.deployed("production", "beta").as_deref(), Some("1"));
    let s = d.status();
    let reasons = model_view(&s, "production", "beta")["reasons"].to_string();
    assert!(reasons.contains("approvals"), "{reasons}");
    assert!(d.get("/metrics").1.contains("baton_blocked_models 1"));
    let blocked: Vec<Value> =
        serde_json::from_str(&d.get("/api/v1/events?kind=blocked&model=beta").1).unwrap();
    assert_eq!(blocked.len(), 1, "{blocked:?}");

    // The revert unblocks.
    f.repo.git(&["revert", "--no-edit", "HEAD"]);
    d.eventually("beta unblocked", || {
        let s = d.status();
        model_view(&s, "production", "beta")["sync"] == "synced"
            && s["held"].as_array().unwrap().is_empty()
    });
    assert_eq!(f.deployed("production", "beta").as_deref(), Some("1"));
    d.eventually(
        "alpha 3 left staging, which keeps production's alpha 2",
        || f.deployed("staging", "alpha").as_deref() == Some("2"),
    );

    // `git revert -m 1` of the merge rolls production back to alpha 1.
    f.repo.git(&["revert", "--no-edit", "-m", "1", &merge]);
    d.eventually("alpha 1 back in production", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });
    d.eventually("alpha 2 back in staging", || {
        f.deployed("staging", "alpha").as_deref() == Some("2")
    });
    assert_eq!(
        f.current_verified("production", "alpha"),
        Some(sha(b"alpha one"))
    );
}

#[test]
fn failing_health_check_keeps_the_old_version() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    f.version("alpha", "4", "development", b"alpha four: unhealthy");
    f.repo.commit_all("register alpha 4");
    assert_eq!(code(&f.once(&[])), 0);
    f.stage("alpha", "4", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 4 to staging");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("4"));

    f.stage("alpha", "4", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("alpha 4 to production");
    f.approve("alpha@4 -> production");
    for _ in 0..2 {
        // Not retried for the same release: the old version keeps serving.
        let out = f.once(&[]);
        assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
        assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
        assert_eq!(
            f.current_verified("production", "alpha"),
            Some(sha(b"alpha one"))
        );
    }
    let st = f.repo.baton(&[
        "--format",
        "json",
        "status",
        "--state-dir",
        f.state.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&stdout(&st)).unwrap();
    let a = model_view(&v, "production", "alpha");
    assert_eq!(a["sync"], "degraded", "{a}");
    assert_eq!(a["health"], "degraded");
    assert!(a["reasons"].to_string().contains("exited with 1"), "{a}");
    let events = std::fs::read_to_string(f.state.join("events.jsonl")).unwrap();
    assert_eq!(
        events
            .lines()
            .filter(|l| l.contains("\"kind\":\"degraded\""))
            .count(),
        1
    );
    assert!(events
        .lines()
        .any(|l| l.contains("\"kind\":\"rolled-back\"")));
}

/// Tiny deterministic PRNG (xorshift) for kill timings.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkill_at_random_moments_during_50_switches_never_leaves_a_mix() {
    // One deployed stage that new versions enter directly, so each commit is one switch.
    let f = Fixture::new();
    f.repo.write(
        "baton.yaml",
        "version: 1\nstages:\n  - name: staging\n  - name: archived\n    terminal: true\nenvironments:\n  staging:\n    stage: staging\n    target: {kind: local, path: staging}\n",
    );
    std::fs::remove_dir_all(f.repo.path().join("models/beta")).unwrap();
    std::fs::remove_dir_all(f.repo.path().join("models/alpha/versions")).unwrap();
    let content = |n: usize| -> Vec<u8> {
        let mut v = format!("alpha build {n}\n").into_bytes();
        v.resize(512 * 1024, b'0' + (n % 10) as u8);
        v
    };
    // Odd builds are directory artifacts (three files, one in a sub-folder), even ones a file.
    let mut digests = std::collections::HashMap::new();
    let register = |n: usize| -> String {
        let c = content(n);
        if n % 2 == 1 {
            let (a, b) = c.split_at(200 * 1024);
            let (b, rest) = b.split_at(200 * 1024);
            f.version_dir(
                "alpha",
                &n.to_string(),
                "staging",
                &[("MLmodel", a), ("data/model.pkl", b), ("conda.yaml", rest)],
            )
        } else {
            f.version("alpha", &n.to_string(), "staging", &c);
            sha(&c)
        }
    };
    digests.insert(100, register(100));
    f.repo.commit_all("crash-test registry");
    assert_eq!(code(&f.once(&[])), 0);

    let mut rng = Rng(0x5eed_0fba_7000);
    for n in 101..151 {
        f.stage("alpha", &(n - 1).to_string(), "archived");
        digests.insert(n, register(n));
        f.repo.commit_all(&format!("alpha {n}"));

        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args([
                "--repo",
                f.repo.path().to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--interval", "200ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let old = digests[&(n - 1)].clone();
        let new = digests[&n].clone();
        let cur = f
            .current_verified("staging", "alpha")
            .expect("`current` exists");
        assert!(
            cur == old || cur == new,
            "switch {n}: `current` is neither old nor new"
        );

        let out = f.once(&[]);
        assert_eq!(
            code(&out),
            0,
            "restart after kill {n}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(f.deployed("staging", "alpha"), Some(n.to_string()));
        assert_eq!(f.current_verified("staging", "alpha"), Some(new));
    }
    let store = f.deploy_dir("staging", "alpha").join("releases");
    let names: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() <= 4, "old builds are collected: {names:?}");
    assert!(
        names.iter().all(|n| n.len() == 64),
        "no temp files left: {names:?}"
    );
}

#[test]
fn url_mode_clones_and_a_signed_webhook_fetches_at_once() {
    let f = Fixture::new();
    let state = tempfile::tempdir().unwrap();
    let secret = "hook-secret";
    let url = f.repo.path().to_str().unwrap().to_owned();
    // A long interval: only the webhook can make it fetch within the test.
    let d = Daemon::spawn(
        &[
            "serve",
            "--url",
            &url,
            "--interval",
            "1h",
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
        &[("BATON_WEBHOOK_SECRET", secret)],
    );
    let deployed = |env: &str, model: &str| -> Option<String> {
        let p = state
            .path()
            .join("deploy")
            .join(env)
            .join(model)
            .join("deployment.json");
        let v: Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        Some(v["version"].as_str()?.to_owned())
    };
    assert!(state.path().join("repo.git/HEAD").exists());
    d.eventually("initial deploy from the clone", || {
        deployed("staging", "alpha").as_deref() == Some("2")
    });

    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 3 to staging");
    let body = format!(r#"{{"ref":"refs/heads/main","after":"{}"}}"#, f.repo.head());
    let bad = baton::daemon::webhook::sign(b"not the secret", body.as_bytes());
    assert_eq!(
        d.post("/hooks/git", &[("X-Hub-Signature-256", &bad)], &body)
            .0,
        401
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        deployed("staging", "alpha").as_deref(),
        Some("2"),
        "a refused webhook fetches nothing"
    );
    let good = baton::daemon::webhook::sign(secret.as_bytes(), body.as_bytes());
    assert_eq!(
        d.post("/hooks/git", &[("X-Hub-Signature-256", &good)], &body)
            .0,
        202
    );
    d.eventually("alpha 3 deployed after the webhook", || {
        deployed("staging", "alpha").as_deref() == Some("3")
    });
    let head = f.repo.head();
    d.eventually("status at the new head", || {
        d.status()["head"] == head.as_str()
    });
}

#[test]
fn closed_deploy_window_makes_the_change_wait_and_says_until_when() {
    use chrono::{Datelike, Duration as D, Utc};
    let tomorrow = Utc::now().date_naive() + D::days(1);
    let day = tomorrow.weekday().to_string().to_lowercase();
    let policy = POLICY.replace(
        "      - approvals: {min: 1, from: [group:leads]}\n",
        &format!("      - approvals: {{min: 1, from: [group:leads]}}\n      - window: {{days: [{day}], tz: UTC}}\n"),
    );
    assert_ne!(policy, POLICY);
    let f = Fixture::with_policy(&policy);
    assert_eq!(
        code(&f.once(&[])),
        0,
        "the trusted baseline deploys outside the window"
    );
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));

    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2");
    f.approve("alpha@2 -> production");
    let out = f.once(&[]);
    assert_eq!(
        code(&out),
        0,
        "waiting is not a failure: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    let a = f.status();
    let a = model_view(&a, "production", "alpha");
    assert_eq!(a["sync"], "waiting", "{a}");
    let until = a["waiting_until"].as_str().unwrap();
    assert!(until.starts_with(&tomorrow.to_string()), "{until}");
    assert!(a["reasons"].to_string().contains("window"), "{a}");
}

#[test]
fn a_bad_head_deploys_nothing_new_until_fixed() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    f.repo.write("baton.yaml", "version: 1\nstages: [\n");
    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("broken policy and alpha 3 to staging");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("error: baton.yaml"),
        "{}",
        stdout(&out)
    );
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("2"));
    let events = std::fs::read_to_string(f.state.join("events.jsonl")).unwrap();
    assert!(events.lines().any(|l| l.contains("\"kind\":\"bad-head\"")));

    f.repo.write("baton.yaml", POLICY);
    f.repo.commit_all("fix the policy");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("3"));
    assert_eq!(f.status()["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn a_model_requiring_a_blocked_model_waits_for_it() {
    let f = Fixture::new();
    // alpha 2 needs beta 2 beside it (docs/registry-format.md `requires`).
    f.repo.edit(
        "models/alpha/versions/2.yaml",
        "created:",
        "requires:\n  beta: \"2\"\ncreated:",
    );
    f.repo.commit_all("alpha 2 requires beta 2");
    assert_eq!(code(&f.once(&[])), 0);

    for (m, up, down) in [("alpha", "2", "1"), ("beta", "2", "1")] {
        f.stage(m, up, "production");
        f.stage(m, down, "archived");
    }
    f.repo.commit_all("promote alpha 2 and beta 2");
    f.approve("alpha@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    assert_eq!(f.deployed("production", "beta").as_deref(), Some("1"));
    let s = f.status();
    let alpha = model_view(&s, "production", "alpha");
    assert_eq!(alpha["sync"], "blocked", "{alpha}");
    assert!(
        alpha["reasons"].to_string().contains("needs beta@2"),
        "{alpha}"
    );
    assert!(model_view(&s, "production", "beta")["reasons"]
        .to_string()
        .contains("approvals"));

    // beta's approval lands: both go, beta first.
    f.approve("beta@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("2"));
    assert_eq!(f.deployed("production", "beta").as_deref(), Some("2"));
    let events = std::fs::read_to_string(f.state.join("events.jsonl")).unwrap();
    let order: Vec<&str> = events
        .lines()
        .filter(|l| {
            l.contains("\"kind\":\"deployed\"") && l.contains("\"environment\":\"production\"")
        })
        .filter(|l| l.contains("\"version\":\"2\""))
        .map(|l| {
            if l.contains("\"model\":\"beta\"") {
                "beta"
            } else {
                "alpha"
            }
        })
        .collect();
    assert_eq!(order, ["beta", "alpha"], "requires switch first");
}

// ---------------------------------------------------------------- gate integrity (daemon)

/// A signed empty approval commit made with `key`, claiming `email` as committer.
fn approve_with(repo: &TestRepo, key: &SshKey, email: &str, trailer: &str) {
    repo.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={}", key.private.display()),
        "-c",
        &format!("user.email={email}"),
        "commit",
        "-q",
        "-S",
        "--allow-empty",
        "-m",
        "approve",
        "-m",
        &format!("Baton-Approve: {trailer}"),
    ]);
}

fn events(f: &Fixture) -> String {
    std::fs::read_to_string(f.state.join("events.jsonl")).unwrap_or_default()
}

#[test]
fn a_never_accepted_tenure_does_not_make_a_second_push_a_rollback() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    // "promote alpha 2" pushed without review and reverted, then pushed again: all three
    // land before one pass.
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2 (unreviewed)");
    f.repo.git(&["revert", "--no-edit", "HEAD"]);
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2 again");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    let s = f.status();
    let a = model_view(&s, "production", "alpha");
    assert_eq!(a["sync"], "blocked", "{a}");
    assert!(a["reasons"].to_string().contains("approvals"), "{a}");
}

#[test]
fn a_signers_only_push_is_judged_and_its_keys_approve_nothing() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    let keys = tempfile::tempdir().unwrap();
    let mallory = SshKey::generate(keys.path(), "mallory", "alice@acme.com");
    // A direct push that only adds mallory's key under alice's principal.
    let signers = f.repo.read(".baton/allowed_signers");
    f.repo.write(
        ".baton/allowed_signers",
        &format!("{signers}{}\n", mallory.allowed_signers_line()),
    );
    f.repo.commit_all("rotate keys");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let st: Value =
        serde_json::from_slice(&std::fs::read(f.state.join("state.json")).unwrap()).unwrap();
    assert!(
        st["policy_pending"].to_string().contains("policy-change"),
        "the signers change is not in force: {st:#}"
    );
    // mallory's "alice" approval of a promotion does not count.
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2");
    approve_with(&f.repo, &mallory, "alice@acme.com", "alpha@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    // alice's real key still approves.
    f.approve("alpha@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("2"));
}

#[test]
fn a_force_push_is_diverged_and_nothing_follows_it() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    let trusted = f.repo.head();
    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 3 to staging");
    assert_eq!(code(&f.once(&[])), 0);
    let accepted = f.repo.head();
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("3"));
    // Force-push the branch back and build on the old history.
    f.repo.git(&["reset", "-q", "--hard", &trusted]);
    f.stage("beta", "2", "production");
    f.stage("beta", "1", "archived");
    f.repo.commit_all("promote beta 2 on rewritten history");
    f.approve("beta@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "beta").as_deref(), Some("1"));
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("3"));
    let s = f.status();
    assert_eq!(
        model_view(&s, "production", "beta")["sync"],
        "diverged",
        "{s:#}"
    );
    assert!(events(&f).contains("\"kind\":\"diverged\""));
    // Back on the accepted history: followed again.
    f.repo.git(&["reset", "-q", "--hard", &accepted]);
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        model_view(&f.status(), "production", "beta")["sync"],
        "synced"
    );
}

#[test]
fn a_bad_head_holds_a_model_that_first_appears_in_it() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    f.repo.write(
        "models/gamma/model.yaml",
        "name: gamma\ndescription: new\nowners: [alice@acme.com]\n",
    );
    f.version("gamma", "1", "staging", b"gamma one");
    // baton.yaml parses but does not validate (an environment deploys an unknown stage).
    f.repo.write(
        "baton.yaml",
        &format!(
            "{POLICY}  broken:\n    stage: nosuch\n    target: {{kind: local, path: broken}}\n"
        ),
    );
    f.repo.commit_all("invalid policy and a new model");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(!f.deploy_dir("staging", "gamma").exists());
    assert!(!f.state.join("deploy/broken").exists());
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("2"));
    let s = f.status();
    assert!(s["errors"].to_string().contains("nosuch"), "{s:#}");
}

#[test]
fn two_merges_landing_before_one_pass_are_judged_one_by_one() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    // Register alpha 4, then promote it to staging: two reviewed changes, one pass.
    f.version("alpha", "4", "development", b"alpha four");
    f.repo.commit_all("register alpha 4");
    f.stage("alpha", "4", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 4 to staging");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("4"));
}

#[test]
fn a_held_model_keeps_the_versions_it_requires_running() {
    let f = Fixture::new();
    // alpha 1 (production) requires beta 1 beside it.
    f.repo.edit(
        "models/alpha/versions/1.yaml",
        "created:",
        "requires:\n  beta: \"1\"\ncreated:",
    );
    f.repo.commit_all("alpha 1 requires beta 1");
    assert_eq!(code(&f.once(&[])), 0);
    // One commit: alpha 2 replaces 1 (unapproved: held), beta 2 replaces 1 (approved).
    for (m, up, down) in [("alpha", "2", "1"), ("beta", "2", "1")] {
        f.stage(m, up, "production");
        f.stage(m, down, "archived");
    }
    f.repo.commit_all("promote alpha 2 and beta 2");
    f.approve("beta@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    assert_eq!(
        f.deployed("production", "beta").as_deref(),
        Some("1"),
        "alpha 1 keeps running and requires beta 1"
    );
    let s = f.status();
    let b = model_view(&s, "production", "beta");
    assert!(
        b["reasons"].to_string().contains("alpha@1 keeps running"),
        "{b}"
    );
    // alpha's approval lands: both switch.
    f.approve("alpha@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("2"));
    assert_eq!(f.deployed("production", "beta").as_deref(), Some("2"));
}

const SOAK_POLICY_GATE: &str =
    "      - approvals: {min: 1, from: [group:leads]}\n      - soak: {stage: staging, for: 24h}\n";

#[test]
fn soak_is_measured_from_when_the_daemon_accepted_the_entry_not_commit_dates() {
    let policy = POLICY.replace(
        "      - approvals: {min: 1, from: [group:leads]}\n",
        SOAK_POLICY_GATE,
    );
    let f = Fixture::with_policy(&policy);
    assert_eq!(code(&f.once(&[])), 0);
    // alpha 3 enters staging in a commit dated three days ago.
    let old = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.git(&["add", "-A"]);
    f.repo.git_env(
        &[("GIT_AUTHOR_DATE", &old), ("GIT_COMMITTER_DATE", &old)],
        &["commit", "-q", "-m", "alpha 3 to staging (back-dated)"],
    );
    assert_eq!(code(&f.once(&[])), 0);
    f.stage("alpha", "3", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 3");
    f.approve("alpha@3 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "waiting: {}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    let s = f.status();
    let a = model_view(&s, "production", "alpha");
    assert_eq!(a["sync"], "waiting", "{a}");
    assert!(a["reasons"].to_string().contains("soak"), "{a}");
}

#[test]
fn a_waiting_change_is_judged_under_an_approved_policy_change() {
    let policy = POLICY
        .replace(
            "      - approvals: {min: 1, from: [group:leads]}\n",
            &SOAK_POLICY_GATE.replace("24h", "48h"),
        )
        .replace(
            "policy_owners: [group:admins]",
            "policy_owners: [group:leads]",
        );
    let f = Fixture::with_policy(&policy);
    assert_eq!(code(&f.once(&[])), 0);
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2");
    f.approve("alpha@2 -> production");
    assert_eq!(code(&f.once(&[])), 0);
    assert_eq!(
        model_view(&f.status(), "production", "alpha")["sync"],
        "waiting"
    );
    // A shorter soak, approved by a policy owner, applies to the waiting change.
    f.repo
        .write("baton.yaml", &policy.replace("for: 48h", "for: 1s"));
    f.repo.commit_all("soak: 1s");
    f.approve("policy");
    std::thread::sleep(Duration::from_millis(1100));
    let out = f.once(&[]);
    let out2 = if f.deployed("production", "alpha").as_deref() == Some("2") {
        out
    } else {
        f.once(&[])
    };
    assert_eq!(code(&out2), 0, "{}{}", stdout(&out2), stderr(&out2));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("2"));
}

#[test]
fn trust_must_name_a_commit_on_the_branch_and_is_announced() {
    let f = Fixture::new();
    f.repo.git(&["checkout", "-q", "-b", "elsewhere"]);
    f.repo.commit_all("not on main");
    f.repo
        .git(&["commit", "-q", "--allow-empty", "-m", "not on main"]);
    let off = f.repo.head();
    f.repo.git(&["checkout", "-q", "main"]);
    let out = f.once(&["--trust", &off]);
    assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("not on branch main"),
        "{}",
        stderr(&out)
    );
    let out = f.once(&[]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("trusting"), "{}", stderr(&out));
    assert!(events(&f).contains("\"kind\":\"trusted\""));
}

// ---------------------------------------------------------------- serve --github

/// The fixture's policy with alice's GitHub login among the leads.
fn github_fixture() -> Fixture {
    Fixture::with_policy(&POLICY.replace(
        "leads: [alice@acme.com]",
        "leads: [alice@acme.com, github:alice-gh]",
    ))
}

/// A daemon with `--github acme/registry` against the fake API at `api`.
fn start_with_github(f: &Fixture, api: &str) -> Daemon {
    Daemon::start(
        f.repo.path(),
        &f.state,
        &["--github", "acme/registry"],
        &[("GITHUB_API_URL", api), ("GITHUB_TOKEN", "test-token")],
    )
}

/// Pull request #7 promotes alpha 2 to production; its squash commit is made on top of main
/// without moving main yet. Returns (the PR's head, the squash commit).
fn squash_pr_promoting_alpha_2(f: &Fixture) -> (String, String) {
    f.repo.git(&["checkout", "-q", "-b", "promote-alpha"]);
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2 to production");
    f.repo.commit_all("empty fixup");
    let pr_head = f.repo.head();
    // GitHub's "Squash and merge": one new commit on main with the branch's tree.
    let squash = f.repo.git(&[
        "commit-tree",
        "promote-alpha^{tree}",
        "-p",
        "main",
        "-m",
        "Promote alpha 2 to production (#7)",
    ]);
    (pr_head, squash)
}

/// The fake API's answers for PR #7, merged as `squash`, with `reviews` (a JSON array).
fn pr_routes(server: &common::github::Server, pr_head: &str, squash: &str, reviews: &str) {
    server.route(
        &format!("/repos/acme/registry/commits/{squash}/pulls?per_page=100"),
        "",
        &format!(
            "[{}]",
            common::github::pull(7, "erin-gh", pr_head, Some(squash))
        ),
    );
    server.route(
        "/repos/acme/registry/pulls/7/reviews?per_page=100",
        "",
        reviews,
    );
}

#[test]
fn serve_github_deploys_a_squash_merged_pr_its_review_approved() {
    let f = github_fixture();
    let server = common::github::serve_with_self_url(Vec::new());
    let d = start_with_github(&f, &server.url);
    d.eventually("initial deploy", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });
    let (pr_head, squash) = squash_pr_promoting_alpha_2(&f);
    pr_routes(
        &server,
        &pr_head,
        &squash,
        &format!(
            "[{}]",
            common::github::review(1, "alice-gh", "APPROVED", &pr_head)
        ),
    );
    f.repo.git(&["update-ref", "refs/heads/main", &squash]);
    d.eventually("alpha 2 in production", || {
        f.deployed("production", "alpha").as_deref() == Some("2")
    });
    let reqs = server.requests();
    let pulls_of = format!("GET /repos/acme/registry/commits/{squash}/pulls?per_page=100 ");
    assert!(reqs.iter().any(|r| r.starts_with(&pulls_of)), "{reqs:#?}");
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /repos/acme/registry/pulls/7/reviews?per_page=100 ")),
        "{reqs:#?}"
    );
    assert!(
        reqs.iter().all(|r| r.contains("Bearer test-token")),
        "{reqs:#?}"
    );
}

#[test]
fn serve_github_keeps_a_squash_merged_pr_without_an_approving_review_blocked() {
    let f = github_fixture();
    let server = common::github::serve_with_self_url(Vec::new());
    let d = start_with_github(&f, &server.url);
    d.eventually("initial deploy", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });
    let (pr_head, squash) = squash_pr_promoting_alpha_2(&f);
    // A comment and an approval of an earlier commit of the PR: neither approves its head.
    let earlier = f.repo.git(&["rev-parse", "promote-alpha~1"]);
    pr_routes(
        &server,
        &pr_head,
        &squash,
        &format!(
            "[{},{}]",
            common::github::review(1, "alice-gh", "APPROVED", &earlier),
            common::github::review(2, "bob-gh", "COMMENTED", &pr_head)
        ),
    );
    f.repo.git(&["update-ref", "refs/heads/main", &squash]);
    d.eventually("alpha blocked", || {
        model_view(&d.status(), "production", "alpha")["sync"] == "blocked"
    });
    let reasons = model_view(&d.status(), "production", "alpha")["reasons"].to_string();
    assert!(
        reasons.contains("0 of 1 approval from group:leads"),
        "{reasons}"
    );
    assert!(
        reasons.contains("github:alice-gh: approved an earlier commit"),
        "{reasons}"
    );
    // It stays blocked while the daemon re-judges it, pass after pass.
    let pulls_of = format!("GET /repos/acme/registry/commits/{squash}/pulls?per_page=100 ");
    d.eventually("three more judgements", || {
        server
            .requests()
            .iter()
            .filter(|r| r.starts_with(&pulls_of))
            .count()
            >= 4
    });
    assert_eq!(
        model_view(&d.status(), "production", "alpha")["sync"],
        "blocked"
    );
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    // alice approves the PR's final head after the merge: the held change goes ahead.
    server.route(
        "/repos/acme/registry/pulls/7/reviews?per_page=100",
        "",
        &format!(
            "[{}]",
            common::github::review(3, "alice-gh", "APPROVED", &pr_head)
        ),
    );
    d.eventually("alpha 2 in production", || {
        f.deployed("production", "alpha").as_deref() == Some("2")
    });
}

// ------------------------------------------------- the daemon itself: idle, health, limits, HTTP

/// `baton --repo R serve --interval I --state-dir S EXTRA...`, on a loopback port.
fn serve_args<'a>(f: &'a Fixture, interval: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--repo",
        f.repo.path().to_str().unwrap(),
        "serve",
        "--interval",
        interval,
        "--state-dir",
        f.state.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn an_idle_daemon_sleeps_and_a_commit_still_deploys() {
    let f = Fixture::new();
    // A long interval: between commits only writes of the branch's ref can wake it.
    let d = Daemon::spawn(&serve_args(&f, "1h", &[]), &[]);
    d.eventually("initial deploy", || {
        f.deployed("staging", "alpha").as_deref() == Some("2")
    });
    let before = d.metric("baton_reconciles_total");
    std::thread::sleep(Duration::from_secs(3));
    let idle = d.metric("baton_reconciles_total") - before;
    assert!(idle <= 2.0, "{idle} passes in 3 idle seconds");

    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 3 to staging");
    d.eventually("alpha 3 deployed after the ref write", || {
        f.deployed("staging", "alpha").as_deref() == Some("3")
    });
    // Reading the repository (ours or anyone's) wakes nothing.
    let before = d.metric("baton_reconciles_total");
    for _ in 0..20 {
        f.repo.git(&["rev-parse", "main"]);
        f.repo.git(&["log", "-1", "--format=%H", "main"]);
    }
    std::thread::sleep(Duration::from_secs(1));
    let idle = d.metric("baton_reconciles_total") - before;
    assert!(idle <= 1.0, "{idle} passes after reads of the ref");
}

#[test]
fn a_soak_ending_wakes_the_daemon_before_the_interval() {
    let policy = "version: 1
stages:
  - name: development
  - name: staging
  - name: production
    gates:
      - soak: {stage: staging, for: 4s}
  - name: archived
    terminal: true
environments:
  staging:
    stage: staging
    target: {kind: local, path: staging}
  production:
    stage: production
    target: {kind: local, path: production}
";
    let f = Fixture::with_policy(policy);
    let d = Daemon::spawn(&serve_args(&f, "1h", &[]), &[]);
    d.eventually("initial deploy", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });
    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 3 to staging");
    d.eventually("alpha 3 in staging", || {
        f.deployed("staging", "alpha").as_deref() == Some("3")
    });
    f.stage("alpha", "3", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("alpha 3 to production");
    d.eventually("alpha 3 waiting for its soak", || {
        let s = d.status();
        s["held"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["model"] == "alpha" && h["kind"] == "waiting" && h["until"].is_string())
            || f.deployed("production", "alpha").as_deref() == Some("3")
    });
    let waiting_since = d.metric("baton_reconciles_total");
    // Nothing but the end of the soak can start the next pass within the hour, and the daemon
    // sleeps until then.
    d.eventually("alpha 3 in production once the soak ended", || {
        f.deployed("production", "alpha").as_deref() == Some("3")
    });
    let head = f.repo.head();
    d.eventually("status after the deploy", || {
        d.status()["head"] == head.as_str()
    });
    let passes = d.metric("baton_reconciles_total") - waiting_since;
    assert!(passes <= 3.0, "{passes} passes while waiting for the soak");
}

#[test]
fn a_misbehaving_health_command_never_stops_the_controller() {
    // Unhealthy builds: 160 KB of two-byte characters on stderr (more than a pipe holds, cut
    // inside a character), a background child that keeps stderr open for 100 s, exit 1.
    let health = r#"health: {command: "if grep -q unhealthy \"$BATON_ARTIFACT\"; then sleep 100 & i=0; while [ $i -lt 40000 ]; do printf 'éé' >&2; i=$((i+1)); done; printf x >&2; exit 1; fi", timeout: 60s}"#;
    let policy = POLICY.replace(
        r#"health: {command: "! grep -q unhealthy \"$BATON_ARTIFACT\"", timeout: 10s}"#,
        health,
    );
    assert_ne!(policy, POLICY);
    let f = Fixture::with_policy(&policy);
    let d = f.start(&[]);
    d.eventually("initial deploy", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });
    f.version("alpha", "4", "development", b"alpha four: unhealthy");
    f.repo.commit_all("register alpha 4");
    d.eventually("alpha 4 registered", || {
        d.status()["head"] == f.repo.head().as_str()
    });
    f.stage("alpha", "4", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 4 to staging");
    d.eventually("alpha 4 in staging", || {
        f.deployed("staging", "alpha").as_deref() == Some("4")
    });
    f.stage("alpha", "4", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("alpha 4 to production");
    f.approve("alpha@4 -> production");
    d.eventually("alpha 4 degraded", || {
        model_view(&d.status(), "production", "alpha")["sync"] == "degraded"
    });
    let s = d.status();
    let a = model_view(&s, "production", "alpha");
    let reasons = a["reasons"].to_string();
    assert!(reasons.contains("exited with 1"), "{a}");
    assert!(!reasons.contains("timed out"), "{a}");
    assert!(reasons.contains("ééx"), "{a}");
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));
    assert_eq!(d.get("/healthz").0, 200);

    // The controller goes on: the next good change deploys (its health check passes).
    f.stage("beta", "2", "production");
    f.stage("beta", "1", "archived");
    f.repo.commit_all("beta 2 to production");
    f.approve("beta@2 -> production");
    d.eventually("beta 2 in production", || {
        f.deployed("production", "beta").as_deref() == Some("2")
    });
    assert_eq!(d.get("/healthz").0, 200);
    // The unhealthy build's background child went with its process group.
    let out = Command::new("pgrep")
        .args(["-f", "^sleep 100$"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let ours: Vec<&str> = out
        .lines()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/environ"))
                .is_ok_and(|e| e.contains("BATON_MODEL=alpha"))
        })
        .collect();
    assert!(ours.is_empty(), "health children survived: {ours:?}");
}

/// A version manifest with an explicit artifact URI, digest and optional size.
fn manifest(
    model: &str,
    v: &str,
    stage: &str,
    uri: &str,
    digest: &str,
    size: Option<u64>,
) -> String {
    let size = size.map(|n| format!("  size: {n}\n")).unwrap_or_default();
    format!(
        "model: {model}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {digest}\n{size}created: 2026-11-01T10:00:00Z\n"
    )
}

/// An HTTP server on loopback that answers every request with an endless body; returns its
/// base URL and the bytes it sent. It stops by itself (after 2 GiB or a minute).
fn endless_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let total = sent.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        for s in l.incoming().take(16) {
            let Ok(mut s) = s else { continue };
            let total = total.clone();
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
                let chunk = vec![b'z'; 64 * 1024];
                while total.load(Ordering::SeqCst) < 2 << 30
                    && start.elapsed() < Duration::from_secs(60)
                {
                    if s.write_all(&chunk).is_err() {
                        return;
                    }
                    total.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
            });
        }
    });
    (base, sent)
}

#[test]
fn an_endless_download_is_refused_at_the_size_cap() {
    let f = Fixture::new();
    let (base, sent) = endless_server();
    f.repo.write(
        "models/alpha/versions/2.yaml",
        &manifest(
            "alpha",
            "2",
            "staging",
            &format!("{base}/alpha.bin"),
            &sha(b"x"),
            Some(4096),
        ),
    );
    f.repo.write(
        "models/beta/versions/2.yaml",
        &manifest(
            "beta",
            "2",
            "staging",
            &format!("{base}/beta.bin"),
            &sha(b"y"),
            Some(1 << 30),
        ),
    );
    f.repo.commit_all("staging artifacts from a web server");
    let out = f.once(&["--max-artifact-size", "1MiB"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let s = f.status();
    let alpha = model_view(&s, "staging", "alpha")["reasons"].to_string();
    assert!(
        alpha.contains("refused: larger than the manifest's size of 4096 bytes"),
        "{alpha}"
    );
    let beta = model_view(&s, "staging", "beta")["reasons"].to_string();
    assert!(
        beta.contains("refused: larger than --max-artifact-size (1 MiB)"),
        "{beta}"
    );
    for m in ["alpha", "beta"] {
        assert_eq!(f.deployed("staging", m), None);
        let store = f.deploy_dir("staging", m).join("releases");
        let left: Vec<_> = std::fs::read_dir(&store)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{m}: {left:?} left in the store");
    }
    // It stopped reading at the cap (socket buffers hold a few MB more at most).
    let n = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n < 64 << 20, "the server sent {n} bytes");
    // Production (registry artifacts) deployed as usual.
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("1"));

    let bad = f.once(&["--max-artifact-size", "lots"]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
}

#[test]
fn file_artifacts_come_only_from_allowed_roots_and_refusals_leak_no_digest() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let files = tempfile::tempdir().unwrap();
    let private = files.path().join("private");
    let models = files.path().join("models");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::create_dir_all(&models).unwrap();
    let secret = private.join("key.pem");
    std::fs::write(&secret, b"-----BEGIN PRIVATE KEY----- not for you").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret_sha = sha(b"-----BEGIN PRIVATE KEY----- not for you");
    std::fs::write(models.join("good.bin"), b"good weights").unwrap();
    std::os::unix::fs::symlink(&secret, models.join("link.bin")).unwrap();
    let root = models.to_str().unwrap();

    // Each case: alpha 2 in staging from `uri` claiming `digest`, a fresh state dir.
    let case = |uri: String, digest: &str, extra: &[&str]| -> (i32, String) {
        f.repo.write(
            "models/alpha/versions/2.yaml",
            &manifest("alpha", "2", "staging", &uri, digest, None),
        );
        f.repo.commit_all(&format!("alpha 2 from {uri}"));
        let state = tempfile::tempdir().unwrap();
        let mut args = vec!["--state-dir", state.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = f.once(&args);
        let published = format!(
            "{}{}{}{}",
            stdout(&out),
            stderr(&out),
            std::fs::read_to_string(state.path().join("status.json")).unwrap_or_default(),
            std::fs::read_to_string(state.path().join("events.jsonl")).unwrap_or_default()
        );
        let deployed = state
            .path()
            .join("deploy/staging/alpha/deployment.json")
            .exists();
        assert_eq!(deployed, code(&out) == 0, "{published}");
        (code(&out), published)
    };
    let file = |p: &Path| format!("file://{}", p.display());
    let guess = sha(b"a guess");

    let (c, out) = case(file(&secret), &guess, &[]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("file:// artifacts are not allowed"), "{out}");
    assert!(!out.contains(&secret_sha), "{out}");

    let (c, out) = case(file(&secret), &guess, &["--allow-file-root", root]);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("outside the folders allowed with --allow-file-root"),
        "{out}"
    );
    assert!(!out.contains(&secret_sha), "{out}");

    let (c, out) = case(
        file(&models.join("link.bin")),
        &guess,
        &["--allow-file-root", root],
    );
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("resolves (through a symbolic link) outside"),
        "{out}"
    );
    assert!(!out.contains(&secret_sha), "{out}");

    let dotdot = format!("file://{root}/../private/key.pem");
    let (c, out) = case(dotdot, &guess, &["--allow-file-root", root]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("must not contain `..`"), "{out}");
    assert!(!out.contains(&secret_sha), "{out}");

    // Inside the root with a wrong digest: the manifest's digest only.
    let (c, out) = case(
        file(&models.join("good.bin")),
        &guess,
        &["--allow-file-root", root],
    );
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains(&format!("sha256 mismatch: expected {guess}")),
        "{out}"
    );
    assert!(!out.contains(&sha(b"good weights")), "{out}");

    // Inside the root with the right digest: deployed.
    let (c, out) = case(
        file(&models.join("good.bin")),
        &sha(b"good weights"),
        &["--allow-file-root", root],
    );
    assert_eq!(c, 0, "{out}");

    let missing = files.path().join("nope");
    let out = f.once(&["--allow-file-root", missing.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-file-root"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_hand_edited_routing_json_is_drift_and_repaired() {
    let f = Fixture::new();
    let d = f.start(&[]);
    d.eventually("initial deploy", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });
    let routing = f.deploy_dir("production", "alpha").join("routing.json");
    let good = std::fs::read_to_string(&routing).unwrap();
    let edited = good.replace("\"traffic\": 100", "\"traffic\": 50");
    assert_ne!(edited, good);
    // Replaced whole (as an editor saves), so the daemon never reads half a file.
    let tmp = routing.with_extension("edit");
    std::fs::write(&tmp, &edited).unwrap();
    std::fs::rename(&tmp, &routing).unwrap();
    let repaired = || -> bool {
        let events: Vec<Value> =
            serde_json::from_str(&d.get("/api/v1/events?kind=repaired&model=alpha").1).unwrap();
        events.iter().any(|e| {
            e["environment"] == "production"
                && e["message"]
                    .as_str()
                    .unwrap()
                    .contains("routing.json differs from the deployed release")
        })
    };
    d.eventually("a repair of routing.json", repaired);
    d.eventually("routing.json restored", || {
        std::fs::read_to_string(&routing).is_ok_and(|s| s == good)
    });
    d.eventually("synced again", || {
        model_view(&d.status(), "production", "alpha")["sync"] == "synced"
    });
}

#[test]
fn idle_connections_do_not_starve_healthz_or_the_controller() {
    let f = Fixture::new();
    // 128 open files in all: 300 idle clients would use them up without a connection cap.
    let d = Daemon::spawn_with(&serve_args(&f, "200ms", &[]), &[], "127.0.0.1:0", Some(128));
    d.eventually("initial deploy", || {
        f.deployed("staging", "alpha").as_deref() == Some("2")
    });
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let a = d.addr.parse().unwrap();
            std::net::TcpStream::connect_timeout(&a, Duration::from_secs(10)).unwrap()
        })
        .collect();
    d.eventually("/healthz answers beside 300 idle connections", || {
        d.get("/healthz").0 == 200
    });
    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 3 to staging");
    d.eventually("alpha 3 deployed", || {
        f.deployed("staging", "alpha").as_deref() == Some("3")
    });
    let head = f.repo.head();
    d.eventually("status at the new head", || {
        d.status()["head"] == head.as_str()
    });
    assert!(!d.log().contains("not found"), "{}", d.log());
    drop(idle);
}

/// Wait for a process that should exit by itself; kill it (and fail) past 30 s.
fn exits_within(mut child: Child) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("{:?} did not exit", child.wait_with_output().unwrap());
}

#[test]
fn the_api_token_guards_the_api_and_a_public_listen_needs_one() {
    let f = Fixture::new();
    let d = Daemon::spawn(
        &serve_args(&f, "200ms", &[]),
        &[("BATON_API_TOKEN", "t0ken")],
    );
    for path in ["/api/v1/status", "/api/v1/events"] {
        assert_eq!(d.get(path).0, 401, "{path}");
        assert_eq!(d.get_with(path, &[("Authorization", "Bearer nope")]).0, 401);
        assert_eq!(d.get_with(path, &[("Authorization", "t0ken")]).0, 401);
        assert_eq!(
            d.get_with(path, &[("Authorization", "Bearer t0ken")]).0,
            200
        );
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(d.get(path).0, 200, "{path} stays open");
    }
    let (_, body) = d.get_with("/api/v1/status", &[("Authorization", "Bearer t0ken")]);
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["head"], f.repo.head());
    drop(d);

    // A public address without a token: refused at start.
    let state = tempfile::tempdir().unwrap();
    let public = |extra: &[&str]| {
        let mut args = vec![
            "--repo",
            f.repo.path().to_str().unwrap(),
            "serve",
            "--state-dir",
            state.path().to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .env_remove("BATON_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = exits_within(public(&[]));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not a loopback address")
            && err.contains("BATON_API_TOKEN")
            && err.contains("--insecure-listen"),
        "{err}"
    );
    assert!(
        !state.path().join("state.json").exists(),
        "refused before any pass"
    );

    // With --insecure-listen it serves, loudly; with a token it serves quietly.
    let args = serve_args(&f, "200ms", &["--insecure-listen"]);
    let d = Daemon::spawn_with(&args, &[], "0.0.0.0:0", None);
    assert_eq!(d.get("/api/v1/status").0, 200);
    assert!(d.log().contains("WITHOUT AUTHENTICATION"), "{}", d.log());
    drop(d);
    let d = Daemon::spawn_with(
        &serve_args(&f, "200ms", &[]),
        &[("BATON_API_TOKEN", "t0ken")],
        "0.0.0.0:0",
        None,
    );
    assert_eq!(d.get("/api/v1/status").0, 401);
    assert_eq!(d.get("/healthz").0, 200);
    assert!(!d.log().contains("WITHOUT AUTHENTICATION"));
}

#[test]
fn status_from_the_state_dir_alone_outside_a_repository() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    let elsewhere = tempfile::tempdir().unwrap();
    let dir = f.state.to_str().unwrap();
    let out = common::baton(&["status", "--state-dir", dir], elsewhere.path());
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("registry not read"), "{text}");
    assert!(text.contains("environment production"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("alpha") && l.contains("synced") && l.contains("healthy")),
        "{text}"
    );

    let out = common::baton(
        &["--format", "json", "status", "--state-dir", dir],
        elsewhere.path(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["revision"], Value::Null);
    assert_eq!(v["head"], f.repo.head());
    assert_eq!(
        model_view(&v, "production", "alpha")["deployed"][0]["version"],
        "1"
    );

    // An explicit revision needs a repository; a missing state dir is an error.
    let out = common::baton(
        &["status", "--rev", "HEAD~1", "--state-dir", dir],
        elsewhere.path(),
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let nope = elsewhere.path().join("nope");
    let out = common::baton(
        &["status", "--state-dir", nope.to_str().unwrap()],
        elsewhere.path(),
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    // Without --state-dir, outside a repository is an error as before.
    let out = common::baton(&["status"], elsewhere.path());
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn status_with_a_broken_policy_at_head_shows_the_state_dir() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    f.repo.write("baton.yaml", "version: 1\nstages: [\n");
    f.repo.commit_all("broken policy");
    let dir = f.state.to_str().unwrap();
    let out = f.repo.baton(&["status", "--state-dir", dir]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("baton.yaml"), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("registry not read"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("beta") && l.contains("synced")),
        "{text}"
    );
    let out = f
        .repo
        .baton(&["--format", "json", "status", "--state-dir", dir]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        model_view(&v, "staging", "beta")["deployed"][0]["version"],
        "2"
    );
}

// ---------------------------------------------------------------- property: random histories

/// Random sequences of unreviewed promotions, approvals, reverts and force-pushes, with a
/// daemon pass after each step: production only ever runs alpha 1 (the trusted baseline) or a
/// version whose promotion alice approved on the history the daemon accepted.
#[test]
fn random_promote_revert_approve_force_push_never_deploys_an_unapproved_version() {
    let mut approved_deploys = 0;
    for seed in [7u64, 1234, 99991] {
        let f = Fixture::new();
        assert_eq!(code(&f.once(&[])), 0);
        let mut x = seed;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut history = vec![f.repo.head()];
        let mut last_promoted: Option<String> = None;
        for step in 0..10 {
            match rnd(5) {
                0 => {
                    let v = ["2", "3"][rnd(2) as usize];
                    for other in ["1", "2", "3"].iter().filter(|o| **o != v) {
                        let rel = format!("models/alpha/versions/{other}.yaml");
                        if f.repo.read(&rel).contains("stage: production") {
                            f.stage("alpha", other, "archived");
                        }
                    }
                    f.stage("alpha", v, "production");
                    if !f.repo.git(&["status", "--porcelain"]).is_empty() {
                        f.repo
                            .commit_all(&format!("step {step}: alpha {v} to production"));
                        last_promoted = Some(v.to_owned());
                    }
                }
                1 | 4 => {
                    if let Some(v) = &last_promoted {
                        f.approve(&format!("alpha@{v} -> production"));
                    }
                }
                2 => {
                    if f.repo
                        .git(&["log", "-1", "--format=%s"])
                        .starts_with("step")
                    {
                        f.repo.git(&["revert", "--no-edit", "HEAD"]);
                    }
                }
                _ => {
                    let to = history[rnd(history.len() as u64) as usize].clone();
                    f.repo.git(&["reset", "-q", "--hard", &to]);
                }
            }
            history.push(f.repo.head());
            let _ = f.once(&[]);
            let st: Value =
                serde_json::from_slice(&std::fs::read(f.state.join("state.json")).unwrap())
                    .unwrap();
            let accepted = st["head"].as_str().unwrap().to_owned();
            let Some(v) = f.deployed("production", "alpha") else {
                continue;
            };
            if v == "1" {
                continue;
            }
            let signers = f.repo.path().join(".baton/allowed_signers");
            let approvals = f.repo.git(&[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("gpg.ssh.allowedSignersFile={}", signers.display()),
                "log",
                "--format=%H %G? %(trailers:key=Baton-Approve,valueonly)",
                &accepted,
            ]);
            let approved = approvals
                .lines()
                .any(|l| l.contains(" G ") && l.contains(&format!("alpha@{v} -> production")));
            assert!(
                approved,
                "seed {seed} step {step}: production runs alpha {v} without an approval on the accepted history {accepted}\n{approvals}"
            );
            approved_deploys += 1;
        }
    }
    // The histories also exercise the other half of the promise: approved changes deploy.
    assert!(approved_deploys > 0, "no approved promotion ever deployed");
}

#[test]
fn staging_keeps_serving_the_version_promoted_to_production() {
    let f = Fixture::new();
    assert_eq!(code(&f.once(&[])), 0);
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2 to production");
    f.approve("alpha@2 -> production");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("2"));
    // Not undeployed: staging holds no alpha, so it keeps production's alpha 2.
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("2"));
    assert_eq!(
        f.current_verified("staging", "alpha"),
        Some(sha(b"alpha two"))
    );
    let s = f.status();
    let a = model_view(&s, "staging", "alpha");
    assert_eq!(a["sync"], "synced", "{a}");
    assert_eq!(a["desired"][0]["version"], "2", "{a}");
    let st = f.repo.baton(&["--format", "json", "status"]);
    assert_eq!(code(&st), 0, "{}", stderr(&st));
    let v: Value = serde_json::from_str(&stdout(&st)).unwrap();
    let staging = v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "staging")
        .unwrap();
    let alpha = staging["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "alpha")
        .unwrap_or_else(|| panic!("staging runs no alpha: {v:#}"));
    assert_eq!(alpha["versions"][0]["version"], "2");
    assert_eq!(alpha["versions"][0]["kept_from"], "production");

    // A new candidate entering staging takes over from the kept version.
    f.stage("alpha", "3", "staging");
    f.repo.commit_all("alpha 3 to staging");
    let out = f.once(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("3"));
    assert_eq!(f.deployed("production", "alpha").as_deref(), Some("2"));
}

#[test]
fn serve_github_unreachable_holds_only_changes_that_need_approval() {
    let f = Fixture::new();
    let gh = [
        "--github",
        "acme/registry",
        "--github-api-url",
        "http://127.0.0.1:9",
    ];
    assert_eq!(code(&f.once(&gh)), 0);
    // One commit needs no approval (staging has no gates), the next one does.
    f.stage("alpha", "3", "staging");
    f.stage("alpha", "2", "archived");
    f.repo.commit_all("alpha 3 to staging");
    f.stage("beta", "2", "production");
    f.stage("beta", "1", "archived");
    f.repo.commit_all("beta 2 to production");
    let out = f.once(&gh);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.deployed("staging", "alpha").as_deref(), Some("3"));
    assert_eq!(f.deployed("production", "beta").as_deref(), Some("1"));
    let s = f.status();
    let b = model_view(&s, "production", "beta");
    assert!(
        b["reasons"]
            .to_string()
            .contains("GitHub reviews unavailable"),
        "{b}"
    );
}

// ---------------------------------------------------------------- notifications

#[test]
fn notifications_reach_slack_teams_a_signed_webhook_and_github_statuses() {
    use common::receiver::{Answer, Receiver};
    let slack = Receiver::start(vec![], Answer::Status(200));
    let teams = Receiver::start(vec![], Answer::Status(200));
    // The webhook consumer fails alpha 2's first delivery: it is retried with the same id.
    let mut failed_once = false;
    let hook = Receiver::start_with(move |r| {
        if !failed_once && r.body.contains("alpha now runs 2") {
            failed_once = true;
            Answer::Status(503)
        } else {
            Answer::Status(200)
        }
    });
    let github = Receiver::start(vec![], Answer::Status(201));
    // A sink that never answers delays nothing else.
    let hang = Receiver::start(vec![], Answer::Hang);
    let policy = format!(
        "{POLICY}notifications:
  - on: [blocked]
    sink: {{slack: {{url_env: SLACK_URL}}}}
  - on: [deployed]
    environments: [production]
    sink: {{msteams: {{url_env: TEAMS_URL}}}}
  - on: [deployed]
    environments: [production]
    sink: {{webhook: {{url: \"{}/baton\", secret_env: HOOK_SECRET}}}}
  - on: [deployed, blocked]
    sink: {{github: {{repo: acme/registry, token_env: GH_STATUS_TOKEN}}}}
  - on: [\"*\"]
    sink: {{webhook: {{url: \"{}/never\"}}}}
",
        hook.url, hang.url
    );
    let f = Fixture::with_policy(&policy);
    let v = f.repo.baton(&["validate"]);
    assert_eq!(code(&v), 0, "{}{}", stdout(&v), stderr(&v));
    let d = Daemon::start(
        f.repo.path(),
        &f.state,
        &["--public-url", "https://baton.acme.internal"],
        &[
            ("SLACK_URL", &format!("{}/slack", slack.url)),
            ("TEAMS_URL", &format!("{}/teams", teams.url)),
            ("HOOK_SECRET", "s3cret"),
            ("GH_STATUS_TOKEN", "ghs_test"),
            ("GITHUB_API_URL", &github.url),
        ],
    );
    d.eventually("initial deploy", || {
        f.deployed("production", "alpha").as_deref() == Some("1")
    });

    // An approved promotion: `deployed` reaches Teams, the webhook and GitHub.
    f.repo.git(&["checkout", "-q", "-b", "promote-alpha"]);
    f.stage("alpha", "2", "production");
    f.stage("alpha", "1", "archived");
    f.repo.commit_all("promote alpha 2 to production");
    f.approve("alpha@2 -> production");
    f.repo.git(&["checkout", "-q", "main"]);
    f.repo.git(&[
        "merge",
        "-q",
        "--no-ff",
        "promote-alpha",
        "-m",
        "Merge promote-alpha",
    ]);
    let merge = f.repo.head();
    d.eventually("alpha 2 in production", || {
        f.deployed("production", "alpha").as_deref() == Some("2")
    });
    let deployed_alpha2 = |r: &common::receiver::Request| r.body.contains("alpha now runs 2");
    d.eventually("the webhook got alpha 2, after one retry", || {
        hook.requests()
            .iter()
            .filter(|r| deployed_alpha2(r))
            .count()
            == 2
    });
    let tries: Vec<_> = hook
        .requests()
        .into_iter()
        .filter(|r| deployed_alpha2(r))
        .collect();
    assert_eq!(
        tries[0].headers["x-baton-delivery"], tries[1].headers["x-baton-delivery"],
        "a retry keeps its delivery id"
    );
    let body = &tries[1];
    let expected = baton::daemon::webhook::sign(b"s3cret", body.body.as_bytes());
    assert_eq!(body.headers["x-baton-signature-256"], expected);
    let j = body.json();
    assert_eq!(j["kind"], "deployed");
    assert_eq!(j["environment"], "production");
    assert_eq!(j["commit"], merge.as_str());
    assert_eq!(j["link"], "https://baton.acme.internal/models/alpha");
    d.eventually("Teams got an Adaptive Card", || {
        teams.requests().iter().any(|r| {
            deployed_alpha2(r)
                && r.json()["attachments"][0]["contentType"]
                    == "application/vnd.microsoft.card.adaptive"
        })
    });
    let status_path = format!("/repos/acme/registry/statuses/{merge}");
    d.eventually("a success status on the landed commit", || {
        github.requests().iter().any(|r| {
            r.path == status_path
                && r.json()["state"] == "success"
                && r.json()["context"] == "baton/production"
                && r.headers["authorization"] == "Bearer ghs_test"
        })
    });

    // An unreviewed push: Slack hears `blocked` once, with the offending commit and a hint.
    f.stage("beta", "2", "production");
    f.stage("beta", "1", "archived");
    let pushed = f
        .repo
        .commit_all("push beta 2 to production without review");
    d.eventually("beta blocked on slack", || {
        slack.requests().iter().any(|r| r.body.contains("beta"))
    });
    // Many passes over the same blocked state.
    std::thread::sleep(Duration::from_millis(1500));
    let msgs: Vec<_> = slack
        .requests()
        .into_iter()
        .filter(|r| r.body.contains("blocked"))
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let text = msgs[0].json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains(&pushed[..12]), "{text}");
    assert!(
        text.contains("push beta 2 to production without review"),
        "{text}"
    );
    assert!(
        text.contains("baton approve beta 2 --stage production"),
        "{text}"
    );
    d.eventually("failure statuses on the offending commit", || {
        let path = format!("/repos/acme/registry/statuses/{pushed}");
        github
            .requests()
            .iter()
            .any(|r| r.path == path && r.json()["state"] == "failure")
    });
    // The sink's worker counts a delivery once the receiver's answer is back, just after the
    // receiver saw the request.
    let delivered = "baton_notifications_total{sink=\"slack\",result=\"delivered\"} 1";
    d.eventually("the slack delivery counted", || {
        d.get("/metrics").1.contains(delivered)
    });
    d.eventually("the hung sink tried", || !hang.requests().is_empty());
}
