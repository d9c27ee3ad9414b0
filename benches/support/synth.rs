//! Synthetic registries for benchmarks and tests: a real git repository in a temp dir holding
//! N models x V versions of valid docs/registry-format.md manifests, written with `git fast-import` (fast).
//!
//! Use from a bench (or a test) with:
//!
//! ```ignore
//! #[path = "support/synth.rs"]          // from tests/: "../benches/support/synth.rs"
//! mod synth;
//! use synth::{Change, Spec, Synth};
//!
//! let mut s = Synth::build(1_000, 10);          // 10,000 version manifests on branch `main`
//! let base = s.head();                          // hex commit id of `main`
//! // One commit on main changing one manifest (only `stage`/`traffic` move, docs/registry-format.md):
//! let c1 = s.set_stage(3, 1, "development");    // model #3, version "1" -> development
//! // A PR-like branch off main: K models' staging version -> production as a canary
//! // (`traffic: 10`), a valid one-step promotion per model; returns the branch head:
//! let pr = s.branch_promoting("promote", 5);
//! // Any change set on any branch (new branches start at main's head):
//! let c2 = s.commit("main", &[Change::stage(0, 2, "archived")], "archive 0@2");
//! // Arbitrary files (write or delete), e.g. a broken manifest:
//! let c3 = s.commit_files("main", &[("models/model-00000/versions/9.yaml", Some(b"model: [")),
//!                                   ("models/model-00001/versions/1.yaml", None)], "edit");
//! ```
//!
//! Layout (registry at the repository root, or under `Spec::root`):
//! * `baton.yaml`: the docs/registry-format.md policy (development, staging, production [canary],
//!   archived [terminal]; groups; `policy_owners`; `signers`; staging and production
//!   environments with local targets).
//! * `.baton/allowed_signers`: `Spec::allowed_signers` (default: a comment line).
//! * `models/model-NNNNN/model.yaml` for model index `m` in `0..N` (`Synth::model_name(m)`).
//! * `models/model-NNNNN/versions/<v>.yaml` for version labels `v` in `1..=V`.
//!
//! Stages per model, newest first: `V` development (when V >= 3), then one staging (when
//! V >= 2), then one production, the rest archived ([`Synth::initial_stage`]). Artifacts are
//! `s3://` URIs with a real 64-hex sha256, so the registry validates without artifact files.
//! Metrics rise with the version (auc 0.93..0.98, p99 below 50 ms) and every version has
//! `offline-eval` evidence that passed, so staging -> production promotions meet the metric
//! gates. The first commit is dated `Spec::base_time` (default: 7 days ago); each later commit
//! is one hour after the previous one.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub models: usize,
    /// Versions per model (labels "1" ..= versions).
    pub versions: usize,
    /// Registry folder inside the repository ("" = root).
    pub root: String,
    /// Contents of `.baton/allowed_signers`.
    pub allowed_signers: String,
    /// Unix time of the first commit.
    pub base_time: i64,
    /// Keep a checked-out working tree in sync with `main` (slow for big registries; the
    /// loader reads git objects only, so benchmarks leave it off: HEAD is `main`, the
    /// working tree and index stay empty).
    pub checkout: bool,
}

impl Spec {
    pub fn new(models: usize, versions: usize) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Spec {
            models,
            versions,
            root: String::new(),
            allowed_signers: "# no signers in this synthetic registry\n".to_owned(),
            base_time: now - 7 * 24 * 3600,
            checkout: false,
        }
    }
}

/// One manifest edit: version `version` (label, 1-based) of model index `model` moves to
/// `stage` with optional canary `traffic`. Every other field stays as generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub model: usize,
    pub version: usize,
    pub stage: String,
    pub traffic: Option<u32>,
}

impl Change {
    pub fn stage(model: usize, version: usize, stage: &str) -> Self {
        Change {
            model,
            version,
            stage: stage.to_owned(),
            traffic: None,
        }
    }

    pub fn canary(model: usize, version: usize, stage: &str, traffic: u32) -> Self {
        Change {
            traffic: Some(traffic),
            ..Change::stage(model, version, stage)
        }
    }
}

type Overrides = HashMap<(usize, usize), (String, Option<u32>)>;

