//! Benchmarks of the controller (issue 4 goals in brackets):
//! * `latency`: commit-to-deployed for a 1 MB artifact on a local repo, measured from the ref
//!   update to `deployment.json` changing, through the real daemon [median < 50 ms, p99 < 200 ms];
//! * `resync`: a no-op resync of 1,000 models x 2 environments, in process [< 100 ms];
//! * `verify`: artifact verification throughput (streaming sha256) [>= 1 GB/s];
//! * `rss`: resident memory of the daemon serving 10,000 models x 2 environments [< 100 MB];
//! * `idle`: passes and CPU seconds of an idle daemon (100 models, `--interval 30s`) over
//!   `BATON_BENCH_IDLE_SECS` seconds (default 60) [one pass per interval, ~0 CPU].
//!
//! `cargo bench --bench daemon` runs everything (under `cargo test` only a smoke run: two
//! rounds of `latency` and two idle seconds); pass words to pick parts:
//! `cargo bench --bench daemon -- latency resync verify rss idle`, plus `quick` for fewer rounds.
//! The synthetic registries are built here (not with benches/support/synth.rs) because the
//! daemon must fetch and verify real artifact bytes, and synth's artifacts are `s3://` names;
//! starting the daemon and the latency loop live in benches/support/serve.rs (notify.rs uses
//! them too).

#[path = "support/serve.rs"]
mod serve;

use baton::daemon::fsutil::sha256_file;
use baton::daemon::state::StateDir;
use baton::daemon::{Controller, ControllerConfig};
use serve::{manifest, percentile, sha, start_daemon};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICY: &str = "version: 1
stages:
  - name: staging
  - name: production
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

/// A repository on `main` with `models` models, each with version 1 in production and 2 in
/// staging and small real artifacts, written in one `git fast-import` commit.
fn build_registry(dir: &Path, models: usize) {
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(st.success());
    };
    git(&["init", "-q", "-b", "main"]);
    let mut s: Vec<u8> = Vec::with_capacity(models * 800);
    s.extend_from_slice(b"commit refs/heads/main\ncommitter Bench <bench@acme.com> 1764000000 +0000\ndata 9\nregistry\n");
    let mut file = |path: &str, data: &[u8]| {
        s.extend_from_slice(format!("M 100644 inline {path}\ndata {}\n", data.len()).as_bytes());
        s.extend_from_slice(data);
        s.push(b'\n');
    };
    file("baton.yaml", POLICY.as_bytes());
    for m in 0..models {
        let name = format!("model-{m:05}");
        file(
            &format!("models/{name}/model.yaml"),
            format!("name: {name}\ndescription: bench\nowners: [a@acme.com]\n").as_bytes(),
        );
        for (v, stage) in [(1, "production"), (2, "staging")] {
            let bytes = format!("{name} build {v}\n").into_bytes();
            let uri = format!("artifacts/{name}/{v}.bin");
            file(&uri, &bytes);
            file(
                &format!("models/{name}/versions/{v}.yaml"),
                manifest(&name, v, stage, &uri, &sha(&bytes)).as_bytes(),
            );
        }
    }
    s.extend_from_slice(b"done\n");
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet", "--done"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&s).unwrap();
    assert!(child.wait().unwrap().success());
}

fn shm_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn resync(rounds: usize) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    build_registry(&dir, 1000);
    // Deployments on tmpfs when there is one: setup speed only (a no-op resync writes nothing).
    let state_tmp = shm_tempdir();
    let state = state_tmp.path().join("state");
    let cfg = ControllerConfig {
        rollback: Default::default(),
        repo: dir.clone(),
        branch: "main".into(),
        path: None,
        interval: Duration::from_secs(30),
        trust: None,
        fetch_timeout: Duration::from_secs(10),
        github: None,
        artifacts: Default::default(),
        public_url: None,
    };
    let sd = StateDir::open(&state).unwrap();
    let mut c = Controller::new(cfg, sd, Arc::new(AtomicBool::new(false))).unwrap();
    let t = Instant::now();
    c.reconcile().unwrap();
    eprintln!(
        "  initial deploy of 1,000 models x 2 environments: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        c.reconcile().unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    assert!(c.status.all_synced());
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// sha256 of an in-memory buffer, to separate hashing from reading.
fn hash_only(rounds: usize) -> f64 {
    let buf: Vec<u8> = (0..(256usize << 20))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(Sha256::digest(&buf));
        samples.push(buf.len() as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    percentile(&mut samples, 0.5)
}

fn verify(rounds: usize) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("artifact");
    let size = 512usize << 20;
    {
        let mut f = std::fs::File::create(&p).unwrap();
        let chunk: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 251) as u8).collect();
        for _ in 0..(size >> 20) {
            f.write_all(&chunk).unwrap();
        }
    }
    let _ = sha256_file(&p).unwrap(); // warm the page cache
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let _ = sha256_file(&p).unwrap();
        samples.push(size as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    percentile(&mut samples, 0.5)
}

