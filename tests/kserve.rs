//! The `kserve` target for real: rendered InferenceServices checked against KServe's CRD
//! schema (tests/fixtures/kserve/) and golden files, a real bare GitOps repository with
//! concurrent pushes and hand edits, `baton validate`, and the daemon end to end.
//!
//! `BATON_BLESS=1 cargo test --test it kserve::` rewrites the golden files in tests/golden/kserve/.

use crate::common;

use baton::daemon::plan::{self, Step};
use baton::daemon::release::{Release, ReleaseVersion};
use baton::daemon::target::kserve::{render, KserveTarget};
use baton::daemon::target::{PassSummary, Target};
use baton::manifest::target::{KserveConfig, KserveMode};
use chrono::{DateTime, TimeZone, Utc};
use common::{code, stderr, stdout, TestRepo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- schema

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| {
        let p = manifest_dir().join("tests/fixtures/kserve/inferenceservice-v1beta1.schema.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    })
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| jsonschema::draft7::new(schema()).expect("the CRD schema compiles"))
}

/// Every problem the KServe CRD schema finds in `doc`, plus what the API server would do
/// beyond it: prune fields the schema does not declare, and refuse `spec.canary` without
/// `serving.kserve.io/deploymentMode: Standard`.
fn crd_problems(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = validator()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    undeclared(schema(), doc, "", &mut out);
    if doc["spec"].get("canary").is_some()
        && doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] != "Standard"
    {
        out.push("spec.canary needs the deploymentMode annotation `Standard`".into());
    }
    out
}

