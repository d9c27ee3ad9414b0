//! Remote artifact sources end to end: a real `baton serve --once` deploying `s3://` artifacts
//! from a moto server on loopback, `register --artifact s3://…`, `http://` downloads from a
//! server in the test, and `validate`'s rule that remote artifacts give their size.

use crate::common;

use baton::daemon::artifact::remote::Remote;
use baton::daemon::artifact::{ArtifactLimits, ArtifactSource, Fetcher};
use baton::daemon::release::{Release, ReleaseVersion};
use baton::manifest::version::{listing_digest, ArtifactFile};
use common::moto::Moto;
use common::{code, stderr, stdout, TestRepo};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `n` bytes that are not all alike (so a chunk out of place changes the digest).
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

const POLICY: &str = "version: 1
stages:
  - name: development
  - name: staging
  - name: archived
    terminal: true
environments:
  staging:
    stage: staging
    target: {kind: local, path: staging}
";

fn manifest(v: &str, stage: &str, uri: &str, digest: &str, size: Option<u64>) -> String {
    let size = size.map(|n| format!("  size: {n}\n")).unwrap_or_default();
    format!(
        "model: alpha\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {digest}\n{size}created: 2026-11-01T10:00:00Z\n"
    )
}

/// A registry with model `alpha`, version 1 in staging from `uri`.
struct Registry {
    repo: TestRepo,
    state: tempfile::TempDir,
}

