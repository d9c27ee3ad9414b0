//! Benchmark of reading a registry revision from git: cold loads of 1k / 10k / 100k manifests,
//! peak RSS of a 100k cold load (in a fresh child process), and a warm reload after one change.
//!
//! `cargo bench --bench load` runs everything (`cargo test` runs only a quick smoke check);
//! pass words to pick parts:
//! `cargo bench --bench load -- cold rss reload parse` and `quick` for fewer iterations
//! (`parse`: the fast manifest parser against serde_yaml alone on the same manifests).
//! Goals (issue 2): 100,000 manifests cold < 1.5 s with peak RSS < 200 MB; reload after a
//! commit changing one manifest < 20 ms, parsing only that manifest.

#[path = "support/synth.rs"]
mod synth;

use baton::registry::files::GitFiles;
use baton::registry::{invariants, Loader};
use git2::{Oid, Repository};
use std::process::Command;
use std::time::{Duration, Instant};
use synth::Synth;

const CHILD_FLAG: &str = "--child-cold-load";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == CHILD_FLAG) {
        child_cold_load(&args[i + 1], &args[i + 2]);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench binaries without `--bench` (and unoptimised):
        // check that the benchmark's steps work on a small registry, quickly.
        smoke();
        return;
    }
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = words.contains(&"quick");
    let want = |part: &str| {
        let parts: Vec<&&str> = words.iter().filter(|w| **w != "quick").collect();
        parts.is_empty() || parts.iter().any(|w| **w == part)
    };
    let mut rows: Vec<Row> = Vec::new();

    // Build the big registry first: RSS is measured in child processes, never here.
    let t = Instant::now();
    let mut big = Synth::build(10_000, 10);
    eprintln!(
        "built synthetic registry: {} manifests in {:.1} s",
        big.manifests(),
        t.elapsed().as_secs_f64()
    );

    if want("rss") {
        let runs = if quick { 1 } else { 3 };
        let mut times = Vec::new();
        let mut rss = Vec::new();
        let head = big.head();
        for _ in 0..runs {
            let (ms, cpu_ms, kb) = run_child(big.path().to_str().unwrap(), &head);
            times.push((
                Duration::from_secs_f64(ms / 1000.0),
                Duration::from_secs_f64(cpu_ms / 1000.0),
            ));
            rss.push(kb);
        }
        rss.sort_unstable();
        let mut r = Row::new("cold load 100,000 (fresh process)", &times, "< 1.5 s");
        r.extra = format!(
            "peak RSS median {:.1} MB, min {:.1} MB (goal < 200 MB)",
            rss[rss.len() / 2] as f64 / 1024.0,
            rss[0] as f64 / 1024.0
        );
        rows.push(r);
    }

    if want("cold") {
        for (models, versions, iters) in [(100, 10, 15), (1_000, 10, 9), (10_000, 10, 5)] {
            let owned;
            let s = if models * versions == big.manifests() {
                &big
            } else {
                owned = Synth::build(models, versions);
                &owned
            };
            let iters = if quick { iters.min(3) } else { iters };
            let repo = Repository::open(s.path()).unwrap();
            let commit = Oid::from_str(&s.head()).unwrap();
            let mut times = Vec::new();
            for _ in 0..iters {
                let mut loader = Loader::new();
                let m = Measure::start();
                let reg = loader.load(&repo, commit, s.root()).expect("load");
                times.push(m.stop());
                assert_eq!(reg.version_count(), s.manifests());
                assert!(
                    reg.load_diagnostics().is_empty(),
                    "synthetic registry must load clean"
                );
                assert_eq!(loader.stats.parsed, s.manifests());
            }
            if s.manifests() <= 10_000 {
                // The generator's output is a valid registry (schema and invariants).
                let reg = Loader::new().load(&repo, commit, s.root()).unwrap();
                let files = GitFiles::new(&repo, commit).unwrap();
                let problems = invariants::validate(&reg, &files);
                assert!(
                    problems.is_empty(),
                    "synthetic registry invalid: {problems:?}"
                );
            }
            let goal = if s.manifests() == 100_000 {
                "< 1.5 s"
            } else {
                ""
            };
            rows.push(Row::new(
                &format!("cold load {} (in process)", thousands(s.manifests())),
                &times,
                goal,
            ));
        }
    }

    if want("reload") {
        let iters = if quick { 5 } else { 20 };
        let repo = Repository::open(big.path()).unwrap();
        let mut loader = Loader::new();
        let first = Oid::from_str(&big.head()).unwrap();
        loader.load(&repo, first, big.root()).expect("load");
        let mut times = Vec::new();
        let mut parsed = Vec::new();
        for i in 0..iters {
            // Move an archived version (label 1) of a different model each time, so every
            // commit makes a manifest blob the loader has never seen.
            let m = (i * 7919) % big.spec.models;
            let stage = "development";
            let c = Oid::from_str(&big.set_stage(m, 1, stage)).unwrap();
            let span = Measure::start();
            let reg = loader.load(&repo, c, big.root()).expect("reload");
            times.push(span.stop());
            assert_eq!(
                loader.stats.parsed, 1,
                "reload must parse only the changed manifest"
            );
            assert_eq!(
                reg.version(&Synth::model_name(m), "1")
                    .unwrap()
                    .manifest
                    .stage,
                stage
            );
            parsed.push(loader.stats.parsed);
        }
        let mut r = Row::new("reload 100,000 after 1-manifest commit", &times, "< 20 ms");
        parsed.sort_unstable();
        r.extra = format!(
            "manifests parsed per reload: min {} max {} (stats.parsed; goal 1), models reused: {}",
            parsed[0],
            parsed[parsed.len() - 1],
            loader.stats.reused_models
        );
        rows.push(r);
    }

    if want("parse") {
        // Whether the load still needs the fast manifest parser (issue 7): the same 100,000
        // version manifests parsed through `manifest::parse_version` (fast path, serde_yaml
        // as the fallback) and through serde_yaml alone; both must give the same values.
        let texts: Vec<String> = (0..big.spec.models)
            .flat_map(|m| (1..=big.spec.versions).map(move |v| (m, v)))
            .map(|(m, v)| big.manifest_text("main", m, v))
            .collect();
        let rounds = if quick { 1 } else { 3 };
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for _ in 0..rounds {
            let span = Measure::start();
            let a: Vec<_> = texts
                .iter()
                .map(|t| baton::manifest::parse_version(t.as_bytes()).unwrap())
                .collect();
            fast.push(span.stop());
            let span = Measure::start();
            let b: Vec<baton::manifest::VersionManifest> = texts
                .iter()
                .map(|t| serde_yaml::from_str(t).unwrap())
                .collect();
            slow.push(span.stop());
            assert!(a == b, "the fast path must parse what serde_yaml parses");
        }
        let ratio = |r: &[(Duration, Duration)]| {
            let mut t: Vec<Duration> = r.iter().map(|x| x.0).collect();
            t.sort_unstable();
            t[t.len() / 2]
        };
        let (f, s) = (ratio(&fast), ratio(&slow));
        rows.push(Row::new("parse 100,000 manifests, fast path", &fast, "-"));
        let mut r = Row::new("parse 100,000 manifests, serde_yaml only", &slow, "-");
        r.extra = format!(
            "serde_yaml alone takes {:.1}x the fast path ({} more per cold load of 100,000)",
            s.as_secs_f64() / f.as_secs_f64(),
            fmt(s.saturating_sub(f))
        );
        rows.push(r);
    }

    println!();
    println!(
        "{:<42} {:>10} {:>10} {:>10} {:>5}  goal",
        "benchmark", "median", "min", "cpu median", "runs"
    );
    println!("{}", "-".repeat(92));
    for r in &rows {
        println!(
            "{:<42} {:>10} {:>10} {:>10} {:>5}  {}",
            r.name,
            fmt(r.median),
            fmt(r.min),
            fmt(r.cpu),
            r.runs,
            r.goal
        );
        if !r.extra.is_empty() {
            println!("{:<42} {}", "", r.extra);
        }
    }
}

