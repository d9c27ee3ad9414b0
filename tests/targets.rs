//! The `webhook` and `command` targets end to end: a real daemon process deploying to an HTTP
//! receiver on loopback (a std `TcpListener` thread) and to shell scripts.

use crate::common;

use common::TestRepo;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "deployer-s3cret";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// HMAC-SHA256 computed here, independently of baton's own signing code.
fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------- receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// When it arrived.
    at: Instant,
}

impl Request {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// True when `X-Baton-Signature-256` is the HMAC of what was signed: the body of a POST,
    /// the timestamp of a GET.
    fn signed(&self) -> bool {
        let signed: &[u8] = if self.method == "GET" {
            self.header("x-baton-timestamp").as_bytes()
        } else {
            &self.body
        };
        self.header("x-baton-signature-256") == format!("sha256={}", hmac_hex(SECRET, signed))
    }
}

/// What the receiver does: POST statuses to answer in turn (then 200), and, like a deployer,
/// the release it runs per model (what `GET /observe` reports) after each 2xx POST.
#[derive(Default)]
struct Behaviour {
    statuses: VecDeque<u16>,
    /// Answer every POST with this status once `statuses` is empty (200 when `None`).
    always: Option<u16>,
    running: BTreeMap<String, Value>,
}

struct Receiver {
    addr: String,
    requests: Arc<Mutex<Vec<Request>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let (reqs, beh) = (requests.clone(), behaviour.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (reqs, beh) = (reqs.clone(), beh.clone());
                std::thread::spawn(move || serve(conn, &reqs, &beh));
            }
        });
        Receiver {
            addr,
            requests,
            behaviour,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn posts(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

fn serve(conn: TcpStream, reqs: &Mutex<Vec<Request>>, beh: &Mutex<Behaviour>) {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    let req = Request {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    };
    let (status, answer) = {
        let mut b = beh.lock().unwrap();
        if req.method == "GET" {
            (200, json!({"models": b.running}).to_string())
        } else {
            let status = b.statuses.pop_front().or(b.always).unwrap_or(200);
            if (200..300).contains(&status) {
                let v = req.json();
                let model = v["model"].as_str().unwrap().to_owned();
                if v["action"] == "undeploy" {
                    b.running.remove(&model);
                } else {
                    b.running.insert(model, v);
                }
            }
            (status, format!("answer {status}"))
        }
    };
    reqs.lock().unwrap().push(req);
    let mut w = conn;
    let _ = write!(
        w,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

// ---------------------------------------------------------------- registry and daemon

/// A registry whose `production` environment deploys with `target`: model `alpha` with
/// version 1 in production (metrics: auc) and 2 in staging.
struct Fixture {
    repo: TestRepo,
    state: PathBuf,
}

impl Fixture {
    fn new(target: &str) -> Fixture {
        let repo = TestRepo::new();
        repo.write(
            "baton.yaml",
            &format!(
                "version: 1\nstages:\n  - name: development\n  - name: staging\n  - name: production\n  - name: archived\n    terminal: true\nenvironments:\n  production:\n    stage: production\n    target: {target}\n"
            ),
        );
        repo.write(
            "models/alpha/model.yaml",
            "name: alpha\ndescription: test model\nowners: [alice@acme.com]\n",
        );
        let f = Fixture {
            state: repo.path().join(".git/baton"),
            repo,
        };
        f.version("1", "production", b"alpha one");
        f.version("2", "staging", b"alpha two");
        f.repo.commit_all("registry with alpha");
        f
    }

    fn version(&self, v: &str, stage: &str, content: &[u8]) {
        let uri = format!("artifacts/alpha/{v}.bin");
        self.repo.write(&uri, std::str::from_utf8(content).unwrap());
        self.repo.write(
            &format!("models/alpha/versions/{v}.yaml"),
            &format!(
                "model: alpha\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {}\nmetrics:\n  auc: 0.9{v}\ncreated: 2026-11-01T10:00:00Z\n",
                sha(content)
            ),
        );
    }

    /// Move version `v` of alpha to `stage` and commit.
    fn move_to(&self, moves: &[(&str, &str)]) -> String {
        for (v, stage) in moves {
            let rel = format!("models/alpha/versions/{v}.yaml");
            let s = self.repo.read(&rel);
            let line = s.lines().find(|l| l.starts_with("stage: ")).unwrap();
            self.repo.edit(&rel, line, &format!("stage: {stage}"));
        }
        self.repo.commit_all("move alpha")
    }

    fn start(&self, env: &[(&str, &str)]) -> Daemon {
        Daemon::start(self.repo.path(), &self.state, env)
    }

    /// The record the target keeps of alpha in production.
    fn record(&self) -> Option<Value> {
        let b = std::fs::read(self.state.join("targets/production/alpha.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// alpha in production as `baton status --state-dir` (read-only, no secret) shows it.
    fn status_alpha(&self) -> Value {
        let out = self.repo.baton(&[
            "--format",
            "json",
            "status",
            "--state-dir",
            self.state.to_str().unwrap(),
        ]);
        assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
        let s: Value = serde_json::from_str(&common::stdout(&out)).unwrap();
        s["environments"][0]["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == "alpha")
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn recorded_version(&self) -> Option<String> {
        Some(self.record()?["version"].as_str()?.to_owned())
    }
}

struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Daemon {
    fn start(repo: &Path, state: &Path, env: &[(&str, &str)]) -> Daemon {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("daemon.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("--repo")
            .arg(repo)
            .args(["serve", "--interval", "200ms", "--listen", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(state)
            .env_remove("BATON_WEBHOOK_SECRET")
            .env_remove("BATON_API_TOKEN")
            .env_remove("DEPLOYER_SECRET")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start baton serve");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "daemon did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
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

    fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("http://{}{path}", self.addr)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// alpha in production as `/api/v1/status` shows it.
    fn alpha(&self) -> Value {
        let s: Value = serde_json::from_str(&self.get("/api/v1/status").1).unwrap();
        s["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "production")
            .and_then(|e| {
                e["models"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["model"] == "alpha")
                    .cloned()
            })
            .unwrap_or(Value::Null)
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

    /// The daemon is alive and its controller answers.
    fn assert_running(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "{}", self.log());
        assert_eq!(self.get("/healthz").0, 200, "{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn webhook_target(r: &Receiver, observe: bool) -> String {
    let observe = if observe {
        format!(", observe_url: \"{}\"", r.url("/observe"))
    } else {
        String::new()
    };
    format!(
        "{{kind: webhook, url: \"{}\", secret_env: DEPLOYER_SECRET, timeout: 5s{observe}}}",
        r.url("/deploy")
    )
}

/// True once `pid` is gone or a zombie.
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

// ---------------------------------------------------------------- webhook

#[test]
fn webhook_posts_signed_releases_retries_a_503_with_the_same_delivery_and_undeploys() {
    let r = Receiver::start(Behaviour {
        statuses: [503].into(),
        ..Behaviour::default()
    });
    let f = Fixture::new(&webhook_target(&r, false));
    let head = f.repo.head();
    let mut d = f.start(&[("DEPLOYER_SECRET", SECRET)]);
    d.eventually("alpha@1 synced", || d.alpha()["sync"] == "synced");

    let posts = r.posts();
    assert_eq!(posts.len(), 2, "the 503, then the retry: {posts:?}");
    for p in &posts {
        assert!(p.signed(), "bad signature: {p:?}");
        assert_eq!(p.path, "/deploy");
        assert_eq!(p.header("content-type"), "application/json");
        assert_eq!(
            p.header("user-agent"),
            format!("baton/{}", env!("CARGO_PKG_VERSION"))
        );
        let ts: i64 = p.header("x-baton-timestamp").parse().unwrap();
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 120, "{ts}");
        assert_eq!(p.json()["timestamp"], ts, "the signed body carries it");
        assert_eq!(p.json()["delivery"], p.header("x-baton-delivery"));
    }
    let id = posts[0].header("x-baton-delivery").to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(
        posts[1].header("x-baton-delivery"),
        id,
        "a retry is the same delivery"
    );
    let gap = posts[1].at - posts[0].at;
    assert!(
        gap >= Duration::from_millis(450),
        "backoff before the retry: {gap:?}"
    );
    eprintln!("retry after a 503 came {gap:?} later");

    let body = posts[1].json();
    assert_eq!(body["action"], "deploy");
    assert_eq!(body["environment"], "production");
    assert_eq!(body["model"], "alpha");
    assert_eq!(body["commit"], head);
    assert_eq!(body["previous"], Value::Null);
    let v = &body["versions"][0];
    assert_eq!(v["version"], "1");
    assert_eq!(v["traffic"], 100);
    assert_eq!(v["primary"], true);
    assert_eq!(v["metrics"], json!({"auc": 0.91}));
    assert_eq!(
        v["artifact"],
        json!({"uri": "artifacts/alpha/1.bin", "sha256": sha(b"alpha one"), "size": null, "format": null})
    );
    assert_eq!(f.recorded_version().as_deref(), Some("1"));
    let st = f.status_alpha();
    assert_eq!(st["deployed"][0]["version"], "1", "{st}");
    assert_eq!(st["sync"], "synced", "{st}");

    // A promotion: the body names what ran before; a new switch is a new delivery.
    f.move_to(&[("1", "archived"), ("2", "production")]);
    d.eventually("alpha@2 recorded", || {
        f.recorded_version().as_deref() == Some("2")
    });
    let last = r.posts().pop().unwrap();
    assert!(last.signed());
    assert_ne!(last.header("x-baton-delivery"), id);
    let body = last.json();
    assert_eq!(body["versions"][0]["version"], "2");
    assert_eq!(body["previous"]["versions"][0]["version"], "1");
    assert_eq!(body["previous"]["commit"], head);
    d.eventually("alpha@2 synced", || d.alpha()["sync"] == "synced");

    // Leaving production: an undeploy POST, and the record goes.
    f.move_to(&[("2", "archived")]);
    d.eventually("the record removed", || f.record().is_none());
    let last = r.posts().pop().unwrap();
    assert!(last.signed());
    let body = last.json();
    assert_eq!(body["action"], "undeploy");
    assert_eq!(body["model"], "alpha");
    assert_eq!(body["versions"], json!([]));
    assert_eq!(body["previous"]["versions"][0]["version"], "2");
    d.eventually("alpha gone from status", || d.alpha().is_null());
    d.assert_running();
}

#[test]
fn webhook_401_fails_the_switch_at_once_and_the_daemon_keeps_running() {
    let r = Receiver::start(Behaviour {
        always: Some(401),
        ..Behaviour::default()
    });
    let f = Fixture::new(&webhook_target(&r, false));
    let mut d = f.start(&[("DEPLOYER_SECRET", SECRET)]);
    d.eventually("the failure in status", || {
        d.alpha()["reasons"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|x| x.as_str().unwrap_or("").contains("401")))
    });
    let alpha = d.alpha();
    assert_eq!(alpha["sync"], "out-of-sync", "{alpha}");
    let reason = alpha["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("refused the deploy: HTTP 401: answer 401 (not retried)"),
        "{reason}"
    );
    assert_eq!(alpha["deployed"], json!([]));
    assert!(f.record().is_none(), "nothing recorded");
    // Never retried within a switch: every POST is its own delivery (later passes retry).
    let posts = r.posts();
    let ids: std::collections::BTreeSet<&str> =
        posts.iter().map(|p| p.header("x-baton-delivery")).collect();
    assert_eq!(ids.len(), posts.len(), "{posts:?}");
    d.assert_running();
}

#[test]
fn webhook_without_its_secret_refuses_to_build_and_says_why() {
    let r = Receiver::start(Behaviour::default());
    let f = Fixture::new(&webhook_target(&r, false));
    let mut d = f.start(&[]);
    d.eventually("the refusal in the log", || {
        d.log()
            .contains("DEPLOYER_SECRET (target.secret_env) is not set")
    });
    assert!(r.requests().is_empty(), "nothing sent unsigned");
    d.assert_running();
}

#[test]
fn webhook_observe_url_reports_drift_and_baton_posts_the_release_again() {
    let r = Receiver::start(Behaviour::default());
    let f = Fixture::new(&webhook_target(&r, true));
    let mut d = f.start(&[("DEPLOYER_SECRET", SECRET)]);
    d.eventually("alpha@1 synced", || d.alpha()["sync"] == "synced");
    assert_eq!(r.posts().len(), 1);
    let gets: Vec<Request> = r
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET")
        .collect();
    assert!(!gets.is_empty());
    for g in &gets {
        assert_eq!(g.path, "/observe");
        assert!(g.signed(), "GET signed over its timestamp: {g:?}");
    }

    // Someone moves the receiver to another build by hand: drift, repaired by a new POST.
    {
        let mut b = r.behaviour.lock().unwrap();
        let alpha = b.running.get_mut("alpha").unwrap();
        alpha["versions"][0]["artifact"]["sha256"] = json!("0".repeat(64));
    }
    d.eventually("a second POST", || r.posts().len() >= 2);
    let again = r.posts()[1].json();
    assert_eq!(again["action"], "deploy");
    assert_eq!(
        again["versions"][0]["artifact"]["sha256"],
        sha(b"alpha one")
    );
    d.eventually("the drift named in the log", || {
        d.log().contains("the receiver runs 1 of alpha")
    });
    d.eventually("synced again", || d.alpha()["sync"] == "synced");

    // The receiver forgets the model: drift too.
    r.behaviour.lock().unwrap().running.clear();
    d.eventually("a third POST", || r.posts().len() >= 3);
    d.eventually("synced again", || d.alpha()["sync"] == "synced");
    d.assert_running();
}

// ---------------------------------------------------------------- command

/// Write an executable script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn command_target_runs_apply_with_the_release_in_env_and_stdin() {
    let out = tempfile::tempdir().unwrap();
    let f = Fixture::new("{kind: command, apply: ./deploy.sh, timeout: 30s}");
    // A relative `apply` runs in the state dir.
    std::fs::create_dir_all(&f.state).unwrap();
    script(
        &f.state.join("deploy.sh"),
        &format!(
            "set -e\nd={}\nn=$(ls \"$d\" | grep -c '[.]env$' || true)\nenv > \"$d/$n.env\"\npwd >> \"$d/$n.env\"\ncat > \"$d/$n.json.tmp\"\nmv \"$d/$n.json.tmp\" \"$d/$n.json\"",
            out.path().display()
        ),
    );
    let head = f.repo.head();
    let mut d = f.start(&[]);
    d.eventually("alpha@1 synced", || d.alpha()["sync"] == "synced");

    let env = |n: usize| -> BTreeMap<String, String> {
        std::fs::read_to_string(out.path().join(format!("{n}.env")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect()
    };
    let e = env(0);
    assert_eq!(e["BATON_ENV"], "production");
    assert_eq!(e["BATON_MODEL"], "alpha");
    assert_eq!(e["BATON_VERSION"], "1");
    assert_eq!(e["BATON_SHA256"], sha(b"alpha one"));
    assert_eq!(e["BATON_ACTION"], "deploy");
    assert_eq!(e["BATON_TRAFFIC"], r#"{"1":100}"#);
    assert_eq!(e["BATON_ARTIFACT_URI"], "artifacts/alpha/1.bin");
    assert_eq!(e["BATON_COMMIT"], head);
    assert_artifact(&e["BATON_ARTIFACT"], b"alpha one");
    let pwd = std::fs::read_to_string(out.path().join("0.env")).unwrap();
    assert_eq!(
        pwd.lines().last().unwrap(),
        f.state.canonicalize().unwrap().to_str().unwrap()
    );
    let stdin: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("0.json")).unwrap()).unwrap();
    assert_eq!(stdin["action"], "deploy");
    assert_eq!(stdin["environment"], "production");
    assert_eq!(stdin["model"], "alpha");
    assert_eq!(stdin["commit"], head);
    assert_eq!(stdin["previous"], Value::Null);
    assert_eq!(stdin["versions"][0]["version"], "1");
    assert_eq!(stdin["versions"][0]["metrics"], json!({"auc": 0.91}));
    assert_eq!(
        stdin["versions"][0]["artifact"]["sha256"],
        sha(b"alpha one")
    );
    assert!(stdin.get("delivery").is_none());
    // The daemon staged the verified build for it (docs/targets.md#command).
    let staged = f
        .state
        .join("targets/production/releases")
        .join(sha(b"alpha one"))
        .join("1.bin");
    assert_eq!(e["BATON_ARTIFACT"], staged.to_str().unwrap());
    assert_eq!(
        stdin["versions"][0]["artifact"]["path"],
        e["BATON_ARTIFACT"]
    );
    let rec = f.record().unwrap();
    assert_eq!(rec["version"], "1");
    assert_eq!(rec["sha256"], sha(b"alpha one"));
    assert_eq!(f.status_alpha()["deployed"][0]["version"], "1");

    // Promote, then undeploy: the script is told which.
    f.move_to(&[("1", "archived"), ("2", "production")]);
    d.eventually("alpha@2 recorded", || {
        f.recorded_version().as_deref() == Some("2")
    });
    let e = env(1);
    assert_eq!(e["BATON_VERSION"], "2");
    let stdin: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("1.json")).unwrap()).unwrap();
    assert_eq!(stdin["previous"]["versions"][0]["version"], "1");

    f.move_to(&[("2", "archived")]);
    d.eventually("the record removed", || f.record().is_none());
    let e = env(2);
    assert_eq!(e["BATON_ACTION"], "undeploy");
    assert_eq!(e["BATON_VERSION"], "2", "what is being removed");
    assert_eq!(e["BATON_TRAFFIC"], "{}");
    d.eventually("alpha gone from status", || d.alpha().is_null());
    d.assert_running();
}

/// `BATON_ARTIFACT` is the artifact: a path holding its bytes.
fn assert_artifact(artifact: &str, content: &[u8]) {
    let bytes = std::fs::read(artifact).unwrap_or_else(|e| panic!("{artifact}: {e}"));
    assert_eq!(bytes, content, "{artifact}");
}

#[test]
fn command_that_fails_fails_the_switch_and_the_previous_record_stays() {
    let f = Fixture::new(
        "{kind: command, apply: 'if [ \"$BATON_VERSION\" = 2 ]; then echo cannot deploy 2 >&2; exit 3; fi', timeout: 30s}",
    );
    let mut d = f.start(&[]);
    d.eventually("alpha@1 synced", || d.alpha()["sync"] == "synced");
    f.move_to(&[("1", "archived"), ("2", "production")]);
    d.eventually("the failure in status", || {
        d.alpha()["reasons"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|x| x.as_str().unwrap_or("").contains("exited with 3"))
        })
    });
    let alpha = d.alpha();
    assert_eq!(alpha["sync"], "out-of-sync");
    assert!(
        alpha["reasons"][0]
            .as_str()
            .unwrap()
            .contains("alpha: apply command exited with 3: cannot deploy 2"),
        "{alpha}"
    );
    assert_eq!(alpha["deployed"][0]["version"], "1", "{alpha}");
    assert_eq!(f.recorded_version().as_deref(), Some("1"));
    d.assert_running();
}

#[test]
fn command_past_its_timeout_is_killed_with_everything_it_started() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display();
    let f = Fixture::new(&format!(
        "{{kind: command, apply: 'sleep 1000 & echo $! >> {o}/pids; echo $$ >> {o}/pids; sleep 1000', timeout: 1s}}"
    ));
    let started = Instant::now();
    let mut d = f.start(&[]);
    d.eventually("the timeout in status", || {
        d.alpha()["reasons"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|x| x.as_str().unwrap_or("").contains("timed out after 1s"))
        })
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(25), "{took:?}");
    eprintln!("daemon start to the 1 s timeout in status: {took:?}");
    // Every run so far (later passes try again): the shell and its background child.
    let pids = std::fs::read_to_string(out.path().join("pids")).unwrap();
    let pids: Vec<&str> = pids.lines().collect();
    assert!(pids.len() >= 2, "{pids:?}");
    for pid in &pids[..2] {
        assert!(dead(pid), "{pid} outlived the timeout");
    }
    for pid in &pids {
        d.eventually(&format!("{pid} gone"), || dead(pid));
    }
    assert!(f.record().is_none());
    d.assert_running();
}
