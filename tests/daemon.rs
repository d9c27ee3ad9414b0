//! `baton serve` end to end: a real daemon process on a loopback port, watching a real git
//! repository (signed approvals made with ssh-keygen), deploying to a local target.

mod common;

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

    /// A signed, empty approval commit by alice (SPEC §3).
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

    /// The digest `current` points at, after checking the file hashes to its name.
    fn current_verified(&self, env: &str, model: &str) -> Option<String> {
        let dir = self.deploy_dir(env, model);
        let link = std::fs::read_link(dir.join("current")).ok()?;
        let name = link.file_name()?.to_string_lossy().into_owned();
        let bytes = std::fs::read(dir.join(&link)).ok()?;
        assert_eq!(
            sha(&bytes),
            name,
            "{env}/{model}: `current` points at a corrupt artifact"
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
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("daemon.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("BATON_WEBHOOK_SECRET")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
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

    fn status(&self) -> Value {
        serde_json::from_str(&self.get("/api/v1/status").1).unwrap()
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
    assert!(
        a["reasons"].to_string().contains("refused: sha256 is"),
        "{a}"
    );
    // Nothing half-written is left in the store.
    let store = f.deploy_dir("staging", "alpha").join("artifacts");
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

    // A re-pointed `current` (to beta's artifact copied in).
    let other = dir.join("artifacts").join(sha(b"beta one"));
    std::fs::write(&other, b"beta one").unwrap();
    std::os::unix::fs::symlink(
        Path::new("artifacts").join(sha(b"beta one")),
        dir.join("current.new"),
    )
    .unwrap();
    std::fs::rename(dir.join("current.new"), dir.join("current")).unwrap();
    settled(2, "current re-pointed back");

    // A modified artifact.
    let art = dir.join("artifacts").join(&good);
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
            .filter(|l| l.contains("\"kind\":\"health-failed\""))
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
    f.version("alpha", "100", "staging", &content(100));
    f.repo.commit_all("crash-test registry");
    assert_eq!(code(&f.once(&[])), 0);

    let mut rng = Rng(0x5eed_0fba_7000);
    for n in 101..151 {
        f.stage("alpha", &(n - 1).to_string(), "archived");
        f.version("alpha", &n.to_string(), "staging", &content(n));
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

        let old = sha(&content(n - 1));
        let new = sha(&content(n));
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
    let store = f.deploy_dir("staging", "alpha").join("artifacts");
    let names: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() <= 3, "old artifacts are collected: {names:?}");
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
    // alpha 2 needs beta 2 beside it (SPEC §1.1 `requires`).
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
