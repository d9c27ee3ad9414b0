//! The dashboard in a real headless Chromium, driven over the DevTools protocol
//! (`--remote-debugging-pipe`), against a real daemon process on a loopback port.
//!
//! Without `chromium` these tests are skipped (saying why), except under `CI=true`, where
//! they fail. Screenshots go to `$CARGO_TARGET_TMPDIR/dashboard/`.

use crate::common;

use common::{SshKey, TestRepo};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
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
"#;

/// A registry with models `alpha` and `beta` and alice's signing key (as in tests/daemon.rs).
struct Fixture {
    repo: TestRepo,
    _keys: tempfile::TempDir,
    alice: SshKey,
    state: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let repo = TestRepo::new();
        let keys = tempfile::tempdir().unwrap();
        let alice = SshKey::generate(keys.path(), "alice", "alice@acme.com");
        repo.write("baton.yaml", POLICY);
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

    fn version(&self, model: &str, v: &str, stage: &str, content: &[u8]) {
        let uri = format!("artifacts/{model}/{v}.bin");
        let p = self.repo.path().join(&uri);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self.repo.write(
            &format!("models/{model}/versions/{v}.yaml"),
            &format!(
                "model: {model}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {}\nmetrics:\n  auc: 0.9{v}\ncreated: 2026-11-01T10:00:00Z\n",
                sha(content)
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

    /// A signed, empty approval commit by alice.
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

    /// alpha 2 -> production by Mallory, with no approval: the daemon blocks it.
    fn unapproved_promotion(&self) -> String {
        self.stage("alpha", "2", "production");
        self.stage("alpha", "1", "archived");
        self.repo.git(&["add", "-A"]);
        self.repo.git_env(
            &[
                ("GIT_AUTHOR_NAME", "Mallory"),
                ("GIT_AUTHOR_EMAIL", "mallory@acme.com"),
            ],
            &["commit", "-q", "-m", "promote alpha 2 to production"],
        );
        self.repo.head()
    }

    /// alpha 2 -> production on a branch approved by alice, merged.
    fn approved_promotion(&self) {
        self.repo.git(&["checkout", "-q", "-b", "promote-alpha"]);
        self.stage("alpha", "2", "production");
        self.stage("alpha", "1", "archived");
        self.repo.commit_all("promote alpha 2 to production");
        self.approve("alpha@2 -> production");
        self.repo.git(&["checkout", "-q", "main"]);
        self.repo.git(&[
            "merge",
            "-q",
            "--no-ff",
            "promote-alpha",
            "-m",
            "Merge promote-alpha",
        ]);
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
    fn start(f: &Fixture, env: &[(&str, &str)]) -> Daemon {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("daemon.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--repo", f.repo.path().to_str().unwrap(), "serve"])
            .args(["--interval", "200ms", "--listen", "127.0.0.1:0"])
            .args(["--state-dir", f.state.to_str().unwrap()])
            .env_remove("BATON_WEBHOOK_SECRET")
            .env_remove("BATON_API_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
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
        d.eventually("ready", || d.get("/readyz", &[]).0 == 200);
        d
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// (status, headers we look at, body) of a GET that follows no redirect.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let (c, _, b) = self.get_full(path, headers);
        (c, b)
    }

    fn get_full(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, HashMap<String, String>, String) {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let mut req = agent.get(&self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return (0, HashMap::new(), e.to_string()),
        };
        let mut h = HashMap::new();
        for name in resp.headers_names() {
            h.insert(
                name.to_lowercase(),
                resp.header(&name).unwrap_or("").to_owned(),
            );
        }
        let code = resp.status();
        let body = if h
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            String::new()
        } else {
            resp.into_string().unwrap_or_default()
        };
        (code, h, body)
    }

    fn status(&self, headers: &[(&str, &str)]) -> Value {
        serde_json::from_str(&self.get("/api/v1/status", headers).1).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}\n--- daemon log ---\n{}",
            self.log()
        );
    }

    /// Every model of every environment synced, no holds.
    fn synced(&self, headers: &[(&str, &str)]) -> bool {
        let s = self.status(headers);
        s["ready"] == true
            && s["held"].as_array().is_some_and(|h| h.is_empty())
            && s["environments"].as_array().is_some_and(|es| {
                es.iter().all(|e| {
                    e["models"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|m| m["sync"] == "synced")
                })
            })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the browser

/// The Chromium binary, or why there is none. Under `CI=true` a missing one fails the test.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(name))
                    .find(|c| c.is_file())
            })
        });
    if found.is_none() {
        let msg = "chromium not found on PATH (Debian: apt-get install chromium)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}: the dashboard's browser tests must run in CI");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// Where screenshots are kept after the test (to look at them).
fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Headless Chromium driven over `--remote-debugging-pipe`: requests go to its fd 3 and
/// answers come from its fd 4, each a JSON message ended by a NUL byte.
struct Browser {
    child: Child,
    to: File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    /// Messages read while waiting for another answer (events are dropped).
    _profile: tempfile::TempDir,
}

/// One tab, attached with a flat session.
struct Tab {
    session: String,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

impl Browser {
    fn launch(bin: &Path) -> Browser {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        let (cmd_r, cmd_w) = pipe(); // we write commands, chromium reads fd 3
        let (ans_r, ans_w) = pipe(); // chromium writes fd 4, we read
        let mut cmd = Command::new(bin);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-pipe",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only dup2/fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move both ends above 10 first, so neither is clobbered by the other dup2.
                let a = libc::fcntl(cmd_r, libc::F_DUPFD, 10);
                let b = libc::fcntl(ans_w, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start chromium");
        // SAFETY: we own these descriptors; the child has its own copies.
        unsafe {
            libc::close(cmd_r);
            libc::close(ans_w);
        }
        // SAFETY: cmd_w and ans_r are open, ours, and each is owned by exactly one File.
        let to = unsafe { File::from_raw_fd(cmd_w) };
        // SAFETY: as above.
        let mut reader = BufReader::new(unsafe { File::from_raw_fd(ans_r) });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || loop {
            let mut buf = Vec::new();
            match reader.read_until(0, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    buf.pop();
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to,
            from: rx,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Send a DevTools command and wait for its answer's `result`.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer from chromium to {method}"));
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn open(&mut self, url: &str) -> Tab {
        let t = self.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = t["targetId"].as_str().unwrap().to_owned();
        let a = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        let tab = Tab {
            session: a["sessionId"].as_str().unwrap().to_owned(),
        };
        self.call(
            Some(&tab.session),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        self.goto(&tab, url);
        tab
    }

    fn goto(&mut self, tab: &Tab, url: &str) {
        self.call(Some(&tab.session), "Page.navigate", json!({ "url": url }));
        self.wait(tab, "page loaded", "document.readyState === 'complete'");
    }

    /// Evaluate `expr` in the page; its value as JSON.
    fn eval(&mut self, tab: &Tab, expr: &str) -> Value {
        let r = self.call(
            Some(&tab.session),
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Wait (in real time) until `expr` is true in the page.
    fn wait(&mut self, tab: &Tab, what: &str, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.eval(tab, expr) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let dom = self.dom(tab);
        panic!("timed out waiting for {what} ({expr})\n--- DOM ---\n{dom}");
    }

    /// The DOM after scripts ran.
    fn dom(&mut self, tab: &Tab) -> String {
        self.eval(tab, "document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the whole page (at most 2,400 px tall).
    fn screenshot(&mut self, tab: &Tab, path: &Path) {
        let m = self.call(Some(&tab.session), "Page.getLayoutMetrics", json!({}));
        let h = m["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(900.0)
            .min(2400.0);
        let r = self.call(
            Some(&tab.session),
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": 1280, "height": h, "scale": 1}}),
        );
        let png = base64_decode(r["data"].as_str().unwrap());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, &c| acc << 6 | val(c)) << (6 * (4 - chunk.len()));
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    out
}

/// The pipeline's rows as JSON: model, each cell's environment, versions and text, the hold.
const ROWS_JS: &str = r#"JSON.stringify(Array.from(document.querySelectorAll('tr[data-model]')).map(tr => ({
  model: tr.getAttribute('data-model'),
  cells: Array.from(tr.querySelectorAll('td[data-env]')).map(td => ({
    env: td.getAttribute('data-env'),
    versions: Array.from(td.querySelectorAll('.versions .ver')).map(v => v.textContent),
    text: td.textContent })),
  hold: tr.querySelector('.holdcell').textContent })))"#;

fn rows(b: &mut Browser, tab: &Tab) -> Vec<Value> {
    serde_json::from_str(b.eval(tab, ROWS_JS).as_str().unwrap()).unwrap()
}

fn cell<'a>(rows: &'a [Value], model: &str, env: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["model"] == model)
        .and_then(|r| {
            r["cells"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["env"] == env)
        })
        .unwrap_or_else(|| panic!("no cell {model}/{env} in {rows:?}"))
}

// ---------------------------------------------------------------- tests

#[test]
fn pipeline_and_model_pages_show_what_runs_a_blocked_reason_and_the_history() {
    let Some(bin) = chromium() else { return };
    let f = Fixture::new();
    let d = Daemon::start(&f, &[]);
    d.eventually("synced", || d.synced(&[]));
    let bad = f.unapproved_promotion();
    d.eventually("alpha blocked", || {
        d.status(&[])["held"].as_array().is_some_and(|h| {
            h.iter()
                .any(|x| x["model"] == "alpha" && x["kind"] == "blocked")
        })
    });
    let status = d.status(&[]);
    let reason = status["held"][0]["reasons"][0].as_str().unwrap().to_owned();

    let mut b = Browser::launch(&bin);
    let tab = b.open(&d.url("/"));
    b.wait(
        &tab,
        "the live stream",
        "document.body.getAttribute('data-live') === 'open'",
    );
    let dom = b.dom(&tab);
    for word in ["alpha", "beta", "staging", "production", "development"] {
        assert!(dom.contains(word), "{word} missing from the pipeline");
    }
    let r = rows(&mut b, &tab);
    assert_eq!(r.len(), 2, "{r:?}");
    // Every deployed version, from the daemon's own status, in its cell.
    for e in status["environments"].as_array().unwrap() {
        for m in e["models"].as_array().unwrap() {
            let c = cell(
                &r,
                m["model"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
            );
            let want: Vec<Value> = m["deployed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].clone())
                .collect();
            assert_eq!(c["versions"].as_array().unwrap(), &want, "{c}");
            assert!(c["text"]
                .as_str()
                .unwrap()
                .contains(m["sync"].as_str().unwrap()));
        }
    }
    assert_eq!(cell(&r, "alpha", "production")["versions"], json!(["1"]));
    assert_eq!(cell(&r, "alpha", "development")["versions"], json!(["3"]));
    let hold = r.iter().find(|x| x["model"] == "alpha").unwrap()["hold"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(hold.contains("blocked"), "{hold}");
    assert!(
        hold.contains(&reason),
        "the located reason {reason:?} in {hold:?}"
    );
    assert!(hold.contains(&bad[..10]), "offending commit in {hold:?}");
    assert!(hold.contains("Mallory"), "its author in {hold:?}");
    assert!(r.iter().find(|x| x["model"] == "beta").unwrap()["hold"] == "none");
    b.screenshot(&tab, &shots_dir().join("pipeline.png"));

    // The model page: the audit trail with commit ids and what became of each transition.
    b.goto(&tab, &d.url("/models/alpha"));
    b.wait(
        &tab,
        "the live stream",
        "document.body.getAttribute('data-live') === 'open'",
    );
    let trail: Vec<Value> = serde_json::from_str(
        b.eval(
            &tab,
            r#"JSON.stringify(Array.from(document.querySelectorAll('table.trail tbody tr')).map(tr => ({
                commit: tr.getAttribute('data-commit'),
                cells: Array.from(tr.cells).map(c => c.textContent) })))"#,
        )
        .as_str()
        .unwrap(),
    )
    .unwrap();
    let first = f.repo.git(&["rev-list", "--max-parents=0", "HEAD"]);
    let row = |commit: &str, version: &str| {
        trail
            .iter()
            .find(|t| t["commit"] == commit && t["cells"][2] == version)
            .unwrap_or_else(|| panic!("no row {commit} {version} in {trail:?}"))
    };
    let blocked = row(&bad, "2");
    assert_eq!(blocked["cells"][1], json!(bad[..10]));
    assert_eq!(blocked["cells"][3], "staging → production");
    assert!(blocked["cells"][4].as_str().unwrap().contains("Mallory"));
    assert!(
        blocked["cells"][6].as_str().unwrap().contains("blocked"),
        "{blocked}"
    );
    let registered = row(&first, "1");
    assert_eq!(registered["cells"][3], "(new) → production");
    assert!(
        registered["cells"][6]
            .as_str()
            .unwrap()
            .contains("deployed to production"),
        "{registered}"
    );
    assert_eq!(
        trail.len(),
        5,
        "3 registrations and the 2 moves of the promotion: {trail:?}"
    );
    let dom = b.dom(&tab);
    assert!(dom.contains("Versions along the stages"));
    assert!(
        dom.contains(&sha(b"alpha two")),
        "artifact digest of version 2"
    );
    assert!(dom.contains("baton rollback alpha --env production --commit"));
    b.screenshot(&tab, &shots_dir().join("model.png"));
}

#[test]
fn events_arrive_on_the_stream_and_the_pages_update_without_reload() {
    let Some(bin) = chromium() else { return };
    let f = Fixture::new();
    let d = Daemon::start(&f, &[]);
    d.eventually("synced", || d.synced(&[]));

    // A plain client of the stream, reading it line by line.
    let (code, h, _) = d.get_full("/api/v1/events/stream", &[]);
    assert_eq!(code, 200);
    assert!(h["content-type"].starts_with("text/event-stream"), "{h:?}");
    let resp = ureq::get(&d.url("/api/v1/events/stream")).call().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(resp.into_reader())
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                return;
            }
        }
    });

