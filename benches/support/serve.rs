//! Shared by the benches that drive a real `baton serve` process: start it, read its
//! `/metrics`, its peak memory, and the commit-to-deployed latency loop of a local repository.
//!
//! Include with `#[path = "support/serve.rs"] mod serve;`; each bench uses part of it.
#![allow(dead_code)]

use git2::{build::TreeUpdateBuilder, FileMode, Oid, Repository, Signature};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The `p` quantile (0..=1) of `v` (sorted in place).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

pub fn manifest(model: &str, v: usize, stage: &str, uri: &str, digest: &str) -> String {
    format!(
        "model: {model}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {digest}\ncreated: 2026-11-01T10:00:00Z\n"
    )
}

/// Start the real daemon with `--interval interval` and the extra environment `env`;
/// returns it and its address once `/readyz` answers 200.
pub fn start_daemon(
    repo: &Path,
    state: &Path,
    interval: &str,
    env: &[(&str, &str)],
) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--interval",
            interval,
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut addr = String::new();
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        if let Some(a) = line.strip_prefix("listening on http://") {
            addr = a.trim().to_owned();
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if let Ok(r) = ureq::get(&format!("http://{addr}/readyz")).call() {
            if r.status() == 200 {
                return (child, addr);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("daemon not ready");
}

/// The daemon's `/metrics` text.
pub fn metrics_text(addr: &str) -> String {
    ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// The value of the sample `series` (the name with its labels, exactly as exposed) in
/// `/metrics` text; `None` when the daemon does not expose it (yet).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// A `/proc/<pid>/status` field in MB (`VmRSS:`, `VmHWM:`).
pub fn proc_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// A 1 MB artifact, different for each `n`.
fn artifact(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 << 20);
    let mut x = (n as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(1);
    while v.len() < (1 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// Commit-to-deployed for a 1 MB artifact on a local repository, through the real daemon
/// (started with `env`): `rounds` commits, each a new version of model `m` in `staging`, timed
/// from the ref update to `deployment.json` naming it. `policy_tail` is appended to the
/// policy (a `notifications:` block). Returns the samples in ms.
pub fn latency(rounds: usize, policy_tail: &str, env: &[(&str, &str)]) -> Vec<f64> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    let repo = Repository::init(&dir).unwrap();
    let sig = Signature::now("Bench", "bench@acme.com").unwrap();
    let policy = format!("version: 1\nstages:\n  - name: staging\n  - name: archived\n    terminal: true\nenvironments:\n  staging:\n    stage: staging\n    target: {{kind: local, path: staging}}\n{policy_tail}");
    let mut b = TreeUpdateBuilder::new();
    let empty = repo.treebuilder(None).unwrap().write().unwrap();
    let empty = repo.find_tree(empty).unwrap();
    let put = |b: &mut TreeUpdateBuilder, path: &str, bytes: &[u8]| {
        let oid = repo.blob(bytes).unwrap();
        b.upsert(path, oid, FileMode::Blob);
    };
    put(&mut b, "baton.yaml", policy.as_bytes());
    put(
        &mut b,
        "models/m/model.yaml",
        b"name: m\ndescription: bench\nowners: [a@acme.com]\n",
    );
    let a = artifact(0);
    put(&mut b, "artifacts/m/0.bin", &a);
    put(
        &mut b,
        "models/m/versions/0.yaml",
        manifest("m", 0, "staging", "artifacts/m/0.bin", &sha(&a)).as_bytes(),
    );
    let tree = repo
        .find_tree(b.create_updated(&repo, &empty).unwrap())
        .unwrap();
    let mut head = repo
        .commit(Some("refs/heads/main"), &sig, &sig, "v0", &tree, &[])
        .unwrap();
    repo.set_head("refs/heads/main").unwrap();

    let state = tmp.path().join("state");
    let (mut child, _addr) = start_daemon(&dir, &state, "30s", env);
    let record = state.join("deploy/staging/m/deployment.json");
    let mut samples = Vec::new();
    for n in 1..=rounds {
        let a = artifact(n);
        let parent = repo.find_commit(head).unwrap();
        let mut b = TreeUpdateBuilder::new();
        let prev = manifest(
            "m",
            n - 1,
            "archived",
            &format!("artifacts/m/{}.bin", n - 1),
            &sha(&artifact(n - 1)),
        );
        put(
            &mut b,
            &format!("models/m/versions/{}.yaml", n - 1),
            prev.as_bytes(),
        );
        let uri = format!("artifacts/m/{n}.bin");
        put(&mut b, &uri, &a);
        put(
            &mut b,
            &format!("models/m/versions/{n}.yaml"),
            manifest("m", n, "staging", &uri, &sha(&a)).as_bytes(),
        );
        let tree = repo
            .find_tree(b.create_updated(&repo, &parent.tree().unwrap()).unwrap())
            .unwrap();
        let c: Oid = repo
            .commit(None, &sig, &sig, &format!("v{n}"), &tree, &[&parent])
            .unwrap();
        let needle = format!("\"version\": \"{n}\"");
        let t0 = Instant::now();
        repo.reference("refs/heads/main", c, true, "bench").unwrap();
        loop {
            if let Ok(s) = std::fs::read_to_string(&record) {
                if s.contains(&needle) {
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "round {n} never deployed"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        head = c;
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    samples
}