impl Registry {
    fn new(uri: &str, digest: &str, size: Option<u64>) -> Registry {
        let repo = TestRepo::new();
        repo.write("baton.yaml", POLICY);
        repo.write(
            "models/alpha/model.yaml",
            "name: alpha\ndescription: test\nowners: [alice@acme.com]\n",
        );
        repo.write(
            "models/alpha/versions/1.yaml",
            &manifest("1", "staging", uri, digest, size),
        );
        repo.commit_all("alpha 1 in staging");
        Registry {
            repo,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// Version 2 from `uri` replaces version 1 in staging.
    fn promote_2(&self, uri: &str, digest: &str, size: Option<u64>) {
        self.repo.write(
            "models/alpha/versions/2.yaml",
            &manifest("2", "development", uri, digest, size),
        );
        self.repo.commit_all("register alpha 2");
        let one = self.repo.read("models/alpha/versions/1.yaml");
        self.repo.write(
            "models/alpha/versions/1.yaml",
            &one.replace("stage: staging", "stage: archived"),
        );
        let two = self.repo.read("models/alpha/versions/2.yaml");
        self.repo.write(
            "models/alpha/versions/2.yaml",
            &two.replace("stage: development", "stage: staging"),
        );
        self.repo.commit_all("alpha 2 to staging");
    }

    /// One `baton serve --once` pass with `env` added.
    fn once(&self, env: &[(String, String)], extra: &[&str]) -> Output {
        let mut args = vec![
            "--repo",
            self.repo.path().to_str().unwrap(),
            "serve",
            "--once",
            "--state-dir",
            self.state.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args, self.repo.path(), env)
    }

    fn deploy_dir(&self) -> PathBuf {
        self.state.path().join("deploy/staging/alpha")
    }

    fn deployed(&self) -> Option<String> {
        let b = std::fs::read(self.deploy_dir().join("deployment.json")).ok()?;
        let v: Value = serde_json::from_slice(&b).ok()?;
        Some(v["version"].as_str()?.to_owned())
    }

    /// The bytes of the single file in the build `current` points at.
    fn current(&self) -> Option<Vec<u8>> {
        let dir = self.deploy_dir().join("current");
        let mut files = std::fs::read_dir(&dir).ok()?.map(|e| e.unwrap().path());
        let (Some(only), None) = (files.next(), files.next()) else {
            panic!("{} holds more than one file", dir.display());
        };
        std::fs::read(only).ok()
    }

    /// The bytes of `rel` in the build `current` points at.
    fn current_file(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.deploy_dir().join("current").join(rel)).ok()
    }

    /// Everything the daemon published: its output, status and events.
    fn published(&self, out: &Output) -> String {
        format!(
            "{}{}{}{}",
            stdout(out),
            stderr(out),
            std::fs::read_to_string(self.state.path().join("status.json")).unwrap_or_default(),
            std::fs::read_to_string(self.state.path().join("events.jsonl")).unwrap_or_default()
        )
    }

    /// Names in the release store (no temporary build may stay behind a refusal).
    fn store(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.deploy_dir().join("releases"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn run(args: &[&str], cwd: &Path, env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GITHUB_TOKEN")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run baton")
}

#[test]
fn an_s3_artifact_deploys_verified_and_bad_ones_leave_the_previous_version_serving() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let good = pattern(3 << 20, 1);
    moto.put("models", "alpha/1/model.bin", &good);
    let env = moto.env();
    let uri1 = "s3://models/alpha/1/model.bin";

    let r = Registry::new(uri1, &sha(&good), Some(good.len() as u64));
    let out = r.once(&env, &[]);
    assert_eq!(code(&out), 0, "{}", r.published(&out));
    assert_eq!(r.deployed().as_deref(), Some("1"));
    assert_eq!(r.current().as_deref(), Some(&good[..]), "verified bytes");

    // Each case: version 2's object and what its manifest claims.
    let body = pattern(64 << 10, 2);
    let other = pattern(64 << 10, 3);
    struct Case<'a> {
        name: &'a str,
        object: Option<&'a [u8]>,
        digest: String,
        size: u64,
        extra: &'a [&'a str],
        says: String,
    }
    let n = body.len() as u64;
    let cases = [
        Case {
            name: "wrong-digest",
            object: Some(&other),
            digest: sha(&body),
            size: n,
            extra: &[],
            says: format!("refused: sha256 mismatch: expected {}", sha(&body)),
        },
        Case {
            name: "truncated",
            object: Some(&body[..1000]),
            digest: sha(&body),
            size: n,
            extra: &[],
            says: format!("refused: shorter than the manifest's size of {n} bytes"),
        },
        Case {
            name: "longer",
            object: Some(&body),
            digest: sha(&body[..1000]),
            size: 1000,
            extra: &[],
            says: "refused: larger than the manifest's size of 1000 bytes".into(),
        },
        Case {
            name: "over-the-cap",
            object: Some(&body),
            digest: sha(&body),
            size: n,
            extra: &["--max-artifact-size", "32KiB"],
            says: "refused: larger than --max-artifact-size (32 KiB)".into(),
        },
        Case {
            name: "missing",
            object: None,
            digest: sha(&body),
            size: n,
            extra: &[],
            says: "no such object".into(),
        },
    ];
    for c in cases {
        let key = format!("alpha/2/{}.bin", c.name);
        if let Some(o) = c.object {
            moto.put("models", &key, o);
        }
        let r = Registry::new(uri1, &sha(&good), Some(good.len() as u64));
        let out = r.once(&env, &[]);
        assert_eq!(code(&out), 0, "{}: {}", c.name, r.published(&out));
        let uri2 = format!("s3://models/{key}");
        r.promote_2(&uri2, &c.digest, Some(c.size));
        let out = r.once(&env, c.extra);
        let published = r.published(&out);
        assert_eq!(code(&out), 1, "{}: {published}", c.name);
        assert!(
            published.contains(&format!("alpha@2: artifact {uri2}")) && published.contains(&c.says),
            "{}: wanted {:?} in {published}",
            c.name,
            c.says
        );
        // (Unless the manifest itself names it.)
        if let Some(o) = c.object.filter(|o| sha(o) != c.digest) {
            assert!(
                !published.contains(&sha(o)),
                "{}: the fetched bytes' digest leaked",
                c.name
            );
        }
        assert_eq!(r.deployed().as_deref(), Some("1"), "{}", c.name);
        assert_eq!(r.current().as_deref(), Some(&good[..]), "{}", c.name);
        assert_eq!(r.store(), vec![sha(&good)], "{}: left in the store", c.name);
    }
}

#[test]
fn an_s3_version_replaces_another_and_unreachable_stores_fail_fast() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let one = pattern(1000, 4);
    let two = pattern(5 << 20, 5);
    moto.put("models", "alpha/1.bin", &one);
    moto.put("models", "alpha/2.bin", &two);
    let env = moto.env();
    let r = Registry::new("s3://models/alpha/1.bin", &sha(&one), Some(1000));
    assert_eq!(code(&r.once(&env, &[])), 0);
    r.promote_2(
        "s3://models/alpha/2.bin",
        &sha(&two),
        Some(two.len() as u64),
    );
    let out = r.once(&env, &[]);
    assert_eq!(code(&out), 0, "{}", r.published(&out));
    assert_eq!(r.deployed().as_deref(), Some("2"));
    assert_eq!(r.current().as_deref(), Some(&two[..]));

    // A store nobody answers for: refused within the retries, not hung.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
        .collect();
    env.push(("AWS_ENDPOINT_URL".into(), dead));
    let r = Registry::new("s3://models/alpha/1.bin", &sha(&one), Some(1000));
    let t = Instant::now();
    let out = r.once(&env, &[]);
    assert_eq!(code(&out), 1, "{}", r.published(&out));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        r.published(&out)
            .contains("alpha@1: artifact s3://models/alpha/1.bin"),
        "{}",
        r.published(&out)
    );
    assert_eq!(r.deployed(), None);
}

