//! Live verification against a real Prometheus (docs/verification.md): a daemon process, a
//! Prometheus scraping a tiny exporter the test controls, containment and the revert in git.

use crate::common;

use common::TestRepo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- Prometheus and exporter

/// `/metrics` text served on loopback; the test changes it.
struct Exporter {
    port: u16,
    text: Arc<Mutex<String>>,
}

impl Exporter {
    fn start(text: &str) -> Exporter {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let text = Arc::new(Mutex::new(text.to_owned()));
        let t = text.clone();
        std::thread::spawn(move || {
            for mut s in l.incoming().map_while(Result::ok) {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = t.lock().unwrap().clone();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Exporter { port, text }
    }

    fn set(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_owned();
    }
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus scraping `exporter` every second; `None` (skip) when not installed,
/// a failure under `CI=true`.
fn prometheus(exporter: &Exporter) -> Option<Prometheus> {
    let bin = Path::new("/usr/bin/prometheus");
    if !bin.exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("/usr/bin/prometheus is missing (CI=true): install Debian's prometheus package");
        }
        eprintln!("skipping: /usr/bin/prometheus is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            exporter.port
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let p = Prometheus {
        child,
        port,
        _dir: dir,
    };
    // Ready, and the exporter scraped at least once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query=up");
        if let Ok(r) = ureq::get(&url).call() {
            let v: Value = r.into_json().unwrap_or_default();
            if v["data"]["result"][0]["value"][1] == "1" {
                return Some(p);
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape the exporter"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- registry and daemon

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn policy(address: &str, count: u32, errors: u32) -> String {
    format!(
        r#"version: 1
stages:
  - name: development
  - name: staging
  - name: production
    canary: true
    verify:
      provider: {{prometheus: {{address: "{address}"}}}}
      interval: 1s
      count: {count}
      failure_limit: 0
      consecutive_error_limit: {errors}
      metrics:
        - name: error-rate
          query: max(errors_ratio{{model="{{{{model}}}}",version="{{{{version}}}}"}})
          max: 0.1
      on_failure: rollback
      rollback: {{mode: push}}
  - name: archived
    terminal: true
rollback:
  approvals: 0
environments:
  production:
    stage: production
    target: {{kind: local, path: production}}
"#
    )
}

struct Fixture {
    repo: TestRepo,
    state: PathBuf,
}

impl Fixture {
    fn new(policy: &str) -> Fixture {
        let repo = TestRepo::new();
        repo.write("baton.yaml", policy);
        repo.write(
            "models/alpha/model.yaml",
            "name: alpha\ndescription: test\nowners: [alice@acme.com]\n",
        );
        let f = Fixture {
            state: repo.path().join(".git/baton"),
            repo,
        };
        f.version("1", "production", None);
        f.version("2", "staging", None);
        f.repo.commit_all("registry with alpha");
        f
    }

    fn version(&self, v: &str, stage: &str, traffic: Option<u32>) {
        let content = format!("alpha {v}");
        let uri = format!("artifacts/alpha/{v}.bin");
        self.repo.write(&uri, &content);
        let t = traffic
            .map(|t| format!("traffic: {t}\n"))
            .unwrap_or_default();
        self.repo.write(
            &format!("models/alpha/versions/{v}.yaml"),
            &format!(
                "model: alpha\nversion: \"{v}\"\nstage: {stage}\n{t}artifact:\n  uri: {uri}\n  sha256: {}\ncreated: 2026-11-01T10:00:00Z\n",
                sha(content.as_bytes())
            ),
        );
    }

    /// Promote alpha 2 to production as a 10% canary; returns the commit.
    fn canary(&self) -> String {
        self.version("2", "production", Some(10));
        self.repo.commit_all("promote alpha 2 to production (10%)")
    }

    fn start(&self) -> Daemon {
        Daemon::start(self.repo.path(), &self.state, &[])
    }

    /// Commits on main carrying `Baton-Rollback-Of: <sha>`.
    fn reverts_of(&self, sha: &str) -> Vec<String> {
        let log = self.repo.git(&[
            "log",
            "--first-parent",
            "--format=%H %(trailers:key=Baton-Rollback-Of,valueonly,separator=%x2C)",
            "main",
        ]);
        log.lines()
            .filter(|l| l.split_once(' ').is_some_and(|(_, t)| t.trim() == sha))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect()
    }
}

struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(repo: &Path, state: &Path, env: &[(&str, &str)]) -> Daemon {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("daemon.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args([
                "--repo",
                repo.to_str().unwrap(),
                "serve",
                "--interval",
                "200ms",
            ])
            .args([
                "--state-dir",
                state.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .env_remove("BATON_API_TOKEN")
            .env_remove("BATON_ALERTMANAGER_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start baton serve");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("daemon started");
        Daemon {
            child,
            addr,
            log,
            _logdir: logdir,
        }
    }

    fn status(&self) -> Value {
        let url = format!("http://{}/api/v1/status", self.addr);
        ureq::get(&url)
            .call()
            .ok()
            .and_then(|r| r.into_json().ok())
            .unwrap_or_default()
    }

    fn alpha(&self) -> Value {
        let s = self.status();
        s["environments"][0]["models"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["model"] == "alpha").cloned())
            .unwrap_or_default()
    }

    fn deployed(&self) -> Vec<String> {
        self.alpha()["deployed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v["version"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn eventually(&self, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}\nstatus: {}\n--- daemon log ---\n{}",
            self.alpha(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

const HEALTHY: &str = "errors_ratio{model=\"alpha\",version=\"1\"} 0.01\nerrors_ratio{model=\"alpha\",version=\"2\"} 0.02\n";
const FAILING: &str = "errors_ratio{model=\"alpha\",version=\"1\"} 0.01\nerrors_ratio{model=\"alpha\",version=\"2\"} 0.5\n";

// ---------------------------------------------------------------- tests

#[test]
fn a_healthy_canary_passes_and_stays() {
    let exporter = Exporter::start(HEALTHY);
    let Some(prom) = prometheus(&exporter) else {
        return;
    };
    let f = Fixture::new(&policy(&format!("http://127.0.0.1:{}", prom.port), 3, 4));
    let d = f.start();
    d.eventually("alpha 1 deployed", 30, || d.deployed() == ["1"]);
    f.canary();
    d.eventually("the canary deployed", 30, || d.deployed() == ["1", "2"]);
    d.eventually("verification passed", 30, || {
        d.alpha()["verification"]["phase"] == "passed"
    });
    let v = d.alpha()["verification"].clone();
    assert_eq!(v["version"], "2");
    assert_eq!(v["role"], "canary");
    let ms = v["measurements"].as_array().unwrap();
    assert!(ms.len() >= 3, "{v}");
    assert_eq!(ms.last().unwrap()["metrics"][0]["value"], 0.02);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.deployed(), ["1", "2"], "a passed canary stays");
    assert!(f.reverts_of(&f.repo.head()).is_empty());
}

#[test]
fn a_failing_canary_is_contained_then_reverted_in_git_once() {
    let exporter = Exporter::start(HEALTHY);
    let Some(prom) = prometheus(&exporter) else {
        return;
    };
    let f = Fixture::new(&policy(&format!("http://127.0.0.1:{}", prom.port), 30, 4));
    let d = f.start();
    d.eventually("alpha 1 deployed", 30, || d.deployed() == ["1"]);
    exporter.set(FAILING);
    std::thread::sleep(Duration::from_millis(2500)); // scraped
    let promote = f.canary();
    d.eventually("the canary deployed", 30, || {
        d.alpha()["verification"]["version"] == "2"
    });
    let started = Instant::now();
    d.eventually("contained", 10, || d.deployed() == ["1"]);
    let contained_after = started.elapsed();
    assert!(
        contained_after < Duration::from_millis(2500),
        "contained within about one interval (took {contained_after:?})"
    );
    d.eventually("the revert on main", 10, || {
        f.reverts_of(&promote).len() == 1
    });
    let revert = f.reverts_of(&promote)[0].clone();
    let msg = f.repo.git(&["log", "-1", "--format=%B", &revert]);
    assert!(
        msg.starts_with("Revert \"promote alpha 2 to production (10%)\""),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("Baton-Rollback-Of: {promote}")),
        "{msg}"
    );
    assert!(
        msg.contains("Baton-Reason: verification of alpha 2 in production failed"),
        "{msg}"
    );
    let manifest = f
        .repo
        .git(&["show", &format!("{revert}:models/alpha/versions/2.yaml")]);
    assert!(manifest.contains("stage: staging"), "{manifest}");
    assert!(!manifest.contains("traffic:"), "{manifest}");
    assert!(
        manifest.contains("verification-production: {passed: false, report: \"production at "),
        "{manifest}"
    );
    assert!(manifest.contains("is above max 0.1"), "{manifest}");
    d.eventually("rolled-back in status", 10, || {
        d.alpha()["verification"]["phase"] == "rolled-back"
    });
    // The daemon judged and deployed its own revert: production runs 1 alone, synced.
    d.eventually("synced on the revert", 10, || {
        d.alpha()["sync"] == "synced" && d.status()["head"] == revert.as_str()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(f.reverts_of(&promote).len(), 1, "exactly one revert");
    assert_eq!(d.deployed(), ["1"]);
    let events = ureq::get(&format!("http://{}/api/v1/events?limit=1000", d.addr))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(events.contains("\"verification-failed\""), "{events}");
    assert!(events.contains("\"rolled-back\""), "{events}");
}

#[test]
fn an_unreachable_prometheus_counts_errors_and_never_rolls_back() {
    let f = Fixture::new(&policy(&format!("http://127.0.0.1:{}", free_port()), 30, 3));
    let d = f.start();
    d.eventually("alpha 1 deployed", 30, || d.deployed() == ["1"]);
    let promote = f.canary();
    d.eventually("the canary deployed", 30, || d.deployed() == ["1", "2"]);
    d.eventually("errors counted", 10, || {
        let ms = d.alpha()["verification"]["measurements"].clone();
        ms.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(|m| {
                    m["outcome"] == "error"
                        && m["metrics"][0]["error"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("no provider reachable"))
                })
        })
    });
    d.eventually("inconclusive after 3 errors", 15, || {
        d.alpha()["verification"]["phase"] == "inconclusive"
    });
    assert_eq!(
        d.alpha()["verification"]["measurements"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.deployed(), ["1", "2"], "errors never contain");
    assert!(f.reverts_of(&promote).is_empty(), "errors never roll back");
}

/// `baton check --base BASE --format json` at the repository's HEAD: (exit code, report).
fn check(repo: &TestRepo, base: &str) -> (i32, Value) {
    let out = repo.baton(&["--format", "json", "check", "--base", base]);
    let j = serde_json::from_str(&common::stdout(&out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::stderr(&out)));
    (common::code(&out), j)
}

/// The verdicts of `rule` for alpha `version` in a check report.
fn verdicts(j: &Value, version: &str, rule: &str) -> Vec<Value> {
    j["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["model"] == "alpha" && t["version"] == version)
        .flat_map(|t| t["verdicts"].as_array().unwrap().clone())
        .filter(|v| v["rule"] == rule)
        .collect()
}

#[test]
fn a_build_that_failed_verification_cannot_be_promoted_into_the_stage_again() {
    // Git only (no Prometheus): the canary's promotion, then the revert the daemon writes
    // (the library's rollback::write, as the controller calls it), then a re-promotion.
    let f = Fixture::new(&policy("http://127.0.0.1:9", 3, 4));
    let promote = f.canary();
    let cfg = baton::daemon::verify::rollback::RollbackConfig::default();
    let done = baton::daemon::verify::rollback::write(&baton::daemon::verify::rollback::Request {
        repo: f.repo.path(),
        branch: "main",
        root: "",
        model: "alpha",
        version: "2",
        stage: "production",
        reason: "verification of alpha 2 in production failed: error-rate 0.5 > max 0.1",
        report: "production at 2026-12-01T10:00:00Z: error-rate 0.5 is above max 0.1",
        mode: baton::manifest::verify::RollbackMode::Push,
        config: &cfg,
    })
    .unwrap();
    assert_eq!(f.repo.git(&["rev-parse", "main"]), done.commit);
    f.repo.git(&["reset", "-q", "--hard", "main"]);
    // The revert passes as a rollback out of production: the gate does not apply to it.
    let (c, j) = check(&f.repo, &promote);
    assert_eq!(c, 0, "{j:#}");
    assert!(verdicts(&j, "2", "verification").is_empty(), "{j:#}");

    // Re-promoting the same build (its manifest keeps the failed evidence: immutable).
    f.repo.edit(
        "models/alpha/versions/2.yaml",
        "stage: staging",
        "stage: production\ntraffic: 10",
    );
    f.repo.commit_all("promote alpha 2 to production again");
    let (c, j) = check(&f.repo, &done.commit);
    assert_eq!(c, 1, "{j:#}");
    let vs = verdicts(&j, "2", "verification");
    assert_eq!(vs.len(), 1, "{j:#}");
    assert_eq!(vs[0]["passed"], false);
    let reason = vs[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("failed live verification in `production`")
            && reason.contains("error-rate 0.5 is above max 0.1"),
        "{reason}"
    );
    assert_eq!(vs[0]["file"], "models/alpha/versions/2.yaml");
    assert!(vs[0]["line"].as_u64().is_some(), "{:#}", vs[0]);
    // The other gates pass: only `verification` keeps it out.
    let failing: Vec<&Value> = j["transitions"][0]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["passed"] == false)
        .collect();
    assert_eq!(failing.len(), 1, "{failing:#?}");

    // Reverting the revert drops the evidence (a rollback may): still refused.
    f.repo.git(&["reset", "-q", "--hard", &done.commit]);
    f.repo.git(&["revert", "--no-edit", &done.commit]);
    let (c, j) = check(&f.repo, &done.commit);
    assert_eq!(c, 1, "{j:#}");
    let vs = verdicts(&j, "2", "verification");
    assert_eq!(vs[0]["passed"], false, "{j:#}");
    assert!(
        vs[0]["reason"]
            .as_str()
            .unwrap()
            .contains("at the merge base"),
        "{:#}",
        vs[0]
    );

    // A new build of the model still enters production, and the rule says why it passes.
    f.repo.git(&["reset", "-q", "--hard", &done.commit]);
    f.version("3", "staging", None);
    let base = f.repo.commit_all("register alpha 3 in staging");
    f.repo.edit(
        "models/alpha/versions/3.yaml",
        "stage: staging",
        "stage: production\ntraffic: 10",
    );
    f.repo.commit_all("promote alpha 3 to production (10%)");
    let (c, j) = check(&f.repo, &base);
    assert_eq!(c, 0, "{j:#}");
    let vs = verdicts(&j, "3", "verification");
    assert_eq!(vs[0]["passed"], true, "{j:#}");
}

/// An Alertmanager webhook payload (version 4) with one alert.
fn alertmanager_payload(status: &str, labels: &str) -> String {
    format!(
        r#"{{"version":"4","groupKey":"{{}}:{{alertname=\"AlphaErrors\"}}","truncatedAlerts":0,"status":"{status}","receiver":"baton","groupLabels":{{"alertname":"AlphaErrors"}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://alertmanager:9093","alerts":[{{"status":"{status}","labels":{{"alertname":"AlphaErrors",{labels}}},"annotations":{{"summary":"5xx ratio above 10% for 1m"}},"startsAt":"{}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph","fingerprint":"c0ffee"}}]}}"#,
        chrono::Utc::now().to_rfc3339()
    )
}

/// POST `body` to the daemon's Alertmanager hook: (status code, body).
fn post_alert(d: &Daemon, token: Option<&str>, body: &str) -> (u16, String) {
    let mut req = ureq::post(&format!("http://{}/hooks/alertmanager", d.addr))
        .set("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_string(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST /hooks/alertmanager: {e}"),
    }
}

#[test]
fn a_firing_alertmanager_alert_rolls_back_the_running_version() {
    // No Prometheus needed: the provider is unreachable (errors only, never a failure) and
    // the alert is the failure. alpha 2 replaces alpha 1 as the primary.
    let f = Fixture::new(&policy(
        &format!("http://127.0.0.1:{}", free_port()),
        30,
        30,
    ));
    let d = Daemon::start(
        f.repo.path(),
        &f.state,
        &[("BATON_ALERTMANAGER_TOKEN", "am-s3cret")],
    );
    d.eventually("alpha 1 deployed", 30, || d.deployed() == ["1"]);
    f.version("1", "archived", None);
    f.version("2", "production", None);
    let promote = f.repo.commit_all("promote alpha 2 to production");
    d.eventually("alpha 2 deployed and verifying", 30, || {
        d.deployed() == ["2"] && d.alpha()["verification"]["phase"] == "running"
    });
    assert_eq!(d.alpha()["verification"]["role"], "primary");

    let firing = alertmanager_payload(
        "firing",
        r#""baton_model":"alpha","baton_environment":"production","severity":"page""#,
    );
    assert_eq!(post_alert(&d, None, &firing).0, 401, "the token is needed");
    assert_eq!(post_alert(&d, Some("wrong"), &firing).0, 401);
    let (c, body) = post_alert(&d, Some("am-s3cret"), "{\"version\":\"3\"}");
    assert_eq!(c, 400, "{body}");
    let resolved = alertmanager_payload("resolved", r#""baton_model":"alpha""#);
    let (c, body) = post_alert(&d, Some("am-s3cret"), &resolved);
    assert_eq!(
        (c, body.starts_with("ignored 1 alert")),
        (200, true),
        "{body}"
    );
    let other = alertmanager_payload("firing", r#""baton_model":"beta""#);
    assert_eq!(post_alert(&d, Some("am-s3cret"), &other).0, 202);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        d.deployed(),
        ["2"],
        "resolved alerts and other models change nothing"
    );
    assert!(f.reverts_of(&promote).is_empty());

    let (c, body) = post_alert(&d, Some("am-s3cret"), &firing);
    assert_eq!(c, 202, "{body}");
    let sent = Instant::now();
    d.eventually("alpha 1 runs again", 10, || d.deployed() == ["1"]);
    let contained_after = sent.elapsed();
    d.eventually("the revert on main", 10, || {
        f.reverts_of(&promote).len() == 1
    });
    let reverted_after = sent.elapsed();
    eprintln!("alert -> contained {contained_after:?}, -> revert on main {reverted_after:?}");
    let revert = f.reverts_of(&promote)[0].clone();
    let msg = f.repo.git(&["log", "-1", "--format=%B", &revert]);
    assert!(
        msg.starts_with("Revert \"promote alpha 2 to production\""),
        "{msg}"
    );
    assert!(
        msg.contains("Baton-Reason: verification of alpha 2 in production failed: alert AlphaErrors firing since "),
        "{msg}"
    );
    let at = |v: &str| {
        f.repo
            .git(&["show", &format!("{revert}:models/alpha/versions/{v}.yaml")])
    };
    assert!(at("1").contains("stage: production"), "{}", at("1"));
    let two = at("2");
    assert!(two.contains("stage: staging"), "{two}");
    assert!(
        two.contains("verification-production: {passed: false, report: \"production at ")
            && two.contains("5xx ratio above 10% for 1m"),
        "{two}"
    );
    // The daemon deploys its own revert; Alertmanager repeating itself changes nothing.
    d.eventually("synced on the revert", 10, || {
        d.alpha()["sync"] == "synced" && d.status()["head"] == revert.as_str()
    });
    assert_eq!(post_alert(&d, Some("am-s3cret"), &firing).0, 202);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(f.reverts_of(&promote).len(), 1, "exactly one revert");
    assert_eq!(d.deployed(), ["1"]);
    let v = d.alpha()["verification"].clone();
    assert_eq!(
        (v["version"].as_str(), v["phase"].as_str()),
        (Some("2"), Some("rolled-back")),
        "{v}"
    );
}

#[test]
fn a_first_version_that_fails_is_contained_and_notified_not_reverted() {
    let exporter = Exporter::start(
        "errors_ratio{model=\"alpha\",version=\"1\"} 0.01\nerrors_ratio{model=\"beta\",version=\"1\"} 0.5\n",
    );
    let Some(prom) = prometheus(&exporter) else {
        return;
    };
    let f = Fixture::new(&policy(&format!("http://127.0.0.1:{}", prom.port), 30, 4));
    // beta: a second model, its first version in staging (in the trusted baseline).
    let content = "beta 1";
    f.repo.write("artifacts/beta/1.bin", content);
    f.repo.write(
        "models/beta/model.yaml",
        "name: beta\ndescription: test\nowners: [alice@acme.com]\n",
    );
    let manifest = |stage: &str| {
        format!(
            "model: beta\nversion: \"1\"\nstage: {stage}\nartifact:\n  uri: artifacts/beta/1.bin\n  sha256: {}\ncreated: 2026-11-01T10:00:00Z\n",
            sha(content.as_bytes())
        )
    };
    f.repo
        .write("models/beta/versions/1.yaml", &manifest("staging"));
    f.repo.commit_all("register beta 1");
    let d = f.start();
    d.eventually("alpha 1 deployed", 30, || d.deployed() == ["1"]);
    f.repo
        .write("models/beta/versions/1.yaml", &manifest("production"));
    let promote = f.repo.commit_all("promote beta 1 to production");
    let beta = || {
        d.status()["environments"][0]["models"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["model"] == "beta").cloned())
            .unwrap_or_default()
    };
    d.eventually("beta verified", 30, || {
        beta()["verification"]["version"] == "1"
    });
    d.eventually("beta contained", 10, || {
        beta()["verification"]["phase"] == "contained"
    });
    let b = beta();
    assert_eq!(b["verification"]["role"], "primary", "{b}");
    assert!(
        b["deployed"].as_array().is_none_or(|a| a.is_empty()),
        "undeployed: nothing to go back to: {b}"
    );
    assert!(
        b["verification"]["rollback_note"]
            .as_str()
            .is_some_and(|n| n.contains("no previous version")),
        "{b}"
    );
    let deployment = |m: &str| {
        f.state
            .join("deploy/production")
            .join(m)
            .join("deployment.json")
    };
    assert!(
        deployment("alpha").exists(),
        "the local target's record of alpha"
    );
    assert!(
        !deployment("beta").exists(),
        "the target no longer serves beta"
    );
    let events: Vec<Value> = ureq::get(&format!(
        "http://{}/api/v1/events?model=beta&kind=verification-failed",
        d.addr
    ))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    let says = |what: &str| {
        events
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(what)))
    };
    assert!(
        says("contained: beta now runs nothing (undeployed)"),
        "{events:#?}"
    );
    assert!(
        says("not rolled back: no previous version; contained and notified only"),
        "{events:#?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        f.reverts_of(&promote).is_empty(),
        "no revert: nothing to go back to"
    );
    assert_eq!(f.repo.git(&["rev-parse", "main"]), promote, "git untouched");
    assert_eq!(d.deployed(), ["1"], "alpha is not concerned");
    assert_eq!(
        d.status()["environments"][0]["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["model"] == "beta")
            .count(),
        1
    );
}
