//! Benchmark of the gates engine: `check` on a PR moving 2 versions in registries of 1,000 and
//! 100,000 manifests (cold one-shot judge, as the CLI runs, and a warm reused `Judge`, as the
//! daemon runs), and verifying 100 SSH-signed approval commits.
//!
//! `cargo bench --bench check` runs everything; `-- check`, `-- approvals`, `quick` pick parts.
//! Goals (issue 3): 100,000 manifests < 100 ms median and within 2x of 1,000; 100 approval
//! signatures verified < 50 ms; the first check in a fresh clone of 100,000 manifests (no
//! reverse-`requires` index yet) < 500 ms.

#[path = "support/synth.rs"]
mod synth;

use baton::check::approvals::signers::AllowedSigners;
use baton::check::approvals::{self, verify};
use baton::check::{CheckOptions, Judge};
use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use std::process::Command;
use std::time::{Duration, Instant};
use synth::{Change, Synth};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn time<T>(iters: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(f());
        times.push(t.elapsed());
    }
    let min = *times.iter().min().unwrap();
    (median(times), min)
}

/// Tuesday 11:00 Berlin, a week after the synthetic registries' first commit is irrelevant:
/// the gates' outcome does not change the work done.
fn now() -> DateTime<Utc> {
    Utc::now()
}

struct Scenario {
    synth: Synth,
    base: Oid,
    /// Model 0: its staging version -> production, the production holder -> archived.
    replace: Oid,
    /// Models 0 and 1: their staging versions -> production as 10% canaries.
    canaries: Oid,
}

fn scenario(models: usize, versions: usize) -> Scenario {
    let mut s = Synth::build(models, versions);
    let base = s.head();
    let staged = s.initial_holder("staging").unwrap();
    let prod = s.initial_holder("production").unwrap();
    let replace = s.commit(
        "replace",
        &[
            Change::stage(0, staged, "production"),
            Change::stage(0, prod, "archived"),
        ],
        "promote model 0, archive its production version",
    );
    let canaries = s.branch_promoting("canaries", 2);
    Scenario {
        synth: s,
        base: Oid::from_str(&base).unwrap(),
        replace: Oid::from_str(&replace).unwrap(),
        canaries: Oid::from_str(&canaries).unwrap(),
    }
}

fn bench_check(quick: bool, sizes: &[(usize, usize)]) {
    let opts = CheckOptions {
        path: None,
        now: now(),
        github: None,
        ..Default::default()
    };
    let mut results = Vec::new();
    for &(models, versions) in sizes {
        let t = Instant::now();
        let sc = scenario(models, versions);
        eprintln!(
            "built {} manifests in {:.1} s",
            sc.synth.manifests(),
            t.elapsed().as_secs_f64()
        );
        let repo = Repository::open(sc.synth.path()).unwrap();
        let iters = if quick { 5 } else { 21 };
        for (name, head) in [("archive+promote", sc.replace), ("2 canaries", sc.canaries)] {
            let report = Judge::new().judge(&repo, sc.base, head, &opts).unwrap();
            assert_eq!(report.transitions.len(), 2, "{name}");
            let index = repo.path().join("baton/requires-index");
            let (first, first_min) = time(iters.min(5), || {
                let _ = std::fs::remove_file(&index);
                Judge::new().judge(&repo, sc.base, head, &opts).unwrap()
            });
            let (cold, cold_min) = time(iters, || {
                Judge::new().judge(&repo, sc.base, head, &opts).unwrap()
            });
            let mut judge = Judge::new();
            judge.judge(&repo, sc.base, head, &opts).unwrap();
            let (warm, warm_min) =
                time(iters, || judge.judge(&repo, sc.base, head, &opts).unwrap());
            let (lean, lean_min) = time(iters, || {
                Judge::new()
                    .reverse_requires(false)
                    .judge(&repo, sc.base, head, &opts)
                    .unwrap()
            });
            println!(
                "check {name:<16} {:>7} manifests: first ever (no requires-index) median {} (min {}), cold (fresh Judge, index on disk) median {} (min {}), warm median {} (min {}), without reverse-requires median {} (min {})",
                sc.synth.manifests(),
                ms(first),
                ms(first_min),
                ms(cold),
                ms(cold_min),
                ms(warm),
                ms(warm_min),
                ms(lean),
                ms(lean_min)
            );
            results.push((name, sc.synth.manifests(), cold, lean));
        }
        if !quick && versions * models >= 100_000 {
            bench_fresh_clone(&sc, &opts, iters);
        }
    }
    for name in ["archive+promote", "2 canaries"] {
        let (Some(small), Some(big)) = (
            results.iter().find(|r| r.0 == name && r.1 == 1_000),
            results.iter().find(|r| r.0 == name && r.1 == 100_000),
        ) else {
            continue;
        };
        println!(
            "check {name:<16} 100,000 vs 1,000 (goal < 2x): cold {:.1}x, without reverse-requires {:.1}x",
            big.2.as_secs_f64() / small.2.as_secs_f64(),
            big.3.as_secs_f64() / small.3.as_secs_f64()
        );
    }
}