/// A release of one directory-artifact version read from `uri`.
fn dir_release(uri: &str, files: &[ArtifactFile]) -> Release {
    Release {
        model: "alpha".into(),
        commit: "0".repeat(40),
        root: String::new(),
        versions: vec![ReleaseVersion {
            version: "6".into(),
            sha256: listing_digest(files),
            uri: uri.into(),
            size: Some(files.iter().map(|f| f.size).sum()),
            format: Some("mlflow".into()),
            files: files.to_vec(),
            traffic: 100,
            primary: true,
            requires: Default::default(),
            metrics: Default::default(),
        }],
    }
}

#[test]
fn a_directory_artifact_reads_each_file_of_an_s3_prefix() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let mlmodel = b"flavors: {python_function: {}}\n".to_vec();
    let weights = pattern(2 << 20, 6);
    moto.put("models", "alpha/6/MLmodel", &mlmodel);
    moto.put("models", "alpha/6/data/model.pkl", &weights);
    let files = vec![
        ArtifactFile {
            path: "MLmodel".into(),
            sha256: sha(&mlmodel),
            size: mlmodel.len() as u64,
        },
        ArtifactFile {
            path: "data/model.pkl".into(),
            sha256: sha(&weights),
            size: weights.len() as u64,
        },
    ];
    let repo = TestRepo::new();
    let git = git2::Repository::open(repo.path()).unwrap();
    let remote = Remote::with_env(Duration::from_secs(10), moto.env());
    let limits = ArtifactLimits::default();
    let trees = Default::default();
    let fetcher = Fetcher {
        repo: &git,
        timeout: Duration::from_secs(10),
        remote: &remote,
        trees: &trees,
        limits: &limits,
    };
    let release = dir_release("s3://models/alpha/6/", &files);
    let v = &release.versions[0];
    for (f, want) in files.iter().zip([&mlmodel, &weights]) {
        let mut got = Vec::new();
        fetcher
            .open_file(&release, v, f)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(&got, want, "{}", f.path);
    }
    // A file whose listed size is wrong is refused before it is read.
    let mut wrong = files[1].clone();
    wrong.size -= 1;
    let e = fetcher
        .open_file(&release, v, &wrong)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("s3://models/alpha/6/data/model.pkl refused: larger than the manifest's size"),
        "{e}"
    );
    // A path out of the folder is not fetched.
    let mut out = files[0].clone();
    out.path = "../7/MLmodel".into();
    let e = fetcher
        .open_file(&release, v, &out)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`..`"), "{e}");
}