/// Fields of `v` that `s` does not declare (the API server would silently drop them).
fn undeclared(s: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            let extra = s.get("additionalProperties");
            for (k, child) in m {
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(cs), _) => undeclared(cs, child, &format!("{at}.{k}"), out),
                    (None, Some(Value::Object(_))) => {
                        undeclared(extra.unwrap(), child, &format!("{at}.{k}"), out)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if props.is_none() && s.get("type") == Some(&"object".into()) => {}
                    (None, _) => out.push(format!("{at}.{k} is not a field KServe knows")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, child) in items.iter().enumerate() {
                    undeclared(is, child, &format!("{at}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The YAML document as JSON (the schema validates JSON values).
fn to_json(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap()
}

fn assert_valid(what: &str, yaml: &str) {
    let p = crd_problems(&to_json(yaml));
    assert!(
        p.is_empty(),
        "{what} does not validate:\n{}\n{yaml}",
        p.join("\n")
    );
}

// ---------------------------------------------------------------- fixtures

const COMMIT: &str = "3f7e0c1a2b3c4d5e6f708192a3b4c5d6e7f80912";
const REVERT: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a901234567";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
}

fn version(model: &str, label: &str, traffic: u32, primary: bool) -> ReleaseVersion {
    ReleaseVersion {
        version: label.into(),
        sha256: format!("{:0>64}", hex_of(label)),
        uri: format!("s3://models/{model}/{label}"),
        size: Some(48213),
        format: Some("sklearn".into()),
        files: Vec::new(),
        traffic,
        primary,
        requires: BTreeMap::new(),
        metrics: Default::default(),
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn release(model: &str, commit: &str, versions: &[(&str, u32)]) -> Release {
    Release {
        model: model.into(),
        commit: commit.into(),
        root: String::new(),
        versions: versions
            .iter()
            .enumerate()
            .map(|(i, (l, t))| version(model, l, *t, i == 0))
            .collect(),
    }
}

fn config(repo: &str, mode: KserveMode) -> KserveConfig {
    KserveConfig {
        repo: repo.into(),
        branch: "main".into(),
        path: "clusters/prod/ml".into(),
        namespace: "ml-prod".into(),
        mode,
        runtime: Some("kserve-sklearnserver".into()),
        min_replicas: Some(4),
    }
}

/// Compare with (or, with `BATON_BLESS=1`, write) `tests/golden/kserve/<name>.yaml`.
fn golden(name: &str, actual: &str) {
    let p = manifest_dir()
        .join("tests/golden/kserve")
        .join(format!("{name}.yaml"));
    if std::env::var_os("BATON_BLESS").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p)
        .unwrap_or_else(|_| panic!("{} is missing (BATON_BLESS=1 writes it)", p.display()));
    assert_eq!(
        actual,
        want,
        "{name} differs from {} (BATON_BLESS=1 rewrites it)",
        p.display()
    );
}

// ---------------------------------------------------------------- rendering

#[test]
fn rendered_services_validate_against_the_crd_and_match_the_goldens() {
    let standard = config("/unused", KserveMode::Standard);
    let knative = config("/unused", KserveMode::Knative);
    let canary = release("fraud-detector", COMMIT, &[("v1.2.0", 90), ("v1.3.0", 10)]);
    let promoted = release("fraud-detector", COMMIT, &[("v1.3.0", 100)]);
    let rolled_back = release("fraud-detector", REVERT, &[("v1.2.0", 100)]);
    let cases = [
        ("standard-canary", &standard, &canary),
        ("standard-promoted", &standard, &promoted),
        ("standard-rollback", &standard, &rolled_back),
        ("knative-canary", &knative, &canary),
        ("knative-promoted", &knative, &promoted),
    ];
    let mut rendered = BTreeMap::new();
    for (name, cfg, rel) in cases {
        let y = render::render(cfg, "production", rel, t0()).unwrap();
        assert_valid(name, &y);
        golden(name, &y);
        // What was rendered reads back as the same release, without drift.
        let obs = render::observe_document(cfg, "production", "fraud-detector", y.as_bytes());
        assert!(obs.drift.is_empty(), "{name}: {:?}", obs.drift);
        assert_eq!(obs.record.unwrap().release, *rel, "{name}");
        rendered.insert(name, to_json(&y));
    }
    let c = &rendered["standard-canary"]["spec"];
    assert_eq!(c["predictor"]["name"], "v1-2-0");
    assert_eq!(
        c["predictor"]["model"]["storageUri"],
        "s3://models/fraud-detector/v1.2.0"
    );
    assert_eq!(c["canary"][0]["trafficPercent"], 10);
    assert_eq!(c["canary"][0]["predictor"]["name"], "v1-3-0");
    // Promotion keeps the canary's predictor name: KServe keeps its pods.
    let p = &rendered["standard-promoted"]["spec"];
    assert_eq!(p["predictor"]["name"], "v1-3-0");
    assert!(p.get("canary").is_none());
    // Rollback: the previous version is the predictor again, the revert commit recorded.
    let r = &rendered["standard-rollback"];
    assert_eq!(r["spec"]["predictor"]["name"], "v1-2-0");
    assert_eq!(
        r["metadata"]["annotations"]["baton.dev/source-commit"],
        REVERT
    );
    // Knative: the canary is the predictor with its share; KServe keeps the rest on the
    // revision rolled out before.
    let k = &rendered["knative-canary"];
    assert_eq!(k["spec"]["predictor"]["canaryTrafficPercent"], 10);
    assert_eq!(
        k["spec"]["predictor"]["model"]["storageUri"],
        "s3://models/fraud-detector/v1.3.0"
    );
    assert_eq!(
        k["metadata"]["annotations"]["serving.kserve.io/deploymentMode"],
        "Knative"
    );
    assert!(rendered["knative-promoted"]["spec"]["predictor"]
        .get("canaryTrafficPercent")
        .is_none());
    // The kustomization, too.
    golden(
        "kustomization",
        &render::kustomization(["fraud-detector", "churn-predictor"]),
    );
}

#[test]
fn a_dotted_label_is_made_a_valid_predictor_name() {
    let cfg = config("/unused", KserveMode::Standard);
    let r = release(
        "fraud-detector",
        COMMIT,
        &[("V1.2.0_rc.1", 95), ("2026.11.20", 5)],
    );
    let y = render::render(&cfg, "production", &r, t0()).unwrap();
    assert_valid("dotted labels", &y);
    let doc = to_json(&y);
    assert_eq!(doc["spec"]["predictor"]["name"], "v1-2-0-rc-1");
    assert_eq!(doc["spec"]["canary"][0]["predictor"]["name"], "v2026-11-20");
    // The validator is not blind: the raw label is refused by the CRD's name pattern, and so
    // are the other mistakes a hand-written document makes.
    let mut raw = doc.clone();
    raw["spec"]["canary"][0]["predictor"]["name"] = "v1.3.0".into();
    assert!(!crd_problems(&raw).is_empty());
    let mut over = doc.clone();
    over["spec"]["canary"][0]["trafficPercent"] = 150.into();
    assert!(!crd_problems(&over).is_empty());
    let mut nameless = doc.clone();
    nameless["spec"]["canary"][0]["predictor"]["model"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    assert!(!crd_problems(&nameless).is_empty());
    let mut typo = doc.clone();
    typo["spec"]["predictor"]["model"]["storageURI"] = "s3://x".into();
    assert!(
        !crd_problems(&typo).is_empty(),
        "an undeclared field is caught"
    );
    let mut mode = doc;
    mode["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "RawDeployment".into();
    assert!(!crd_problems(&mode).is_empty());
}

#[test]
fn a_split_knative_cannot_express_is_refused() {
    let r = release("fraud-detector", COMMIT, &[("1", 80), ("2", 10), ("3", 10)]);
    let err = render::render(&config("/x", KserveMode::Knative), "production", &r, t0())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("knative mode expresses at most two versions"),
        "{err}"
    );
    assert!(err.contains("1, 2, 3"), "{err}");
    // Standard mode expresses it, and it validates.
    let y = render::render(&config("/x", KserveMode::Standard), "production", &r, t0()).unwrap();
    assert_valid("three-version split", &y);
    assert_eq!(to_json(&y)["spec"]["canary"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------- a real GitOps repository

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Hank Human")
        .env("GIT_AUTHOR_EMAIL", "hank@acme.com")
        .env("GIT_COMMITTER_NAME", "Hank Human")
        .env("GIT_COMMITTER_EMAIL", "hank@acme.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository on `main` and a person's clone of it.
struct Gitops {
    tmp: tempfile::TempDir,
}

impl Gitops {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        git(
            tmp.path(),
            &["init", "-q", "--bare", "-b", "main", "gitops.git"],
        );
        Gitops { tmp }
    }

    fn bare(&self) -> PathBuf {
        self.tmp.path().join("gitops.git")
    }

    fn bare_str(&self) -> String {
        self.bare().to_string_lossy().into_owned()
    }

    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    fn commits(&self) -> usize {
        match Command::new("git")
            .arg("--git-dir")
            .arg(self.bare())
            .args(["rev-list", "--count", "main"])
            .output()
        {
            Ok(o) if o.status.success() => {
                String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
            }
            _ => 0,
        }
    }

    /// `git show main:<path>` in the bare repository.
    fn show(&self, path: &str) -> Option<String> {
        let o = Command::new("git")
            .arg("--git-dir")
            .arg(self.bare())
            .args(["show", &format!("main:{path}")])
            .output()
            .unwrap();
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn log(&self, format: &str) -> String {
        git(
            &self.bare(),
            &["log", &format!("--format={format}"), "main"],
        )
    }

    /// A person's clone, up to date with the remote.
    fn human(&self) -> PathBuf {
        let dir = self.tmp.path().join("human");
        if !dir.exists() {
            git(self.tmp.path(), &["clone", "-q", &self.bare_str(), "human"]);
        } else {
            git(&dir, &["pull", "-q", "--rebase", "origin", "main"]);
        }
        dir
    }

    /// Commit `content` as `path` in the person's clone and push it.
    fn human_push(&self, path: &str, content: &str, msg: &str) {
        let dir = self.human();
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", msg]);
        git(&dir, &["push", "-q", "origin", "HEAD:main"]);
    }
}

/// One pass of the controller's shape: observe, plan, switch each step, commit once.
/// Returns what was observed before and the steps taken.
fn pass(
    t: &mut KserveTarget,
    intent: &BTreeMap<String, Release>,
) -> (BTreeMap<String, baton::daemon::target::Observed>, Vec<Step>) {
    let observed = t.observe().unwrap();
    let steps = plan::plan(intent, &observed);
    let mut changes = Vec::new();
    for s in &steps {
        match s {
            Step::Switch { model, release, .. } => {
                t.switch(release, t0()).unwrap();
                changes.push(format!("{model}@{}", release.label()));
            }
            Step::Undeploy { model } => {
                t.undeploy(model).unwrap();
                changes.push(format!("{model} (undeployed)"));
            }
        }
    }
    if !steps.is_empty() {
        let summary = PassSummary {
            env: "production".into(),
            registry_commit: COMMIT.into(),
            changes,
        };
        t.commit(&summary).unwrap();
    }
    (observed, steps)
}

fn intent(releases: &[Release]) -> BTreeMap<String, Release> {
    releases
        .iter()
        .map(|r| (r.model.clone(), r.clone()))
        .collect()
}

#[test]
fn concurrent_pushes_are_rebased_and_hand_edits_rendered_back() {
    let g = Gitops::new();
    let cfg = config(&g.bare_str(), KserveMode::Standard);
    let mut t = KserveTarget::new("production", &cfg, &g.state(), false).unwrap();
    let fraud = release("fraud-detector", COMMIT, &[("v1.2.0", 90), ("v1.3.0", 10)]);
    let churn = release("churn-predictor", COMMIT, &[("7", 100)]);

    // The empty remote: the first push creates the branch, one commit for both models.
    let (_, steps) = pass(&mut t, &intent(&[fraud.clone(), churn.clone()]));
    assert_eq!(steps.len(), 2);
    assert_eq!(g.commits(), 1);
    let files = git(&g.bare(), &["show", "--name-only", "--format=", "main"]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        [
            "clusters/prod/ml/churn-predictor.yaml",
            "clusters/prod/ml/fraud-detector.yaml",
            "clusters/prod/ml/kustomization.yaml"
        ]
    );
    let msg = g.log("%an <%ae>%n%B");
    assert!(
        msg.starts_with("baton <baton@localhost>\nbaton(production): "),
        "{msg}"
    );
    assert!(
        msg.contains("fraud-detector@v1.2.0 (90%), v1.3.0 (10%)"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("Baton-Source-Commit: {COMMIT}")),
        "{msg}"
    );
    for m in ["fraud-detector", "churn-predictor"] {
        let y = g.show(&format!("clusters/prod/ml/{m}.yaml")).unwrap();
        assert_valid(m, &y);
    }

    // A pass with nothing to change: no step, no commit.
    let (observed, steps) = pass(&mut t, &intent(&[fraud.clone(), churn.clone()]));
    assert!(steps.is_empty(), "{steps:?}");
    assert!(
        observed.values().all(|o| o.drift.is_empty()),
        "{observed:?}"
    );
    assert_eq!(g.commits(), 1);
    // And a commit with nothing pending makes none either.
    t.commit(&PassSummary::default()).unwrap();
    assert_eq!(g.commits(), 1);

    // Between baton's fetch and its push, a person pushes outside baton's folder and edits
    // one of its files by hand: the push is rejected, baton replays its change on top.
    let promoted = release("fraud-detector", COMMIT, &[("v1.3.0", 100)]);
    let observed = t.observe().unwrap();
    g.human_push("README.md", "cluster config\n", "docs: readme");
    let hand = g
        .show("clusters/prod/ml/churn-predictor.yaml")
        .unwrap()
        .replace("minReplicas: 4", "minReplicas: 9");
    g.human_push(
        "clusters/prod/ml/churn-predictor.yaml",
        &hand,
        "scale churn by hand",
    );
    let steps = plan::plan(&intent(&[promoted.clone(), churn.clone()]), &observed);
    assert_eq!(steps.len(), 1);
    t.switch(&promoted, t0()).unwrap();
    t.commit(&PassSummary {
        env: "production".into(),
        registry_commit: COMMIT.into(),
        changes: vec!["fraud-detector@v1.3.0".into()],
    })
    .unwrap();
    assert_eq!(g.commits(), 4, "{}", g.log("%s"));
    let subjects = g.log("%an: %s");
    let first = subjects.lines().next().unwrap();
    assert!(
        first.starts_with("baton: baton(production): fraud-detector@v1.3.0"),
        "{subjects}"
    );
    // Linear: baton's commit sits on the person's.
    assert_eq!(
        git(&g.bare(), &["log", "-1", "--format=%s", "main^"]),
        "scale churn by hand"
    );
    assert_eq!(g.show("README.md").as_deref(), Some("cluster config\n"));
    let f = g.show("clusters/prod/ml/fraud-detector.yaml").unwrap();
    assert_valid("promoted", &f);
    assert!(!f.contains("canary:"), "{f}");

    // The hand edit is drift; the next pass renders it back, keeping the person's README.
    let (observed, steps) = pass(&mut t, &intent(&[promoted.clone(), churn.clone()]));
    let drift = &observed["churn-predictor"].drift;
    assert!(
        drift.iter().any(|d| d.contains("`minReplicas: 9`")),
        "{drift:?}"
    );
    assert!(
        matches!(&steps[..], [Step::Switch { model, kind: plan::SwitchKind::Repair, .. }] if model == "churn-predictor")
    );
    assert_eq!(g.commits(), 5);
    let c = g.show("clusters/prod/ml/churn-predictor.yaml").unwrap();
    assert!(c.contains("minReplicas: 4"), "{c}");
    assert_eq!(g.show("README.md").as_deref(), Some("cluster config\n"));
    let (observed, steps) = pass(&mut t, &intent(&[promoted.clone(), churn.clone()]));
    assert!(steps.is_empty() && observed.values().all(|o| o.drift.is_empty()));

    // A hand edit of the kustomization is drift too; an undeploy removes the file and
    // lists the rest, in one commit.
    g.human_push(
        "clusters/prod/ml/kustomization.yaml",
        "resources: [fraud-detector.yaml]\n",
        "drop churn from kustomize",
    );
    let (observed, _) = pass(&mut t, &intent(std::slice::from_ref(&promoted)));
    assert!(observed["fraud-detector"]
        .drift
        .iter()
        .any(|d| d.contains("kustomization.yaml")));
    assert_eq!(g.commits(), 7);
    assert!(g.show("clusters/prod/ml/churn-predictor.yaml").is_none());
    assert_eq!(
        g.show("clusters/prod/ml/kustomization.yaml").unwrap(),
        render::kustomization(["fraud-detector"])
    );
    let (_, steps) = pass(&mut t, &intent(&[promoted]));
    assert!(steps.is_empty(), "{steps:?}");
    assert_eq!(g.commits(), 7);
}

#[test]
fn a_refused_push_leaves_nothing_half_applied() {
    let g = Gitops::new();
    let cfg = config(&g.bare_str(), KserveMode::Standard);
    let mut t = KserveTarget::new("production", &cfg, &g.state(), false).unwrap();
    let fraud = release("fraud-detector", COMMIT, &[("v1.2.0", 100)]);
    pass(&mut t, &intent(std::slice::from_ref(&fraud)));
    assert_eq!(g.commits(), 1);

    // The remote refuses every push (a server-side hook).
    let hook = g.bare().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'frozen for the release' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let next = release("fraud-detector", COMMIT, &[("v1.2.0", 80), ("v1.3.0", 20)]);
    let observed = t.observe().unwrap();
    assert_eq!(
        plan::plan(&intent(std::slice::from_ref(&next)), &observed).len(),
        1
    );
    t.switch(&next, t0()).unwrap();
    let err = t.commit(&PassSummary::default()).unwrap_err().to_string();
    assert!(err.contains("frozen for the release"), "{err}");
    assert_eq!(g.commits(), 1);
    // The clone is back at the remote's tip: nothing of the failed pass is left in it.
    let clone = t.clone_dir().to_path_buf();
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&clone, &["rev-parse", "HEAD"]),
        git(&g.bare(), &["rev-parse", "main"])
    );
    let observed = t.observe().unwrap();
    assert_eq!(
        observed["fraud-detector"].record.as_ref().unwrap().release,
        fraud
    );

    // Once the remote accepts again, the next pass deploys it.
    std::fs::remove_file(&hook).unwrap();
    pass(&mut t, &intent(&[next]));
    assert_eq!(g.commits(), 2);
}

#[test]
fn a_no_op_pass_over_many_models_runs_at_most_one_git_process() {
    let g = Gitops::new();
    let cfg = config(&g.bare_str(), KserveMode::Standard);
    let mut t = KserveTarget::new("production", &cfg, &g.state(), false).unwrap();
    let releases: Vec<Release> = (0..300)
        .map(|i| release(&format!("model-{i:03}"), COMMIT, &[("1.0", 100)]))
        .collect();
    let (_, steps) = pass(&mut t, &intent(&releases));
    assert_eq!(steps.len(), 300);
    assert_eq!(g.commits(), 1);

    // Count git processes through a wrapper first on PATH.
    let bin = g.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = g.tmp.path().join("git.log");
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = bin.join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // A fresh target (a new state dir: nothing cached, no clone) observing twice, in a child
    // process so that PATH is its own: once with the repository as a local path, once as a
    // file:// URL (what git reaches over a transport, like a remote).
    let url = format!("file://{}", g.bare_str());
    for (repo, state, idle) in [(g.bare_str(), "state-local", 0), (url, "state-url", 1)] {
        let _ = std::fs::remove_file(&log);
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kserve::no_op_observe_child",
                "--nocapture",
                "--ignored",
            ])
            .env("PATH", &path)
            .env("BATON_KSERVE_REPO", &repo)
            .env("BATON_KSERVE_STATE", g.tmp.path().join(state))
            .env("BATON_KSERVE_LOG", &log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        let (first, second) = calls.split_once("--- second observe\n").expect("marker");
        // The first observe makes the clone and resets its worktree: a handful of
        // processes, however many models. The next one fetches at most.
        assert!(first.lines().count() <= 8, "{repo}: {first}");
        assert!(first.contains(" fetch "), "{repo}: {first}");
        assert_eq!(second.lines().count(), idle, "{repo}: {calls}");
        assert!(idle == 0 || second.contains(" fetch "), "{repo}: {calls}");
    }
    assert_eq!(g.commits(), 1);
}

/// Run by [`a_no_op_pass_over_many_models_runs_at_most_one_git_process`] in a child process.
#[test]
#[ignore = "run by a_no_op_pass_over_many_models_runs_at_most_one_git_process"]
fn no_op_observe_child() {
    let (Some(repo), Some(state), Some(log)) = (
        std::env::var_os("BATON_KSERVE_REPO"),
        std::env::var_os("BATON_KSERVE_STATE"),
        std::env::var_os("BATON_KSERVE_LOG"),
    ) else {
        return;
    };
    let cfg = config(&repo.to_string_lossy(), KserveMode::Standard);
    let mut t = KserveTarget::new("production", &cfg, Path::new(&state), false).unwrap();
    let releases: Vec<Release> = (0..300)
        .map(|i| release(&format!("model-{i:03}"), COMMIT, &[("1.0", 100)]))
        .collect();
    for round in 0..2 {
        if round == 1 {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            f.write_all(b"--- second observe\n").unwrap();
        }
        let observed = t.observe().unwrap();
        assert_eq!(observed.len(), 300);
        assert!(plan::plan(&intent(&releases), &observed).is_empty());
    }
}

#[test]
fn status_reads_the_clone_and_never_writes() {
    let g = Gitops::new();
    let cfg = config(&g.bare_str(), KserveMode::Standard);
    // Before the daemon made its clone, status sees nothing and creates nothing.
    let mut ro = KserveTarget::new("production", &cfg, &g.state(), true).unwrap();
    assert!(ro.observe().unwrap().is_empty());
    assert!(!g.state().exists());
    let mut t = KserveTarget::new("production", &cfg, &g.state(), false).unwrap();
    let fraud = release("fraud-detector", COMMIT, &[("v1.2.0", 100)]);
    pass(&mut t, &intent(std::slice::from_ref(&fraud)));
    let mut ro = KserveTarget::new("production", &cfg, &g.state(), true).unwrap();
    let seen = ro.observe().unwrap();
    assert_eq!(
        seen["fraud-detector"].record.as_ref().unwrap().release,
        fraud
    );
    assert!(ro.switch(&fraud, t0()).is_err());
    assert!(ro.undeploy("fraud-detector").is_err());
    assert_eq!(g.commits(), 1);
}

#[test]
fn symbolic_links_in_the_folder_are_never_followed() {
    let g = Gitops::new();
    let outside = g.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("fraud-detector.yaml"), "precious\n").unwrap();
    // A person commits the owned folder as a link to a folder outside the clone.
    let human = g.tmp.path().join("human");
    git(g.tmp.path(), &["init", "-q", "-b", "main", "human"]);
    std::fs::create_dir_all(human.join("clusters/prod")).unwrap();
    std::os::unix::fs::symlink(&outside, human.join("clusters/prod/ml")).unwrap();
    git(&human, &["add", "-A"]);
    git(&human, &["commit", "-q", "-m", "link"]);
    git(&human, &["push", "-q", &g.bare_str(), "HEAD:main"]);
    let cfg = config(&g.bare_str(), KserveMode::Standard);
    let mut t = KserveTarget::new("production", &cfg, &g.state(), false).unwrap();
    let fraud = release("fraud-detector", COMMIT, &[("v1.2.0", 100)]);
    pass(&mut t, &intent(&[fraud]));
    assert_eq!(
        std::fs::read_to_string(outside.join("fraud-detector.yaml")).unwrap(),
        "precious\n"
    );
    // The link was replaced by baton's folder.
    let y = g.show("clusters/prod/ml/fraud-detector.yaml").unwrap();
    assert_valid("after the link", &y);
}

// ---------------------------------------------------------------- the registry and the daemon

const POLICY: &str = r#"version: 1
stages:
  - name: development
  - name: production
    canary: true
  - name: archived
    terminal: true
environments:
  production:
    stage: production
    target:
      kind: kserve
      repo: REPO
      branch: main
      path: clusters/prod/ml
      namespace: ml-prod
      mode: MODE
      runtime: kserve-sklearnserver
      min_replicas: 2
"#;

struct Registry {
    repo: TestRepo,
    gitops: Gitops,
}

impl Registry {
    fn new(mode: &str) -> Self {
        let gitops = Gitops::new();
        let repo = TestRepo::new();
        repo.write(
            "baton.yaml",
            &POLICY
                .replace("REPO", &gitops.bare_str())
                .replace("MODE", mode),
        );
        let r = Registry { repo, gitops };
        r.model("fraud-detector");
        r.version(
            "fraud-detector",
            "1.2.0",
            "production",
            None,
            "s3://models/fraud/1.2.0/",
        );
        r.repo.commit_all("registry");
        r
    }

    fn model(&self, m: &str) {
        self.repo.write(
            &format!("models/{m}/model.yaml"),
            &format!("name: {m}\ndescription: {m}\nowners: [alice@acme.com]\n"),
        );
    }

    fn version(&self, m: &str, v: &str, stage: &str, traffic: Option<u32>, uri: &str) {
        let traffic = traffic
            .map(|t| format!("traffic: {t}\n"))
            .unwrap_or_default();
        let sha = format!("{:0>64}", hex_of(v));
        self.repo.write(
            &format!("models/{m}/versions/{v}.yaml"),
            &format!(
                "model: {m}\nversion: \"{v}\"\nstage: {stage}\n{traffic}artifact:\n  uri: {uri}\n  sha256: {sha}\n  size: 1000\n  format: sklearn\ncreated: 2026-11-01T10:00:00Z\n"
            ),
        );
    }

    fn state(&self) -> PathBuf {
        self.repo.path().join(".git/baton")
    }
}

fn validate(r: &TestRepo) -> (i32, String) {
    let o = r.baton(&["validate"]);
    (code(&o), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn validate_refuses_what_a_kserve_environment_cannot_deploy() {
    let r = Registry::new("knative");
    assert_eq!(validate(&r.repo), (0, validate(&r.repo).1));
    // A registry-relative artifact, in the stage the environment deploys...
    r.repo.write("artifacts/fraud/1.3.0/model.pkl", "bytes");
    r.version(
        "fraud-detector",
        "1.3.0",
        "production",
        Some(10),
        "artifacts/fraud/1.3.0/model.pkl",
    );
    r.repo.commit_all("relative artifact");
    let (c, out) = validate(&r.repo);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("models/fraud-detector/versions/1.3.0.yaml")
            && out.contains("environment `production` (kserve)")
            && out.contains("fraud-detector@1.3.0: artifact `artifacts/fraud/1.3.0/model.pkl` lives in the registry"),
        "{out}"
    );
    // ... or kept from a later stage (an environment deploying `development` runs the
    // production primary), and file:// ones.
    let r = Registry::new("standard");
    r.repo.edit(
        "baton.yaml",
        "environments:\n",
        "environments:\n  dev:\n    stage: development\n    target: {kind: kserve, repo: /elsewhere.git, path: dev, namespace: ml-dev}\n",
    );
    r.repo.edit(
        "models/fraud-detector/versions/1.2.0.yaml",
        "s3://models/fraud/1.2.0/",
        "file:///srv/models/fraud/1.2.0/",
    );
    r.repo.commit_all("file artifact");
    let (c, out) = validate(&r.repo);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("environment `dev` (kserve, kept from stage `production`)"),
        "{out}"
    );
    assert!(out.contains("environment `production` (kserve)"), "{out}");

    // Three versions in knative mode.
    let r = Registry::new("knative");
    r.version(
        "fraud-detector",
        "1.3.0",
        "production",
        Some(10),
        "s3://m/1.3.0",
    );
    r.version(
        "fraud-detector",
        "1.4.0",
        "production",
        Some(5),
        "s3://m/1.4.0",
    );
    r.repo.commit_all("three versions");
    let (c, out) = validate(&r.repo);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("knative mode expresses at most two versions"),
        "{out}"
    );
    r.repo.edit("baton.yaml", "mode: knative", "mode: standard");
    r.repo.commit_all("standard mode");
    assert_eq!(validate(&r.repo).0, 0, "{}", validate(&r.repo).1);

    // A missing format.
    r.repo.edit(
        "models/fraud-detector/versions/1.4.0.yaml",
        "  format: sklearn\n",
        "",
    );
    r.repo.commit_all("no format");
    let (c, out) = validate(&r.repo);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("fraud-detector@1.4.0: artifact.format is missing"),
        "{out}"
    );

    // Two environments writing the same folder of the same repository and branch.
    let r = Registry::new("standard");
    r.repo.edit(
        "baton.yaml",
        "environments:\n",
        &format!("environments:\n  shadow:\n    stage: production\n    target: {{kind: kserve, repo: '{}/', path: clusters/prod/ml/, namespace: ml-shadow}}\n", r.gitops.bare_str()),
    );
    r.repo.commit_all("two environments");
    let (c, out) = validate(&r.repo);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("environments `production` and `shadow` both write"),
        "{out}"
    );

    // A folder inside git's own files.
    let r = Registry::new("standard");
    r.repo
        .edit("baton.yaml", "path: clusters/prod/ml", "path: .git/hooks");
    r.repo.commit_all("into .git");
    let (c, out) = validate(&r.repo);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("must not contain a `.git` folder"), "{out}");
    r.repo
        .edit("baton.yaml", "path: .git/hooks", "path: clusters/prod/ml");
    r.repo.edit(
        "baton.yaml",
        &format!("repo: {}", r.gitops.bare_str()),
        "repo: ../outside.git",
    );
    r.repo.commit_all("a relative repo outside the state dir");
    let (c, out) = validate(&r.repo);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("repo `../outside.git`"), "{out}");
}

#[test]
fn the_daemon_pushes_promotes_and_repairs_end_to_end() {
    let r = Registry::new("standard");
    let g = &r.gitops;
    // One pass of a real daemon process: the branch is created with one commit.
    let once = |what: &str| {
        let o = r.repo.baton(&["serve", "--once"]);
        assert_eq!(code(&o), 0, "{what}: {}{}", stdout(&o), stderr(&o));
        stdout(&o)
    };
    let out = once("first pass");
    assert!(
        out.contains("fraud-detector") && out.contains("synced"),
        "{out}"
    );
    assert_eq!(g.commits(), 1);
    let y = g.show("clusters/prod/ml/fraud-detector.yaml").unwrap();
    assert_valid("first deploy", &y);
    assert!(y.contains("storageUri: s3://models/fraud/1.2.0/"), "{y}");
    let registry_head = r.repo.head();
    assert!(g
        .log("%B")
        .contains(&format!("Baton-Source-Commit: {registry_head}")));

    // Nothing changed: no commit.
    once("no-op pass");
    assert_eq!(g.commits(), 1);

    // A canary lands in the registry (registered, then promoted at 10%): one commit with
    // spec.canary.
    r.version(
        "fraud-detector",
        "1.3.0",
        "development",
        None,
        "s3://models/fraud/1.3.0/",
    );
    r.repo.commit_all("register 1.3.0");
    r.version(
        "fraud-detector",
        "1.3.0",
        "production",
        Some(10),
        "s3://models/fraud/1.3.0/",
    );
    r.repo.commit_all("canary 1.3.0 at 10%");
    once("canary pass");
    assert_eq!(g.commits(), 2);
    let y = g.show("clusters/prod/ml/fraud-detector.yaml").unwrap();
    assert_valid("canary", &y);
    let doc = to_json(&y);
    assert_eq!(doc["spec"]["canary"][0]["predictor"]["name"], "v1-3-0");
    assert_eq!(doc["spec"]["canary"][0]["trafficPercent"], 10);

    // Status (read-only) sees it synced from the clone.
    let st = r.repo.baton(&[
        "--format",
        "json",
        "status",
        "--state-dir",
        r.state().to_str().unwrap(),
    ]);
    assert_eq!(code(&st), 0, "{}", stderr(&st));
    let st: Value = serde_json::from_str(&stdout(&st)).unwrap();
    let m = &st["environments"][0]["models"][0];
    assert_eq!(m["sync"], "synced", "{st}");
    assert_eq!(g.commits(), 2);

    // A long-running daemon: a hand edit in the GitOps repository is drift, rendered back
    // at the next resync; the person's other commit stays.
    let mut d = Daemon::start(r.repo.path(), &r.state());
    g.human_push("apps/other.yaml", "kind: ConfigMap\n", "unrelated app");
    let hand = y.replace("trafficPercent: 10", "trafficPercent: 50");
    g.human_push(
        "clusters/prod/ml/fraud-detector.yaml",
        &hand,
        "more canary traffic by hand",
    );
    d.eventually("the hand edit rendered back", || {
        g.show("clusters/prod/ml/fraud-detector.yaml").as_deref() == Some(y.as_str())
    });
    assert_eq!(
        g.show("apps/other.yaml").as_deref(),
        Some("kind: ConfigMap\n")
    );
    // The event is recorded once the push that repaired the file returned, so it can trail
    // the file by a moment.
    d.eventually("a repaired event", || {
        d.get("/api/v1/events").contains("repaired")
    });

    // Promotion: 1.3.0 becomes the primary, 1.2.0 archived.
    r.repo.edit(
        "models/fraud-detector/versions/1.3.0.yaml",
        "traffic: 10\n",
        "",
    );
    r.repo.edit(
        "models/fraud-detector/versions/1.2.0.yaml",
        "stage: production",
        "stage: archived",
    );
    r.repo.commit_all("promote 1.3.0");
    d.eventually("the promotion pushed", || {
        g.show("clusters/prod/ml/fraud-detector.yaml")
            .is_some_and(|y| !y.contains("canary:") && y.contains("name: v1-3-0"))
    });
    let y = g.show("clusters/prod/ml/fraud-detector.yaml").unwrap();
    assert_valid("promoted", &y);
    d.stop();
}

#[test]
fn the_bundled_kserve_example_runs_once() {
    let repo = TestRepo::new();
    common::copy_dir(
        &manifest_dir().join("examples/kserve"),
        &repo.path().join("examples/kserve"),
    );
    repo.commit_all("example");
    let v = repo.baton(&["validate", "--path", "examples/kserve"]);
    assert_eq!(code(&v), 0, "{}{}", stdout(&v), stderr(&v));
    let o = repo.baton(&["serve", "--path", "examples/kserve", "--once"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    // The GitOps repository was created under the state dir and holds valid services.
    let bare = repo.path().join(".git/baton/kserve-example-gitops.git");
    let show = |p: &str| git(&bare, &["show", &format!("main:clusters/prod/ml/{p}")]);
    for m in ["flowers", "sklearn-iris"] {
        assert_valid(m, &format!("{}\n", show(&format!("{m}.yaml"))));
    }
    let flowers = to_json(&show("flowers.yaml"));
    assert_eq!(
        flowers["spec"]["canary"][0]["predictor"]["model"]["storageUri"],
        "gs://kfserving-examples/models/tensorflow/flowers-2"
    );
    assert!(show("kustomization.yaml").contains("- sklearn-iris.yaml"));
}

// ---------------------------------------------------------------- a daemon process

struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Daemon {
    fn start(repo: &Path, state: &Path) -> Daemon {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("daemon.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("--repo")
            .arg(repo)
            .args(["serve", "--interval", "200ms", "--listen", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(state)
            .env_remove("BATON_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start baton serve");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "daemon did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Daemon {
            child,
            addr,
            log,
            _logdir: logdir,
        }
    }

    fn get(&self, path: &str) -> String {
        match ureq::get(&format!("http://{}{path}", self.addr)).call() {
            Ok(r) => r.into_string().unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    }

    /// Poll `cond`; the deadline only fails a broken build, it is not a timing claim.
    fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}\n--- daemon log ---\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
