//! Live verification through a real `baton serve` on a real git repository (issue 10 goals in
//! brackets), with the `command` provider so that no Prometheus is needed:
//! * `latency`: a canary whose measurement turns failing; from the failing measurement (the
//!   script's own timestamp, written as it prints the value) to the contained target (the
//!   local target's `deployment.json` no longer naming the canary) [< 100 ms plus the switch]
//!   and to the revert commit on the branch (`refs/heads/main` moving) [< 1 s];
//! * `hundred`: 100 canaries promoted in one commit, verified every `interval: 1s`: the pass
//!   duration (`baton_reconcile_duration_seconds`) and the measurements each model got over
//!   the window against window / interval [no missed interval].
//!
//! `cargo bench --bench verify` runs both (`-- latency`, `-- hundred`, plus `quick` for fewer
//! rounds); under `cargo test` a smoke run: one round of each, numbers printed. The daemon runs
//! with `--interval 30s`, so only the verification's own wake-up can drive a measurement.

#[path = "support/serve.rs"]
mod serve;

use git2::{build::TreeUpdateBuilder, FileMode, Oid, Repository, Signature};
use serde_json::Value;
use serve::{manifest, percentile, sha, start_daemon};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The measuring script: prints the number in `value` and logs `<unix time> <model> <value>`.
fn script(dir: &Path) -> PathBuf {
    let p = dir.join("measure.sh");
    let d = dir.display();
    std::fs::write(
        &p,
        format!(
            "v=$(cat {d}/value)\nprintf '%s %s %s\\n' \"$(date +%s.%N)\" \"$BATON_MODEL\" \"$v\" >> {d}/log\necho \"$v\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("value"), "0\n").unwrap();
    p
}

fn policy(script: &Path) -> String {
    format!(
        r#"version: 1
stages:
  - name: staging
  - name: production
    canary: true
    verify:
      provider: {{command: {{command: "sh {}"}}}}
      interval: 1s
      count: 100000
      failure_limit: 0
      metrics:
        - {{name: error-rate, query: errors, max: 0.1}}
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
"#,
        script.display()
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A local repository the bench commits to with git2 (on top of whatever the daemon wrote).
struct Registry {
    repo: Repository,
    dir: PathBuf,
}

impl Registry {
    fn init(dir: &Path) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let repo = Repository::init(dir).unwrap();
        Registry {
            repo,
            dir: dir.to_owned(),
        }
    }

    fn head(&self) -> Option<Oid> {
        self.repo.refname_to_id("refs/heads/main").ok()
    }

    /// Commit `files` (path, bytes) on top of main and move main.
    fn commit(&self, files: &[(String, Vec<u8>)], msg: &str) -> Oid {
        let sig = Signature::now("Bench", "bench@acme.com").unwrap();
        let parent = self.head().map(|h| self.repo.find_commit(h).unwrap());
        let base = match &parent {
            Some(p) => p.tree().unwrap(),
            None => {
                let t = self.repo.treebuilder(None).unwrap().write().unwrap();
                self.repo.find_tree(t).unwrap()
            }
        };
        let mut b = TreeUpdateBuilder::new();
        for (path, bytes) in files {
            b.upsert(path, self.repo.blob(bytes).unwrap(), FileMode::Blob);
        }
        let tree = self
            .repo
            .find_tree(b.create_updated(&self.repo, &base).unwrap())
            .unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let c = self
            .repo
            .commit(None, &sig, &sig, msg, &tree, &parents)
            .unwrap();
        self.repo
            .reference("refs/heads/main", c, true, "bench")
            .unwrap();
        c
    }
}

fn model_files(model: &str, v: usize, stage: &str, traffic: Option<u32>) -> Vec<(String, Vec<u8>)> {
    let bytes = format!("{model} build {v}\n").into_bytes();
    let uri = format!("artifacts/{model}/{v}.bin");
    let mut m = manifest(model, v, stage, &uri, &sha(&bytes));
    if let Some(t) = traffic {
        m.push_str(&format!("traffic: {t}\n"));
    }
    vec![
        (uri, bytes),
        (format!("models/{model}/versions/{v}.yaml"), m.into_bytes()),
    ]
}

/// A registry with `models` models, version 1 in production and versions 2..=1+`staged` in
/// staging.
fn registry(dir: &Path, script: &Path, models: &[String], staged: usize) -> Registry {
    let r = Registry::init(dir);
    let mut files = vec![("baton.yaml".to_owned(), policy(script).into_bytes())];
    for m in models {
        files.push((
            format!("models/{m}/model.yaml"),
            format!("name: {m}\ndescription: bench\nowners: [a@acme.com]\n").into_bytes(),
        ));
        files.extend(model_files(m, 1, "production", None));
        for v in 2..2 + staged {
            files.extend(model_files(m, v, "staging", None));
        }
    }
    r.commit(&files, "registry");
    r.repo.set_head("refs/heads/main").unwrap();
    r
}

fn status(addr: &str) -> Value {
    ureq::get(&format!("http://{addr}/api/v1/status"))
        .call()
        .ok()
        .and_then(|r| r.into_json().ok())
        .unwrap_or_default()
}

fn models_of(s: &Value) -> Vec<Value> {
    s["environments"][0]["models"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One round's times, in ms from the failing measurement.
struct Round {
    contained: f64,
    reverted: f64,
}

/// `rounds` canaries (versions 2, 3, ...) of one model, each made to fail once it runs.
fn latency(rounds: usize) -> Vec<Round> {
    let tmp = tempfile::tempdir().unwrap();
    let script = script(tmp.path());
    let reg = registry(&tmp.path().join("repo"), &script, &["m".into()], rounds);
    let state = tmp.path().join("state");
    let (child, addr) = start_daemon(&reg.dir, &state, "30s", &[]);
    let _daemon = Killed(child);
    let record = state.join("deploy/production/m/deployment.json");
    let value = tmp.path().join("value");
    let log = tmp.path().join("log");
    let mut out = Vec::new();
    for n in 2..2 + rounds {
        std::fs::write(&value, "0\n").unwrap();
        let promote = reg.commit(
            &model_files("m", n, "production", Some(10)),
            &format!("promote m {n} to production (10%)"),
        );
        let needle = format!("\"version\": \"{n}\"");
        let deployed = || {
            std::fs::read_to_string(&record)
                .map(|s| s.contains(&needle))
                .unwrap_or(false)
        };
        wait("the canary deployed", 60, deployed);
        // One good measurement first: the verification is running, then it turns bad at some
        // point of its interval.
        wait("a good measurement", 30, || {
            models_of(&status(&addr)).iter().any(|m| {
                m["verification"]["version"] == n.to_string().as_str()
                    && m["verification"]["measurements"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
            })
        });
        std::thread::sleep(Duration::from_millis(137 * n as u64 % 900));
        let set_at = now_secs();
        std::fs::write(&value, "1\n").unwrap();
        let (mut contained, mut reverted) = (None, None);
        let t0 = Instant::now();
        while contained.is_none() || reverted.is_none() {
            if contained.is_none() && !deployed() {
                contained = Some(now_secs());
            }
            if reverted.is_none() && reg.head() != Some(promote) {
                reverted = Some(now_secs());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "round {n}: not contained/reverted"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let failed = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let t: f64 = w.next()?.parse().ok()?;
                let v = w.nth(1)?;
                (t >= set_at && v == "1").then_some(t)
            })
            .next()
            .expect("the failing measurement in the script's log");
        out.push(Round {
            contained: (contained.unwrap() - failed) * 1000.0,
            reverted: (reverted.unwrap() - failed) * 1000.0,
        });
        // The daemon deploys its own revert; the next round starts from there.
        let revert = reg.head().unwrap().to_string();
        wait("synced on the revert", 30, || {
            let s = status(&addr);
            s["head"] == revert.as_str() && models_of(&s).iter().all(|m| m["sync"] == "synced")
        });
    }
    out
}

/// Sum and count of `baton_reconcile_duration_seconds`.
fn pass_seconds(addr: &str) -> (f64, f64) {
    let t = serve::metrics_text(addr);
    (
        serve::sample(&t, "baton_reconcile_duration_seconds_sum").unwrap_or(0.0),
        serve::sample(&t, "baton_reconcile_duration_seconds_count").unwrap_or(0.0),
    )
}

struct Hundred {
    window: f64,
    mean_pass_ms: f64,
    passes: f64,
    min_measurements: usize,
    expected: f64,
    max_gap: f64,
    mean_gap: f64,
}

/// 100 canaries promoted in one commit, verified for `secs` seconds.
fn hundred(secs: u64) -> Hundred {
    let tmp = tempfile::tempdir().unwrap();
    let script = script(tmp.path());
    let names: Vec<String> = (0..100).map(|i| format!("model-{i:03}")).collect();
    let reg = registry(&tmp.path().join("repo"), &script, &names, 1);
    let state = tmp.path().join("state");
    let (child, addr) = start_daemon(&reg.dir, &state, "30s", &[]);
    let _daemon = Killed(child);
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .flat_map(|m| model_files(m, 2, "production", Some(10)))
        .collect();
    reg.commit(&files, "promote 100 canaries to production (10%)");
    wait("100 verifications running", 120, || {
        let ms = models_of(&status(&addr));
        ms.len() == 100
            && ms.iter().all(|m| {
                m["verification"]["phase"] == "running" && m["verification"]["version"] == "2"
            })
    });
    let (s0, c0) = pass_seconds(&addr);
    let t0 = chrono::Utc::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (s1, c1) = pass_seconds(&addr);
    let t1 = chrono::Utc::now();
    let window = (t1 - t0).num_milliseconds() as f64 / 1000.0;
    let s = status(&addr);
    let mut min_measurements = usize::MAX;
    let (mut max_gap, mut gaps, mut n_gaps) = (0.0f64, 0.0, 0usize);
    for m in models_of(&s) {
        assert_eq!(m["verification"]["phase"], "running", "{m}");
        let at: Vec<chrono::DateTime<chrono::Utc>> = m["verification"]["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["at"].as_str()?.parse().ok())
            .collect();
        let inside = at.iter().filter(|t| **t >= t0 && **t <= t1).count();
        min_measurements = min_measurements.min(inside);
        for w in at.windows(2) {
            if w[1] < t0 {
                continue;
            }
            let g = (w[1] - w[0]).num_milliseconds() as f64 / 1000.0;
            max_gap = max_gap.max(g);
            gaps += g;
            n_gaps += 1;
        }
    }
    Hundred {
        window,
        mean_pass_ms: if c1 > c0 {
            (s1 - s0) / (c1 - c0) * 1000.0
        } else {
            0.0
        },
        passes: c1 - c0,
        min_measurements,
        expected: window / 1.0,
        max_gap,
        mean_gap: gaps / n_gaps.max(1) as f64,
    }
}

fn report_latency(rounds: Vec<Round>) {
    let mut c: Vec<f64> = rounds.iter().map(|r| r.contained).collect();
    let mut r: Vec<f64> = rounds.iter().map(|r| r.reverted).collect();
    let n = c.len();
    println!(
        "failing measurement -> contained target ({n} rounds): median {:.1} ms, max {:.1} ms  [goal: < 100 ms plus the switch]",
        percentile(&mut c, 0.5),
        percentile(&mut c, 1.0)
    );
    println!(
        "failing measurement -> revert on the branch ({n} rounds): median {:.1} ms, max {:.1} ms  [goal: < 1 s]",
        percentile(&mut r, 0.5),
        percentile(&mut r, 1.0)
    );
}

fn report_hundred(h: Hundred) {
    println!(
        "100 models verified at once, interval 1s, {:.1} s window: {} passes, mean pass {:.1} ms; \
         measurements per model >= {} (window / interval = {:.1}), gap between measurements mean {:.2} s, max {:.2} s  [goal: no missed interval]",
        h.window, h.passes, h.mean_pass_ms, h.min_measurements, h.expected, h.mean_gap, h.max_gap
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs this binary without `--bench`: a smoke run only.
    if !args.iter().any(|a| a == "--bench") {
        report_latency(latency(1));
        report_hundred(hundred(3));
        println!("smoke run (run `cargo bench --bench verify` to measure)");
        return;
    }
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = words.contains(&"quick");
    let want = |p: &str| {
        let parts: Vec<&&str> = words.iter().filter(|w| **w != "quick").collect();
        parts.is_empty() || parts.iter().any(|w| **w == p)
    };
    if want("latency") {
        report_latency(latency(if quick { 5 } else { 20 }));
    }
    if want("hundred") {
        report_hundred(hundred(if quick { 10 } else { 30 }));
    }
}