/// A generated repository (deleted on drop).
pub struct Synth {
    dir: tempfile::TempDir,
    pub spec: Spec,
    /// Per branch: manifests whose stage differs from [`Synth::initial_stage`].
    branches: HashMap<String, Overrides>,
    last_time: i64,
}

pub const POLICY: &str = r#"# synthetic registry policy (docs/registry-format.md)
version: 1
stages:
  - name: development
  - name: staging
    gates:
      - metric: {name: auc, min: 0.90}
      - evidence: offline-eval
  - name: production
    canary: true
    gates:
      - approvals: {min: 2, from: [group:ml-leads, owners]}
      - metric: {name: auc, min: 0.92, max_regression: 0.005}
      - metric: {name: p99_latency_ms, max: 50, lower_is_better: true}
      - soak: {stage: staging, for: 24h}
      - window: {days: [mon, tue, wed, thu], from: "09:00", to: "16:00", tz: Europe/Berlin}
  - name: archived
    terminal: true
rollback:
  approvals: 0
groups:
  ml-leads: [alice@acme.com, bob@acme.com]
  registry-admins: [carol@acme.com]
policy_owners: [group:registry-admins]
signers: .baton/allowed_signers
environments:
  staging:
    stage: staging
    target: {kind: local, path: staging}
  production:
    stage: production
    target: {kind: local, path: production}
    health: {command: "test -s \"$BATON_ARTIFACT\""}
"#;

impl Synth {
    /// `models` x `versions` manifests at the repository root, committed on `main`.
    pub fn build(models: usize, versions: usize) -> Synth {
        Synth::build_spec(Spec::new(models, versions))
    }

    pub fn build_spec(spec: Spec) -> Synth {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Synth {
            dir,
            last_time: spec.base_time,
            spec,
            branches: HashMap::new(),
        };
        s.git(&["init", "-q", "-b", "main"]);
        s.git(&["config", "user.name", "Synth"]);
        s.git(&["config", "user.email", "synth@acme.com"]);
        s.git(&["config", "commit.gpgsign", "false"]);
        s.git(&["config", "gc.auto", "0"]);

        // All blobs first (with marks), then one commit naming them: much faster in
        // fast-import than inline data for 100,000 files.
        let mut files: Vec<(String, Vec<u8>)> =
            Vec::with_capacity(s.manifests() + s.spec.models + 2);
        files.push((s.path_in_root("baton.yaml"), POLICY.as_bytes().to_vec()));
        files.push((
            s.path_in_root(".baton/allowed_signers"),
            s.spec.allowed_signers.as_bytes().to_vec(),
        ));
        for m in 0..s.spec.models {
            files.push((
                s.path_in_root(&format!("models/{}/model.yaml", Synth::model_name(m))),
                model_yaml(m).into_bytes(),
            ));
            for v in 1..=s.spec.versions {
                files.push((s.version_path(m, v), s.render(m, v, None).into_bytes()));
            }
        }
        let mut stream = Vec::with_capacity(s.manifests() * 700 + 4096);
        for (i, (_, data)) in files.iter().enumerate() {
            write!(stream, "blob\nmark :{}\ndata {}\n", i + 1, data.len()).unwrap();
            stream.extend_from_slice(data);
            stream.push(b'\n');
        }
        s.commit_header(
            &mut stream,
            "main",
            None,
            "synthetic registry",
            s.spec.base_time,
        );
        for (i, (path, _)) in files.iter().enumerate() {
            writeln!(stream, "M 100644 :{} {path}", i + 1).unwrap();
        }
        s.fast_import(&stream);
        if s.spec.checkout {
            s.git(&["reset", "-q", "--hard", "main"]);
        }
        s.branches.insert("main".to_owned(), Overrides::new());
        s
    }

    /// Repository directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keep the repository on disk (not deleted on drop), e.g. to inspect it; returns its path.
    pub fn keep(self) -> std::path::PathBuf {
        self.dir.keep()
    }

    /// Registry folder inside the repository ("" = root).
    pub fn root(&self) -> &str {
        &self.spec.root
    }

    /// Number of version manifests.
    pub fn manifests(&self) -> usize {
        self.spec.models * self.spec.versions
    }

    /// `model-00042`.
    pub fn model_name(m: usize) -> String {
        format!("model-{m:05}")
    }

