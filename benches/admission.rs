//! Step-by-step admission: how long the daemon takes to judge a burst of merged changes,
//! each first-parent commit on its own, in a registry of many models.
//!
//! `cargo bench --bench admission` (a quick smoke run under `cargo test`).

#[path = "support/synth.rs"]
mod synth;

use baton::daemon::state::StateDir;
use baton::daemon::{Controller, ControllerConfig};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use synth::{Change, Synth};

/// Judge a burst of `commits` merged promotions (each moving a different model's development
/// version to staging and archiving its staging version) landing at once on a registry of
/// `models` x 3 versions. Returns the admission's wall time in seconds.
fn burst(models: usize, commits: usize) -> f64 {
    let mut s = Synth::build(models, 3);
    let state_tmp = tempfile::tempdir().unwrap();
    let cfg = ControllerConfig {
        rollback: Default::default(),
        repo: s.path().to_path_buf(),
        branch: "main".into(),
        path: None,
        interval: Duration::from_secs(30),
        trust: None,
        fetch_timeout: Duration::from_secs(1),
        github: None,
        artifacts: Default::default(),
        public_url: None,
    };
    let sd = StateDir::open(&state_tmp.path().join("state")).unwrap();
    let mut c = Controller::new(cfg, sd, Arc::new(AtomicBool::new(false))).unwrap();
    // The trusted baseline (synth's s3:// artifacts are not fetched: switches fail fast and
    // back off, which is not what is measured here).
    let _ = c.reconcile();
    for i in 0..commits {
        let m = (i * 7919) % models;
        s.commit(
            "main",
            &[
                Change::stage(m, 3, "staging"),
                Change::stage(m, 2, "archived"),
            ],
            &format!("promote {} 3 to staging", Synth::model_name(m)),
        );
    }
    let _ = c.reconcile();
    let (steps, took) = c.last_admission().expect("an admission ran");
    assert_eq!(steps, commits, "each commit judged on its own");
    took.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // synth's s3:// artifacts must fail fast without asking any network for credentials
    // (docs/targets.md "Artifact sources"); nothing else runs yet.
    for (k, v) in [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ] {
        std::env::set_var(k, v);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        let t = burst(200, 10);
        println!("smoke: 10 commits at 200 models judged in {:.3} s (run `cargo bench --bench admission`)", t);
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (models, runs) = (
        env("BATON_BENCH_MODELS", 10_000),
        env("BATON_BENCH_RUNS", 3),
    );
    let runs: Vec<f64> = (0..runs).map(|_| burst(models, 100)).collect();
    println!(
        "burst of 100 merged commits at {models} models: admission median {:.3} s (runs {:?})  [goal: < 1 s at 10,000]",
        median(runs.clone()),
        runs.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>()
    );
}