#[test]
fn register_hashes_s3_objects_and_prefixes_streaming() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let big = pattern(6 << 20, 7);
    moto.put("models", "ranker/1/model.onnx", &big);
    let mlmodel = b"artifact_path: model\n".to_vec();
    let pkl = pattern(100_000, 8);
    moto.put("models", "ranker/2/MLmodel", &mlmodel);
    moto.put("models", "ranker/2/model/model.pkl", &pkl);
    let env = moto.env();
    let r = TestRepo::with_example();
    let reg = |args: &[&str]| {
        let mut full = vec!["--repo", r.path().to_str().unwrap()];
        full.extend_from_slice(args);
        run(&full, r.path(), &env)
    };

    let o = reg(&[
        "--format",
        "json",
        "register",
        "ranker",
        "--artifact",
        "s3://models/ranker/1/model.onnx",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Not a terminal: no progress bar drawn.
    assert!(!stderr(&o).contains("hashing"), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["artifact"]["sha256"], sha(&big));
    assert_eq!(v["artifact"]["size"], big.len() as u64);
    let text = r.read("models/ranker/versions/1.yaml");
    assert!(
        text.contains(&format!(
            "  uri: s3://models/ranker/1/model.onnx\n  sha256: {}\n  size: {}\n",
            sha(&big),
            big.len()
        )),
        "{text}"
    );

    let o = reg(&["register", "ranker", "--artifact", "s3://models/ranker/2/"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("  files    2 (sha256 is the digest of their listing)\n"),
        "{}",
        stdout(&o)
    );
    let files = vec![
        ArtifactFile {
            path: "MLmodel".into(),
            sha256: sha(&mlmodel),
            size: mlmodel.len() as u64,
        },
        ArtifactFile {
            path: "model/model.pkl".into(),
            sha256: sha(&pkl),
            size: pkl.len() as u64,
        },
    ];
    let listing = format!(
        "{}  MLmodel\n{}  model/model.pkl\n",
        sha(&mlmodel),
        sha(&pkl)
    );
    assert_eq!(listing_digest(&files), sha(listing.as_bytes()));
    let text = r.read("models/ranker/versions/2.yaml");
    let parsed = baton::manifest::parse_version(text.as_bytes()).unwrap();
    assert_eq!(parsed.artifact.uri, "s3://models/ranker/2/");
    assert_eq!(parsed.artifact.sha256, sha(listing.as_bytes()), "{text}");
    assert_eq!(
        parsed.artifact.size,
        Some((mlmodel.len() + pkl.len()) as u64)
    );
    assert_eq!(parsed.artifact.files.as_deref(), Some(&files[..]), "{text}");
    r.commit_all("register ranker 1 and 2");
    let o = reg(&["validate"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    // A missing object, an empty prefix, and --uri beside a remote artifact are refused.
    for (artifact, extra, says) in [
        ("s3://models/ranker/9/model.onnx", None, "no such object"),
        ("s3://models/nothing/", None, "no objects below this folder"),
        (
            "s3://models/ranker/1/model.onnx",
            Some("s3://elsewhere/x"),
            "--uri is for a local --artifact",
        ),
    ] {
        let mut args = vec!["register", "ranker", "--artifact", artifact];
        if let Some(u) = extra {
            args.extend_from_slice(&["--uri", u]);
        }
        let o = reg(&args);
        assert_eq!(code(&o), 2, "{artifact}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{artifact}: {}", stderr(&o));
    }
}

/// An HTTP server on loopback: `GET /<name>` answers `bodies[name]`; with `declare` false no
/// Content-Length is sent (the body ends when the connection closes). It stops by itself.
fn http_server(bodies: Vec<(&'static str, Vec<u8>, bool)>) -> String {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let path = line
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            match bodies.iter().find(|(n, _, _)| *n == path) {
                Some((_, body, declare)) => {
                    let len = if *declare {
                        format!("Content-Length: {}\r\n", body.len())
                    } else {
                        String::new()
                    };
                    let _ = write!(s, "HTTP/1.1 200 OK\r\n{len}Connection: close\r\n\r\n");
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    base
}

#[test]
fn http_artifacts_still_deploy_and_a_short_body_is_refused() {
    let one = pattern(200_000, 9);
    let two = pattern(50_000, 10);
    let base = http_server(vec![
        ("one.bin", one.clone(), true),
        ("two.bin", two[..20_000].to_vec(), false),
    ]);
    let r = Registry::new(
        &format!("{base}/one.bin"),
        &sha(&one),
        Some(one.len() as u64),
    );
    let out = r.once(&[], &[]);
    assert_eq!(code(&out), 0, "{}", r.published(&out));
    assert_eq!(r.current().as_deref(), Some(&one[..]));

    // The body ends before the manifest's size, with no Content-Length to tell in advance.
    r.promote_2(
        &format!("{base}/two.bin"),
        &sha(&two),
        Some(two.len() as u64),
    );
    let out = r.once(&[], &[]);
    let published = r.published(&out);
    assert_eq!(code(&out), 1, "{published}");
    assert!(
        published.contains("refused: shorter than the manifest's size of 50000 bytes"),
        "{published}"
    );
    assert!(!published.contains(&sha(&two[..20_000])), "{published}");
    assert_eq!(r.deployed().as_deref(), Some("1"));
    assert_eq!(r.current().as_deref(), Some(&one[..]));
}

#[test]
fn validate_requires_a_size_for_remote_artifacts() {
    let r = Registry::new("s3://models/alpha/1.bin", &"a".repeat(64), None);
    r.repo.write(
        "models/alpha/versions/2.yaml",
        &manifest(
            "2",
            "development",
            "https://h.example/m.onnx",
            &"b".repeat(64),
            None,
        ),
    );
    r.repo.write(
        "models/alpha/versions/3.yaml",
        &manifest(
            "3",
            "development",
            "file:///srv/m.onnx",
            &"c".repeat(64),
            None,
        ),
    );
    r.repo.commit_all("remote artifacts without sizes");
    let o = r.repo.baton(&["validate"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("models/alpha/versions/1.yaml:4:1: artifact.size is required for a remote artifact: the daemon stops a s3:// download at it"),
        "{out}"
    );
    assert!(
        out.contains("models/alpha/versions/2.yaml:4:1: artifact.size is required for a remote artifact: the daemon stops a https:// download at it"),
        "{out}"
    );
    assert!(
        !out.contains("versions/3.yaml"),
        "file:// needs no size: {out}"
    );
}

/// A version manifest of a directory artifact at `uri` with `files`.
fn dir_manifest(v: &str, stage: &str, uri: &str, files: &[ArtifactFile]) -> String {
    let mut out = format!(
        "model: alpha\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {}\n  size: {}\n  format: mlflow\n  files:\n",
        listing_digest(files),
        files.iter().map(|f| f.size).sum::<u64>()
    );
    for f in files {
        out.push_str(&format!(
            "    - {{path: {}, sha256: {}, size: {}}}\n",
            f.path, f.sha256, f.size
        ));
    }
    out + "created: 2026-11-01T10:00:00Z\n"
}

#[test]
fn a_directory_artifact_from_an_s3_prefix_deploys_each_file_verified() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let mlmodel = b"flavors: {python_function: {}}\n".to_vec();
    let weights = pattern(3 << 20, 11);
    let put = |v: &str, files: &[(&str, &[u8])]| -> Vec<ArtifactFile> {
        files
            .iter()
            .map(|(path, bytes)| {
                moto.put("models", &format!("alpha/{v}/{path}"), bytes);
                ArtifactFile {
                    path: path.to_string(),
                    sha256: sha(bytes),
                    size: bytes.len() as u64,
                }
            })
            .collect()
    };
    let one = put("1", &[("MLmodel", &mlmodel), ("data/model.pkl", &weights)]);
    let env = moto.env();
    let r = Registry::new("unused", "unused", None);
    r.repo.write(
        "models/alpha/versions/1.yaml",
        &dir_manifest("1", "staging", "s3://models/alpha/1/", &one),
    );
    r.repo.commit_all("alpha 1 is a folder in s3");
    let out = r.once(&env, &[]);
    assert_eq!(code(&out), 0, "{}", r.published(&out));
    assert_eq!(r.deployed().as_deref(), Some("1"));
    assert_eq!(r.current_file("MLmodel").as_deref(), Some(&mlmodel[..]));
    assert_eq!(
        r.current_file("data/model.pkl").as_deref(),
        Some(&weights[..])
    );

    // Version 2 lists a file whose object is not what the listing says: refused naming that
    // file, version 1 still in place.
    let other = pattern(3 << 20, 12);
    let mut two = put("2", &[("MLmodel", &mlmodel), ("data/model.pkl", &other)]);
    two[1].sha256 = sha(b"another build");
    r.repo.write(
        "models/alpha/versions/2.yaml",
        &dir_manifest("2", "development", "s3://models/alpha/2/", &two),
    );
    r.repo.commit_all("register alpha 2");
    r.repo.edit(
        "models/alpha/versions/1.yaml",
        "stage: staging",
        "stage: archived",
    );
    r.repo.edit(
        "models/alpha/versions/2.yaml",
        "stage: development",
        "stage: staging",
    );
    r.repo.commit_all("alpha 2 to staging");
    let out = r.once(&env, &[]);
    let published = r.published(&out);
    assert_eq!(code(&out), 1, "{published}");
    assert!(
        published.contains(&format!(
            "artifact s3://models/alpha/2/data/model.pkl refused: sha256 mismatch: expected {}",
            sha(b"another build")
        )),
        "{published}"
    );
    assert!(!published.contains(&sha(&other)), "{published}");
    assert_eq!(r.deployed().as_deref(), Some("1"));
    assert_eq!(
        r.current_file("data/model.pkl").as_deref(),
        Some(&weights[..])
    );
    assert_eq!(r.store(), vec![listing_digest(&one)]);
}