    /// Repository-relative path of a version manifest.
    pub fn version_path(&self, m: usize, v: usize) -> String {
        self.path_in_root(&format!(
            "models/{}/versions/{v}.yaml",
            Synth::model_name(m)
        ))
    }

    /// Hex commit id of `main`.
    pub fn head(&self) -> String {
        self.rev_parse("main")
    }

    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", &format!("{rev}^{{commit}}")])
    }

    /// The stage a version is generated in (before any change).
    pub fn initial_stage(&self, v: usize) -> &'static str {
        let n = self.spec.versions;
        let from_newest = n - v; // 0 = newest
        match (n, from_newest) {
            (3.., 0) => "development",
            (3.., 1) | (2, 0) => "staging",
            (3.., 2) | (2, 1) | (1, _) => "production",
            _ => "archived",
        }
    }

    /// Current stage and traffic of a version on `branch` (main if unknown).
    pub fn stage_on(&self, branch: &str, m: usize, v: usize) -> (String, Option<u32>) {
        let o = self
            .branches
            .get(branch)
            .or_else(|| self.branches.get("main"));
        match o.and_then(|o| o.get(&(m, v))) {
            Some(x) => x.clone(),
            None => (self.initial_stage(v).to_owned(), None),
        }
    }

    /// The manifest text of a version as it is on `branch`.
    pub fn manifest_text(&self, branch: &str, m: usize, v: usize) -> String {
        let (stage, traffic) = self.stage_on(branch, m, v);
        self.render(m, v, Some((&stage, traffic)))
    }

    /// The version label in `stage` for model `m` as generated (first match, newest first).
    pub fn initial_holder(&self, stage: &str) -> Option<usize> {
        (1..=self.spec.versions)
            .rev()
            .find(|&v| self.initial_stage(v) == stage)
    }

    /// Commit on `main` moving one version to `stage` (traffic cleared); returns the commit id.
    pub fn set_stage(&mut self, m: usize, v: usize, stage: &str) -> String {
        let msg = format!("move {}@{v} to {stage}", Synth::model_name(m));
        self.commit("main", &[Change::stage(m, v, stage)], &msg)
    }

    /// A branch off `main` with one commit: for models `0..k`, the staging version is promoted
    /// to production as a canary (`traffic: 10`). Returns the branch head.
    pub fn branch_promoting(&mut self, branch: &str, k: usize) -> String {
        let v = self
            .initial_holder("staging")
            .expect("needs at least 2 versions per model (one in staging)");
        let changes: Vec<Change> = (0..k.min(self.spec.models))
            .map(|m| Change::canary(m, v, "production", 10))
            .collect();
        self.commit(
            branch,
            &changes,
            &format!("promote {k} models to production"),
        )
    }

    /// One commit on `branch` (created from `main` when new) applying `changes`.
    pub fn commit(&mut self, branch: &str, changes: &[Change], message: &str) -> String {
        let exists = self.branches.contains_key(branch);
        let mut state = if exists {
            self.branches[branch].clone()
        } else {
            self.branches["main"].clone()
        };
        let from = if exists { branch } else { "main" };
        self.last_time += 3600;
        let mut stream = Vec::new();
        let parent = self.rev_parse(from);
        self.commit_header(&mut stream, branch, Some(&parent), message, self.last_time);
        for c in changes {
            assert!(
                c.model < self.spec.models && (1..=self.spec.versions).contains(&c.version),
                "no such version {c:?}"
            );
            let text = self.render(c.model, c.version, Some((&c.stage, c.traffic)));
            inline(
                &mut stream,
                &self.version_path(c.model, c.version),
                text.as_bytes(),
            );
            state.insert((c.model, c.version), (c.stage.clone(), c.traffic));
        }
        self.fast_import(&stream);
        self.branches.insert(branch.to_owned(), state);
        if branch == "main" && self.spec.checkout {
            self.git(&["reset", "-q", "--hard", "main"]);
        }
        self.rev_parse(branch)
    }

    /// One commit on `branch` (created from `main` when new) writing (`Some(bytes)`) or
    /// deleting (`None`) arbitrary repository-relative paths; returns the commit id. The
    /// stage bookkeeping of [`Synth::stage_on`] does not follow such edits.
    pub fn commit_files(
        &mut self,
        branch: &str,
        files: &[(&str, Option<&[u8]>)],
        message: &str,
    ) -> String {
        let exists = self.branches.contains_key(branch);
        let from = if exists { branch } else { "main" };
        let parent = self.rev_parse(from);
        self.last_time += 3600;
        let mut stream = Vec::new();
        self.commit_header(&mut stream, branch, Some(&parent), message, self.last_time);
        for (path, data) in files {
            match data {
                Some(d) => inline(&mut stream, path, d),
                None => writeln!(stream, "D {path}").unwrap(),
            }
        }
        self.fast_import(&stream);
        if !exists {
            let main = self.branches["main"].clone();
            self.branches.insert(branch.to_owned(), main);
        }
        if branch == "main" && self.spec.checkout {
            self.git(&["reset", "-q", "--hard", "main"]);
        }
        self.rev_parse(branch)
    }

    /// Run git in the repository; panics on failure; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn path_in_root(&self, rel: &str) -> String {
        if self.spec.root.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.spec.root.trim_end_matches('/'))
        }
    }

    fn commit_header(
        &self,
        out: &mut Vec<u8>,
        branch: &str,
        parent: Option<&str>,
        message: &str,
        time: i64,
    ) {
        let who = "Synth <synth@acme.com>";
        write!(
            out,
            "commit refs/heads/{branch}\nauthor {who} {time} +0000\ncommitter {who} {time} +0000\ndata {}\n{message}\n",
            message.len()
        )
        .unwrap();
        if let Some(p) = parent {
            writeln!(out, "from {p}").unwrap();
        }
    }

    fn fast_import(&self, stream: &[u8]) {
        let mut child = Command::new("git")
            .args(["fast-import", "--quiet", "--force"])
            .current_dir(self.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn git fast-import");
        {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(stream).expect("write fast-import stream");
            stdin.write_all(b"done\n").ok();
        }
        let out = child.wait_with_output().expect("git fast-import");
        assert!(
            out.status.success(),
            "git fast-import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Manifest text; `stage` None = initial stage.
    fn render(&self, m: usize, v: usize, stage: Option<(&str, Option<u32>)>) -> String {
        let (stage, traffic) = stage.unwrap_or((self.initial_stage(v), None));
        let name = Synth::model_name(m);
        let n = self.spec.versions.max(1) as f64;
        let auc = 0.93 + 0.05 * (v as f64 / n);
        let p99 = 30.0 - 10.0 * (v as f64 / n);
        let mut s = String::with_capacity(700);
        let day = 1 + (v % 28);
        write!(
            s,
            "model: {name}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: s3://acme-models/{name}/{v}/model.onnx\n  sha256: {}\n  size: {}\nmetrics:\n  auc: {auc:.4}\n  p99_latency_ms: {p99:.2}\nevidence:\n  offline-eval: {{passed: true, report: s3://acme-reports/{name}/{v}/eval.json}}\nlineage:\n  code: https://github.com/acme/{name}@{:07x}\n  data: s3://acme-data/{name}/2026-10-{day:02}\n",
            digest(m, v),
            40_000 + (m * 31 + v * 17) % 10_000,
            (m * 7919 + v * 104_729) & 0xfff_ffff,
        )
        .unwrap();
        if let Some(t) = traffic {
            writeln!(s, "traffic: {t}").unwrap();
        }
        writeln!(s, "created: 2026-10-{day:02}T10:00:00Z").unwrap();
        s
    }
}

fn model_yaml(m: usize) -> String {
    format!(
        "name: {}\ndescription: Synthetic model number {m}\nowners: [group:ml-leads, owner{}@acme.com]\n",
        Synth::model_name(m),
        m % 97
    )
}

/// A real sha256 (of a name), as 64 lower-case hex characters.
fn digest(m: usize, v: usize) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{m}/{v}").as_bytes());
    let mut s = String::with_capacity(64);
    for b in h {
        write!(s, "{b:02x}").unwrap();
    }
    s
}

fn inline(out: &mut Vec<u8>, path: &str, data: &[u8]) {
    write!(out, "M 100644 inline {path}\ndata {}\n", data.len()).unwrap();
    out.extend_from_slice(data);
    out.push(b'\n');
}
