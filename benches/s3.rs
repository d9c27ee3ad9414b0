//! `s3://` fetch and verify: MB/s and peak memory of the daemon's artifact path (object_store
//! GET streamed through the bounded channel, size-bounded, sha256 while written to a file)
//! against a moto server on loopback, for two object sizes, beside a plain GET of the same object.
//!
//! `cargo bench --bench s3` measures 1/8 of `BATON_BENCH_S3_BYTES` and all of it (default
//! 256 MiB; up to 1 GiB), median of `BATON_BENCH_RUNS` runs (3). Under `cargo test` only a smoke
//! run of 4 MiB. Without `moto_server` (PATH, or the venv `.ci/run` makes) it prints why and
//! skips. moto is Python: the plain GET shows how fast it serves at all.

#[path = "../tests/common/moto.rs"]
mod moto;

use baton::daemon::artifact::remote::Remote;
use baton::daemon::artifact::{ArtifactLimits, ArtifactSource, Fetcher};
use baton::daemon::release::{Release, ReleaseVersion};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::{Duration, Instant};

/// `n` deterministic bytes, generated as they are read (never held whole).
struct Pattern {
    left: u64,
    at: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            *b = (self.at.wrapping_mul(2_654_435_761) >> 24) as u8;
            self.at += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn pattern(n: u64) -> Pattern {
    Pattern { left: n, at: 0 }
}

fn digest_of(n: u64) -> String {
    let mut h = Sha256::new();
    let mut r = pattern(n);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    hex::encode(h.finalize())
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Start a new peak (Linux: writing 5 to clear_refs resets VmHWM to the current RSS).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Measured {
    fetch_mbs: f64,
    stream_mbs: f64,
    get_mbs: f64,
    hash_mbs: f64,
    peak_mib: f64,
}

fn measure(moto: &moto::Moto, bytes: u64, runs: usize) -> Measured {
    let key = format!("bench/{bytes}.bin");
    moto.put_stream("bench", &key, bytes, pattern(bytes));
    let sha256 = digest_of(bytes);
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(repo_dir.path()).unwrap();
    let remote = Remote::with_env(Duration::from_secs(30), moto.env());
    let limits = ArtifactLimits::default();
    let trees = Default::default();
    let fetcher = Fetcher {
        repo: &repo,
        timeout: Duration::from_secs(30),
        remote: &remote,
        trees: &trees,
        limits: &limits,
    };
    let uri = format!("s3://bench/{key}");
    let release = Release {
        model: "bench".into(),
        commit: "0".repeat(40),
        root: String::new(),
        versions: vec![ReleaseVersion {
            version: "1".into(),
            sha256: sha256.clone(),
            uri: uri.clone(),
            size: Some(bytes),
            format: None,
            files: Vec::new(),
            traffic: 100,
            primary: true,
            requires: Default::default(),
            metrics: Default::default(),
        }],
    };
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("artifact");
    let mb = bytes as f64 / 1e6;

    let reset = reset_peak();
    let mut fetch = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let r = fetcher.open(&release, &release.versions[0]).unwrap();
        let (got, n) = baton::daemon::fsutil::copy_hashing(r, &file).unwrap();
        fetch.push(mb / t.elapsed().as_secs_f64());
        assert_eq!((got.as_str(), n), (sha256.as_str(), bytes), "verified");
        std::fs::remove_file(&file).unwrap();
    }
    let peak_mib = if reset { peak_rss_mib() } else { f64::NAN };

    // The same object through object_store and the channel, read and dropped (no hashing,
    // no file): the client's share.
    let mut stream = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut o = remote.open(&uri).unwrap();
        let n = std::io::copy(&mut o.reader, &mut std::io::sink()).unwrap();
        assert_eq!(n, bytes);
        stream.push(mb / t.elapsed().as_secs_f64());
    }

    // The same object by a plain GET, read and dropped: what moto can serve at all.
    let mut get = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..runs {
        let t = Instant::now();
        let mut r = ureq::get(&format!("{}/bench/{key}", moto.endpoint))
            .call()
            .unwrap()
            .into_reader();
        let mut n = 0u64;
        loop {
            let k = r.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        assert_eq!(n, bytes);
        get.push(mb / t.elapsed().as_secs_f64());
    }
    // sha256 of as many bytes from memory: the hashing ceiling of this build.
    let t = Instant::now();
    let (_, n) = baton::daemon::fsutil::sha256_reader(std::io::repeat(7).take(bytes)).unwrap();
    assert_eq!(n, bytes);
    let hash_mbs = mb / t.elapsed().as_secs_f64();
    Measured {
        hash_mbs,
        fetch_mbs: median(fetch),
        stream_mbs: median(stream),
        get_mbs: median(get),
        peak_mib,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    if moto::find().is_none() {
        println!("s3 bench skipped: moto_server not found (pip install \"moto[server]\", or run .ci/run)");
        return;
    }
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    moto.create_bucket("bench");
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    if !bench {
        let m = measure(&moto, 4 << 20, 1);
        println!(
            "smoke: 4 MiB s3:// fetch+verify at {:.0} MB/s (stream only {:.0} MB/s, plain GET {:.0} MB/s), peak RSS {:.1} MiB (run `cargo bench --bench s3`)",
            m.fetch_mbs, m.stream_mbs, m.get_mbs, m.peak_mib
        );
        return;
    }
    let big = env("BATON_BENCH_S3_BYTES", 256 << 20).max(8 << 20);
    let runs = env("BATON_BENCH_RUNS", 3).max(1) as usize;
    println!("s3:// fetch+verify from moto on loopback, median of {runs} runs");
    let baseline = peak_rss_mib();
    for bytes in [big / 8, big] {
        let m = measure(&moto, bytes, runs);
        println!(
            "{:>6} MiB: fetch+verify {:6.1} MB/s | object_store stream only {:6.1} MB/s | plain GET {:6.1} MB/s | sha256 from memory {:6.1} MB/s | peak RSS during fetches {:5.1} MiB",
            bytes >> 20,
            m.fetch_mbs,
            m.stream_mbs,
            m.get_mbs,
            m.hash_mbs,
            m.peak_mib
        );
    }
    println!("(RSS before the first fetch: {baseline:.1} MiB)");
}