    let mut b = Browser::launch(&bin);
    let events = b.open(&d.url("/events"));
    b.wait(
        &events,
        "the live stream",
        "document.body.getAttribute('data-live') === 'open'",
    );
    let pipeline = b.open(&d.url("/"));
    b.wait(
        &pipeline,
        "the live stream",
        "document.body.getAttribute('data-live') === 'open'",
    );
    // Marks that a reload would wipe.
    for t in [&events, &pipeline] {
        b.eval(t, "window.__noReload = 42");
    }
    assert_eq!(
        cell(&rows(&mut b, &pipeline), "alpha", "production")["versions"],
        json!(["1"])
    );

    f.approved_promotion();

    // The stream says it: `data: <event JSON>` of alpha's deploy.
    let deadline = Instant::now() + Duration::from_secs(30);
    let deployed = loop {
        let l = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a deployed event on the stream");
        if let Some(data) = l.strip_prefix("data: ") {
            let Ok(e) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if e["kind"] == "deployed" && e["model"] == "alpha" {
                break e;
            }
        }
    };
    assert_eq!(deployed["environment"], "production");
    assert_eq!(deployed["version"], "2");

    // The events page prepends it; the pipeline's row shows alpha 2 in production.
    b.wait(
        &events,
        "the deployed event in the table",
        "Array.from(document.querySelectorAll('#events tbody tr[data-kind=deployed]')).some(tr => tr.textContent.includes('alpha') && tr.textContent.includes('production'))",
    );
    b.wait(
        &pipeline,
        "alpha 2 in production on the pipeline",
        "(() => { const td = document.querySelector('tr[data-model=alpha] td[data-env=production]'); return !!td && Array.from(td.querySelectorAll('.versions .ver')).map(v => v.textContent).join() === '2'; })()",
    );
    for t in [&events, &pipeline] {
        assert_eq!(
            b.eval(t, "window.__noReload"),
            json!(42),
            "the page was not reloaded"
        );
    }
    let first_row = b.eval(
        &events,
        "document.querySelector('#events tbody tr').getAttribute('data-kind')",
    );
    assert!(first_row.is_string(), "{first_row}");
    b.screenshot(&events, &shots_dir().join("events.png"));
}

