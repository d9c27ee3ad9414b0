//! The dashboard's server-side rendering: the pipeline page at 1,000 models x 3 environments
//! (the unfiltered first page, and one page of a filtered, paged view) and a model page with
//! 500 versions, from view-model to HTML. Goals: each < 50 ms and < 1 MB.
//!
//! `cargo bench --bench dashboard` (a quick smoke run under `cargo test`).

use baton::daemon::dashboard::render;
use baton::daemon::dashboard::trail::{Outcome, TrailRow};
use baton::daemon::dashboard::view::{self, CommitMeta, ModelInput, PipelineInput, PipelineQuery};
use baton::daemon::state::Entered;
use baton::daemon::view::{
    EnvironmentView, HeldView, ModelView, StatusView, SyncStatus, VersionView,
};
use baton::manifest::{parse_policy, parse_version};
use baton::registry::{ModelEntry, Registry, VersionFile, VersionKey};
use chrono::Utc;
use git2::Oid;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

const POLICY: &str = "version: 1
stages:
  - name: development
  - name: staging
    gates:
      - metric: {name: auc, min: 0.9}
  - name: production
    canary: true
    gates:
      - approvals: {min: 1, from: [owners]}
      - soak: {stage: staging, for: 24h}
      - window: {days: [mon, tue, wed, thu], from: \"09:00\", to: \"16:00\", tz: Europe/Berlin}
  - name: archived
    terminal: true
environments:
  staging: {stage: staging, target: {kind: local, path: staging}}
  production: {stage: production, target: {kind: local, path: production}}
  production-eu: {stage: production, target: {kind: local, path: production-eu}}
";

fn name(i: usize) -> String {
    format!("model-{i:04}")
}

fn manifest(model: &str, v: usize, stage: &str, traffic: Option<u32>) -> VersionFile {
    let traffic = traffic
        .map(|t| format!("traffic: {t}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "model: {model}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: s3://bucket/{model}/{v}/model.onnx\n  sha256: {}\n  size: 48213\n  format: onnx\nmetrics:\n  auc: 0.9{v}\n  p99_latency_ms: 11.{v}\nevidence:\n  offline-eval: {{passed: true, report: reports/{model}/{v}.json}}\nlineage:\n  code: https://example.invalid/{model}@{v}\n{traffic}created: 2026-11-20T10:00:00Z\n",
        "ab".repeat(32)
    );
    VersionFile {
        label: v.to_string(),
        parsed: Ok(Arc::new(parse_version(yaml.as_bytes()).unwrap())),
        blob: Oid::zero(),
        path: format!("models/{model}/versions/{v}.yaml"),
    }
}

fn registry(models: &BTreeMap<String, Vec<VersionFile>>) -> Registry {
    Registry {
        commit: Oid::zero(),
        root: String::new(),
        tree: Oid::zero(),
        policy: Some(Arc::new(parse_policy(POLICY.as_bytes()).unwrap())),
        policy_blob: None,
        models: models
            .iter()
            .map(|(m, vs)| {
                (
                    m.clone(),
                    Arc::new(ModelEntry {
                        name: m.clone(),
                        path: format!("models/{m}"),
                        tree: Oid::zero(),
                        manifest: None,
                        manifest_blob: None,
                        versions: vs
                            .iter()
                            .map(|v| (VersionKey(v.label.clone()), v.clone()))
                            .collect(),
                        layout: vec![],
                        diagnostics: vec![],
                    }),
                )
            })
            .collect(),
        diagnostics: vec![],
    }
}

fn vv(v: &str, traffic: u32) -> VersionView {
    VersionView {
        version: v.into(),
        traffic,
        sha256: "ab".repeat(32),
    }
}

/// `n` models, each with versions 1 (production primary), 2 (10% canary), 3 (staging),
/// 4 (development); every seventh blocked in production.
fn world(n: usize) -> (StatusView, Registry, Vec<Entered>) {
    let mut models = BTreeMap::new();
    let mut envs: Vec<EnvironmentView> = ["staging", "production", "production-eu"]
        .iter()
        .map(|e| EnvironmentView {
            name: (*e).into(),
            stage: e.trim_end_matches("-eu").into(),
            target: format!("local /var/lib/baton/{e}"),
            models: vec![],
        })
        .collect();
    let mut held = vec![];
    let mut entered = vec![];
    for i in 0..n {
        let m = name(i);
        models.insert(
            m.clone(),
            vec![
                manifest(&m, 1, "production", None),
                manifest(&m, 2, "production", Some(10)),
                manifest(&m, 3, "staging", None),
                manifest(&m, 4, "development", None),
            ],
        );
        let blocked = i % 7 == 0;
        for e in envs.iter_mut() {
            let (deployed, sync) = if e.stage == "staging" {
                (vec![vv("3", 100)], SyncStatus::Synced)
            } else if blocked {
                (vec![vv("1", 100)], SyncStatus::Blocked)
            } else {
                (vec![vv("1", 90), vv("2", 10)], SyncStatus::Synced)
            };
            e.models.push(ModelView {
                model: m.clone(),
                desired: vec![vv("1", 90), vv("2", 10)],
                deployed,
                sync,
                health: baton::daemon::view::Health::Healthy,
                reasons: if blocked {
                    vec![format!("{m}@2 -> production: approvals: 0 of 1 approval from owners (models/{m}/versions/2.yaml:3)")]
                } else {
                    vec![]
                },
                waiting_until: None,
                deployed_commit: Some("cd".repeat(20)),
                deployed_at: Some(Utc::now()),
                verification: None,
            });
        }
        if blocked {
            held.push(HeldView {
                model: m.clone(),
                kind: baton::daemon::gate::HoldKind::Blocked,
                baseline: "ef".repeat(20),
                reasons: vec![format!("{m}@2 -> production: approvals: 0 of 1 approval from owners (models/{m}/versions/2.yaml:3)")],
                until: None,
                offending: Some("01".repeat(20)),
                author: Some("Mallory <mallory@acme.com>".into()),
                since: Some(Utc::now()),
            });
        }
        entered.push(Entered {
            model: m.clone(),
            version: "3".into(),
            stage: "staging".into(),
            at: Utc::now() - chrono::Duration::hours(5),
        });
    }
    let status = StatusView {
        branch: "main".into(),
        head: Some("ab".repeat(20)),
        ready: true,
        updated: Some(Utc::now()),
        environments: envs,
        held,
        ..Default::default()
    };
    (status, registry(&models), entered)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median milliseconds of `f` over `runs`, and the size of what it made.
fn measure(runs: usize, mut f: impl FnMut() -> String) -> (f64, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let html = f();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        size = html.len();
    }
    (median(times), size)
}

fn report(what: &str, (ms, bytes): (f64, usize), bench: bool) {
    let ok = ms < 50.0 && bytes < 1 << 20;
    println!(
        "{what}: median {ms:.2} ms, {:.1} KiB  [goal: < 50 ms, < 1 MiB]{}",
        bytes as f64 / 1024.0,
        if bench {
            if ok {
                " ok"
            } else {
                " OVER"
            }
        } else {
            ""
        }
    );
    assert!(bytes < 1 << 20, "{what}: {bytes} bytes");
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, runs) = if bench { (1000, 21) } else { (1000, 3) };
    let (status, reg, entered) = world(n);
    let commits: HashMap<String, CommitMeta> = HashMap::new();
    let input = PipelineInput {
        status: &status,
        registry: Some(&reg),
        entered: &entered,
        commits: &commits,
        now: Utc::now(),
    };
    let pipeline = |q: PipelineQuery| {
        let p = view::pipeline(&input, &q);
        render::pipeline(&p).unwrap()
    };
    let first = measure(runs, || pipeline(PipelineQuery::default()));
    report(
        &format!("pipeline, {n} models x 3 environments, unfiltered first page"),
        first,
        bench,
    );
    let paged = measure(runs, || {
        pipeline(PipelineQuery {
            q: Some("model-0".into()),
            sync: Some("synced".into()),
            env: None,
            page: Some("7".into()),
        })
    });
    report(
        &format!("pipeline, {n} models, page 7 of `?q=model-0&sync=synced`"),
        paged,
        bench,
    );
    let html = pipeline(PipelineQuery::default());
    assert!(
        html.contains("model-0000")
            && html.contains("model-0049")
            && !html.contains("model-0050\"")
    );

    // A model with 500 versions (one primary, a canary, staging, the rest archived) and
    // 1,000 transitions in its trail.
    let m = "big-model";
    let mut vs: Vec<VersionFile> = (1..=500)
        .map(|v| manifest(m, v, "archived", None))
        .collect();
    vs[499] = manifest(m, 500, "staging", None);
    vs[498] = manifest(m, 499, "production", Some(10));
    vs[497] = manifest(m, 498, "production", None);
    let mut models = BTreeMap::new();
    models.insert(m.to_owned(), vs);
    let big = registry(&models);
    let trail: Vec<TrailRow> = (0..1000)
        .map(|i| TrailRow {
            date: "2026-11-20 10:00 UTC".into(),
            commit: "ab".repeat(20),
            commit_short: "abababab".into(),
            version: format!("{}", 500 - i / 2),
            from: "staging".into(),
            to: "production".into(),
            author: "Alice <alice@acme.com>".into(),
            approvers: vec!["bob@acme.com".into()],
            subject: "promote".into(),
            outcomes: vec![Outcome {
                word: "deployed",
                detail: "to production".into(),
            }],
        })
        .collect();
    let model_page = measure(runs, || {
        let p = view::model_page(ModelInput {
            model: m,
            status: &status,
            registry: Some(&big),
            entered: &entered,
            commits: &commits,
            trail: trail.clone(),
            events: vec![],
            now: Utc::now(),
        })
        .unwrap();
        render::model(&p).unwrap()
    });
    report(
        "model page, 500 versions, 1,000 transitions",
        model_page,
        bench,
    );
    if !bench {
        println!("smoke run (run `cargo bench --bench dashboard` to measure optimised)");
    }
}