/// The benchmark's steps on a small registry, for `cargo test`.
fn smoke() {
    let mut s = Synth::build(20, 4);
    let repo = Repository::open(s.path()).unwrap();
    let mut loader = Loader::new();
    let reg = loader
        .load(&repo, Oid::from_str(&s.head()).unwrap(), s.root())
        .unwrap();
    assert_eq!((reg.version_count(), loader.stats.parsed), (80, 80));
    let c = Oid::from_str(&s.set_stage(3, 1, "development")).unwrap();
    loader.load(&repo, c, s.root()).unwrap();
    assert_eq!(loader.stats.parsed, 1);
    let (_, _, kb) = run_child(s.path().to_str().unwrap(), &s.head());
    assert!(kb > 0);
    println!("load bench smoke test: ok (run `cargo bench --bench load` for numbers)");
}

struct Row {
    name: String,
    median: Duration,
    min: Duration,
    /// Median CPU time (user + system, all threads) of the process over the measured span.
    cpu: Duration,
    runs: usize,
    goal: String,
    extra: String,
}

impl Row {
    fn new(name: &str, times: &[(Duration, Duration)], goal: &str) -> Row {
        let mut t: Vec<Duration> = times.iter().map(|x| x.0).collect();
        let mut c: Vec<Duration> = times.iter().map(|x| x.1).collect();
        t.sort_unstable();
        c.sort_unstable();
        Row {
            name: name.to_owned(),
            median: t[t.len() / 2],
            min: t[0],
            cpu: c[c.len() / 2],
            runs: t.len(),
            goal: goal.to_owned(),
            extra: String::new(),
        }
    }
}

fn fmt(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.3} s", ms / 1000.0)
    } else {
        format!("{ms:.2} ms")
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Wall-clock and CPU time of a span (CPU time is less disturbed by other processes).
struct Measure(Instant, Duration);

impl Measure {
    fn start() -> Measure {
        Measure(Instant::now(), cpu_time())
    }
    fn stop(self) -> (Duration, Duration) {
        (self.0.elapsed(), cpu_time().saturating_sub(self.1))
    }
}

/// User + system CPU time of this process (all threads).
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `u` outlives the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Run one cold load in a fresh copy of this binary; returns (wall ms, CPU ms, peak RSS KiB).
fn run_child(repo: &str, commit: &str) -> (f64, f64, u64) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([CHILD_FLAG, repo, commit])
        .output()
        .expect("spawn child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let ms: f64 = it.next().unwrap().parse().unwrap();
    let cpu_ms: f64 = it.next().unwrap().parse().unwrap();
    let kb: u64 = it.next().unwrap().parse().unwrap();
    (ms, cpu_ms, kb)
}

/// In the child: one cold load, then print "<wall ms> <cpu ms> <VmHWM KiB>".
fn child_cold_load(repo: &str, commit: &str) {
    let repo = Repository::open(repo).unwrap();
    let commit = Oid::from_str(commit).unwrap();
    let mut loader = Loader::new();
    let m = Measure::start();
    let reg = loader.load(&repo, commit, "").expect("load");
    let (wall, cpu) = m.stop();
    assert!(reg.version_count() > 0);
    println!(
        "{:.3} {:.3} {}",
        wall.as_secs_f64() * 1000.0,
        cpu.as_secs_f64() * 1000.0,
        vm_hwm_kb()
    );
    drop(reg);
}

/// Peak resident set size of this process, from /proc/self/status.
fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