#[test]
fn with_a_token_the_pages_and_the_stream_need_it() {
    let token = "dash-s3cret";
    let f = Fixture::new();
    let d = Daemon::start(&f, &[("BATON_API_TOKEN", token)]);
    let bearer = format!("Bearer {token}");
    let auth: &[(&str, &str)] = &[("Authorization", &bearer)];
    d.eventually("synced", || d.synced(auth));
    for path in [
        "/",
        "/models/alpha",
        "/events",
        "/api/v1/events/stream",
        "/?token=wrong",
    ] {
        let (code, h, body) = d.get_full(path, &[]);
        assert_eq!(code, 401, "{path}: {body}");
        assert_eq!(
            h.get("www-authenticate").map(String::as_str),
            Some("Bearer"),
            "{path}"
        );
        assert!(!body.contains("alpha"), "{path} leaks the registry: {body}");
    }
    // The static files are the same for everyone.
    assert_eq!(d.get("/static/dashboard.css", &[]).0, 200);
    let (code, body) = d.get("/", auth);
    assert_eq!(code, 200);
    assert!(body.contains("data-model=\"alpha\""));
    // ?token= sets a session cookie (not the token itself) and drops the token from the URL.
    let (code, h, _) = d.get_full(&format!("/?q=alp&token={token}"), &[]);
    assert_eq!(code, 303);
    assert_eq!(h["location"], "/?q=alp");
    let set = &h["set-cookie"];
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(token), "{set}");
    let session = set.split(';').next().unwrap().to_owned();
    let (code, body) = d.get("/?q=alp", &[("Cookie", &session)]);
    assert_eq!(code, 200);
    assert!(body.contains("data-model=\"alpha\"") && !body.contains("data-model=\"beta\""));
    assert_eq!(d.get("/models/alpha", &[("Cookie", &session)]).0, 200);
    assert_eq!(d.get("/", &[("Cookie", "baton_session=forged")]).0, 401);
    // The cookie is the dashboard's, not the API's.
    assert_eq!(d.get("/api/v1/status", &[("Cookie", &session)]).0, 401);
    let (code, h, _) = d.get_full(&format!("/api/v1/events/stream?token={token}"), &[]);
    assert_eq!(code, 200);
    assert!(h["content-type"].starts_with("text/event-stream"));

    // A browser opening the link once keeps working, the stream included.
    let Some(bin) = chromium() else { return };
    let mut b = Browser::launch(&bin);
    let tab = b.open(&d.url(&format!("/?token={token}")));
    b.wait(
        &tab,
        "the live stream",
        "document.body.getAttribute('data-live') === 'open'",
    );
    assert_eq!(b.eval(&tab, "location.search"), json!(""));
    let r = rows(&mut b, &tab);
    assert_eq!(cell(&r, "beta", "production")["versions"], json!(["1"]));
}