fn rss() -> (f64, f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    build_registry(&dir, 10_000);
    // The 20,000 deployments go to tmpfs when there is one (setup speed only).
    let state_tmp = shm_tempdir();
    let t = Instant::now();
    let (mut child, _addr) = start_daemon(&dir, state_tmp.path(), "2s", &[]);
    let ready = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5)); // a couple of resyncs
    let (rss, hwm) = (
        serve::proc_mb(child.id(), "VmRSS:"),
        serve::proc_mb(child.id(), "VmHWM:"),
    );
    let _ = child.kill();
    let _ = child.wait();
    (rss, hwm, ready)
}

/// User plus system CPU time of process `pid`, in seconds (from /proc/<pid>/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = rest[11].parse::<f64>().unwrap() + rest[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// `baton_reconciles_total` from the daemon's `/metrics`.
fn reconciles(addr: &str) -> f64 {
    serve::sample(&serve::metrics_text(addr), "baton_reconciles_total").unwrap()
}

/// An idle daemon over `secs`: (passes, CPU seconds). Nothing writes the repository, so only
/// the resync timer (`--interval 30s`) should run passes.
fn idle(secs: u64) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    build_registry(&dir, 100);
    let state = tmp.path().join("state");
    let (mut child, addr) = start_daemon(&dir, &state, "30s", &[]);
    let (p0, c0) = (reconciles(&addr), cpu_seconds(child.id()));
    std::thread::sleep(Duration::from_secs(secs));
    let (p1, c1) = (reconciles(&addr), cpu_seconds(child.id()));
    let _ = child.kill();
    let _ = child.wait();
    (p1 - p0, c1 - c0)
}

fn idle_secs(default: u64) -> u64 {
    std::env::var("BATON_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs this binary without `--bench`: a smoke run only.
    if !args.iter().any(|a| a == "--bench") {
        let med = percentile(&mut serve::latency(2, "", &[]), 0.5);
        println!(
            "smoke: commit-to-deployed {med:.1} ms (run `cargo bench --bench daemon` to measure)"
        );
        let secs = idle_secs(2);
        let (passes, cpu) = idle(secs);
        println!("smoke: idle {secs} s: {passes} passes, {cpu:.2} CPU s");
        assert!(
            passes <= 2.0,
            "an idle daemon ran {passes} passes in {secs} s"
        );
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
        let mut s = serve::latency(if quick { 20 } else { 100 }, "", &[]);
        let (med, p99) = (percentile(&mut s, 0.5), percentile(&mut s, 0.99));
        println!("commit-to-deployed, 1 MB artifact: median {med:.1} ms, p99 {p99:.1} ms  [goal: < 50 ms, < 200 ms]");
    }
    if want("resync") {
        let rounds = std::env::var("BATON_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(if quick { 5 } else { 20 });
        let (med, p99) = resync(rounds);
        println!("no-op resync, 1,000 models x 2 environments: median {med:.1} ms, p99 {p99:.1} ms  [goal: < 100 ms]");
    }
    if want("verify") {
        let gbs = verify(if quick { 3 } else { 9 });
        println!("artifact verification (sha256, 512 MiB from page cache): median {gbs:.2} GB/s  [goal: >= 1 GB/s]");
        let mem = hash_only(if quick { 3 } else { 9 });
        println!("  sha256 of an in-memory buffer alone: median {mem:.2} GB/s");
    }
    if want("idle") {
        let secs = idle_secs(if quick { 10 } else { 60 });
        let (passes, cpu) = idle(secs);
        let goal = secs / 30 + 1;
        println!("idle daemon, 100 models x 2 environments, --interval 30s, {secs} s: {passes} passes, {cpu:.2} CPU s  [goal: <= {goal} passes, ~0 CPU]");
    }
    if want("rss") {
        let (rss, hwm, ready) = rss();
        println!("daemon with 10,000 models x 2 environments: RSS {rss:.1} MB (peak {hwm:.1} MB), ready after {ready:.1} s  [goal: < 100 MB]");
    }
}