/// `check` in a fresh clone (`git clone --mirror`: objects packed as a server sends them, no
/// `baton/` cache in the git dir), as a CI job runs it: every run starts without the index.
fn bench_fresh_clone(sc: &Scenario, opts: &CheckOptions, iters: usize) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("clone.git");
    let t = Instant::now();
    let src = format!("file://{}", sc.synth.path().display());
    git(
        dir.path(),
        &["clone", "-q", "--mirror", &src, dst.to_str().unwrap()],
    );
    eprintln!("cloned in {:.1} s", t.elapsed().as_secs_f64());
    let repo = Repository::open(&dst).unwrap();
    let index = repo.path().join("baton/requires-index");
    for (name, head) in [("archive+promote", sc.replace), ("2 canaries", sc.canaries)] {
        let (fresh, fresh_min) = time(iters.min(7), || {
            let _ = std::fs::remove_file(&index);
            Judge::new().judge(&repo, sc.base, head, opts).unwrap()
        });
        println!(
            "check {name:<16} {:>7} manifests: fresh clone (no requires-index) median {} (min {}) (goal < 500 ms)",
            sc.synth.manifests(),
            ms(fresh),
            ms(fresh_min)
        );
    }
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn bench_approvals(quick: bool, commits: usize) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("alice");
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "alice@acme.com",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut parts = pubkey.split_whitespace();
    let line = format!(
        "alice@acme.com namespaces=\"git\" {} {}\n",
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.email", "alice@acme.com"]);
    git(d, &["config", "user.name", "Alice"]);
    git(d, &["commit", "-q", "--allow-empty", "-m", "base"]);
    let base = git(d, &["rev-parse", "HEAD"]);
    let t = Instant::now();
    for i in 0..commits {
        git(
            d,
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("user.signingkey={}", key.display()),
                "commit",
                "-q",
                "-S",
                "--allow-empty",
                "-m",
                &format!("approve {i}"),
                "-m",
                &format!("Baton-Approve: model-{i:05}@1 -> production"),
            ],
        );
    }
    eprintln!(
        "made 100 signed commits in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let repo = Repository::open(d).unwrap();
    let head = repo.head().unwrap().target().unwrap();
    let base = Oid::from_str(&base).unwrap();
    let signers = AllowedSigners::parse(&line);
    let iters = if quick { 5 } else { 21 };
    // Whole collection: walk the range, extract and verify every signature.
    let (walk, walk_min) = time(iters, || {
        let ev = approvals::collect(&repo, base, head, Some(&signers), &[], Utc::now()).unwrap();
        assert_eq!(ev.approvals.len(), commits);
        ev
    });
    // Signature verification alone, on pre-extracted payloads.
    let payloads: Vec<(Vec<u8>, Vec<u8>)> = {
        let mut w = repo.revwalk().unwrap();
        w.push(head).unwrap();
        w.hide(base).unwrap();
        w.map(|o| {
            let (s, d) = repo.extract_signature(&o.unwrap(), None).unwrap();
            (s.to_vec(), d.to_vec())
        })
        .collect()
    };
    let at = Utc::now();
    let (verify_only, verify_min) = time(iters, || {
        for (s, d) in &payloads {
            verify::verify_payload(s, d, &signers, &[], at).unwrap();
        }
    });
    println!(
        "approvals: collect+verify {commits} signed commits median {} (min {}); verify only median {} (min {}) (goal for 100: < 50 ms)",
        ms(walk),
        ms(walk_min),
        ms(verify_only),
        ms(verify_min)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it:
    // then only a small smoke run, so the test suite stays fast.
    if !args.iter().any(|a| a == "--bench") {
        bench_approvals(true, 3);
        bench_check(true, &[(100, 10)]);
        return;
    }
    let quick = words.contains(&"quick");
    let parts: Vec<&&str> = words.iter().filter(|w| **w != "quick").collect();
    let want = |p: &str| parts.is_empty() || parts.iter().any(|w| **w == p);
    if want("approvals") {
        bench_approvals(quick, 100);
    }
    if want("check") {
        bench_check(quick, &[(100, 10), (10_000, 10)]);
    }
}