#[test]
fn filters_paging_and_static_files_are_served_by_the_daemon() {
    let f = Fixture::new();
    let d = Daemon::start(&f, &[]);
    d.eventually("synced", || d.synced(&[]));
    let (code, body) = d.get("/?q=BET", &[]);
    assert_eq!(code, 200);
    assert!(body.contains("data-model=\"beta\"") && !body.contains("data-model=\"alpha\""));
    let (_, body) = d.get("/?env=staging", &[]);
    assert!(
        body.contains("data-column=\"staging\"") && !body.contains("data-column=\"production\"")
    );
    let (_, body) = d.get("/?sync=blocked", &[]);
    assert!(body.contains("No model matches"), "{body}");
    let (_, body) = d.get("/?sync=synced&page=7", &[]);
    assert!(body.contains("Models 1 to 2 of 2 matching"), "{body}");
    // The fragment the live update swaps in is the rows alone.
    let (_, frag) = d.get("/?q=alpha&fragment=rows", &[]);
    assert!(frag.starts_with("<p class=\"count\""), "{frag}");
    assert!(!frag.contains("<html"));
    assert_eq!(d.get("/models/nope", &[]).0, 404);
    assert_eq!(d.get("/models/..%2Fetc", &[]).0, 404);
    let (_, runs) = d.get("/models/alpha?fragment=runs", &[]);
    assert!(runs.starts_with("<table class=\"runs\""), "{runs}");

    let (code, h, js) = d.get_full("/static/dashboard.js", &[]);
    assert_eq!(code, 200);
    assert!(h["content-type"].starts_with("text/javascript"));
    assert!(h["cache-control"].contains("max-age"));
    assert!(js.contains("EventSource"));
    let (code, _, _) = d.get_full("/static/dashboard.js", &[("If-None-Match", &h["etag"])]);
    assert_eq!(code, 304);
    assert_eq!(d.get("/static/../Cargo.toml", &[]).0, 404);
    let (_, h, page) = d.get_full("/", &[]);
    assert!(h["content-security-policy"].contains("script-src 'self'"));
    assert!(!page.contains("<script>"), "no inline script");
    // Escaped, never raw: a hostile query string comes back as text.
    let (_, page) = d.get("/?q=%3Cscript%3Ealert(1)%3C/script%3E", &[]);
    assert!(
        page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"));
    let mut buf = Vec::new();
    File::open(f.state.join("events.jsonl"))
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    assert!(!buf.is_empty());
}
