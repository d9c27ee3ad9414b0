//! Benchmarks of the `kserve` target against a local bare repository (goals in brackets):
//! * `push`: one pass that renders, commits and pushes 1,000 models (every file changes)
//!   [median < 2 s];
//! * `noop`: a pass with nothing to change over those 1,000 models: fetch, read the folder,
//!   plan nothing, no commit [median < 50 ms].
//!
//! `cargo bench --bench kserve` runs both (under `cargo test` only a smoke run at 50 models);
//! `quick` for fewer rounds: `cargo bench --bench kserve -- quick`.

use baton::daemon::plan;
use baton::daemon::release::{Release, ReleaseVersion};
use baton::daemon::target::kserve::KserveTarget;
use baton::daemon::target::{PassSummary, Target};
use baton::manifest::target::{KserveConfig, KserveMode};
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {:?}", out);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every model at version `round` (so each round changes every file), one canary in ten.
fn releases(models: usize, round: usize) -> BTreeMap<String, Release> {
    (0..models)
        .map(|m| {
            let model = format!("model-{m:05}");
            let v = |label: String, traffic: u32, primary: bool| ReleaseVersion {
                sha256: format!("{:064x}", m * 1000 + round),
                uri: format!("s3://models/{model}/{label}/"),
                version: label,
                size: Some(1 << 20),
                format: Some("sklearn".into()),
                files: Vec::new(),
                traffic,
                primary,
                requires: BTreeMap::new(),
                metrics: Default::default(),
            };
            let versions = if m % 10 == 0 {
                vec![
                    v(format!("{round}.0"), 90, true),
                    v(format!("{round}.1"), 10, false),
                ]
            } else {
                vec![v(format!("{round}.0"), 100, true)]
            };
            let r = Release {
                model: model.clone(),
                commit: format!("{round:040x}"),
                root: String::new(),
                versions,
            };
            (model, r)
        })
        .collect()
}

/// Seconds spent in each part of a pass: observe + plan, render + write, commit + push.
#[derive(Default, Clone, Copy)]
struct Parts([f64; 3]);

/// One reconcile pass of the target: observe, plan, switch every step, commit. Returns the
/// number of steps.
fn pass(t: &mut KserveTarget, intent: &BTreeMap<String, Release>, parts: &mut Parts) -> usize {
    let start = Instant::now();
    let observed = t.observe().unwrap();
    let steps = plan::plan(intent, &observed);
    parts.0[0] = start.elapsed().as_secs_f64();
    if steps.is_empty() {
        return 0;
    }
    let start = Instant::now();
    let mut changes = Vec::new();
    for s in &steps {
        if let plan::Step::Switch { release, model, .. } = s {
            t.switch(release, Utc::now()).unwrap();
            changes.push(format!("{model}@{}", release.label()));
        }
    }
    parts.0[1] = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let summary = PassSummary {
        env: "prod".into(),
        registry_commit: intent.values().next().unwrap().commit.clone(),
        changes,
    };
    t.commit(&summary).unwrap();
    parts.0[2] = start.elapsed().as_secs_f64();
    steps.len()
}

fn run(models: usize, rounds: usize) -> (f64, f64, Parts) {
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("gitops.git");
    git(
        tmp.path(),
        &["init", "-q", "--bare", "-b", "main", "gitops.git"],
    );
    let cfg = KserveConfig {
        repo: bare.to_string_lossy().into_owned(),
        branch: "main".into(),
        path: "clusters/prod/ml".into(),
        namespace: "ml-prod".into(),
        mode: KserveMode::Standard,
        runtime: Some("kserve-sklearnserver".into()),
        min_replicas: Some(2),
    };
    let state = tmp.path().join("state");
    let mut t = KserveTarget::new("prod", &cfg, &state, false).unwrap();
    let mut push = Vec::new();
    let mut noop = Vec::new();
    let mut parts: Vec<Parts> = Vec::new();
    for round in 1..=rounds {
        let intent = releases(models, round);
        let start = Instant::now();
        let mut p = Parts::default();
        assert_eq!(pass(&mut t, &intent, &mut p), models);
        push.push(start.elapsed().as_secs_f64());
        parts.push(p);
        let commits = git(&bare, &["rev-list", "--count", "main"]);
        for _ in 0..5 {
            let start = Instant::now();
            assert_eq!(
                pass(&mut t, &intent, &mut Parts::default()),
                0,
                "a second pass found work"
            );
            noop.push(start.elapsed().as_secs_f64());
        }
        assert_eq!(
            git(&bare, &["rev-list", "--count", "main"]),
            commits,
            "a no-op pass committed"
        );
    }
    assert_eq!(
        git(&bare, &["rev-list", "--count", "main"]),
        rounds.to_string()
    );
    let part = |i: usize| median(parts.iter().map(|p| p.0[i]).collect());
    (
        median(push),
        median(noop),
        Parts([part(0), part(1), part(2)]),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        let (push, noop, _) = run(50, 1);
        println!(
            "smoke: 50 models: push pass {:.0} ms, no-op pass {:.1} ms (run `cargo bench --bench kserve` to measure)",
            push * 1e3,
            noop * 1e3
        );
        return;
    }
    let quick = args.iter().any(|a| a == "quick");
    let (push, noop, p) = run(1000, if quick { 3 } else { 7 });
    println!(
        "kserve, 1,000 models: render+commit+push pass median {:.0} ms  [goal: < 2,000 ms]",
        push * 1e3
    );
    println!(
        "  of which observe+plan {:.0} ms, render+write {:.0} ms, commit+push {:.0} ms",
        p.0[0] * 1e3,
        p.0[1] * 1e3,
        p.0[2] * 1e3
    );
    println!("kserve, 1,000 models: no-op pass (fetch, read, plan nothing, no commit) median {:.1} ms  [goal: < 50 ms]", noop * 1e3);
}
