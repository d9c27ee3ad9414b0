//! In-process tests of the controller: a real git registry in a temp dir, a clock the test
//! moves ([`Controller::with_clock`]) and a fake target that records what it is asked to run
//! ([`Controller::with_targets`]).

use super::*;
use crate::daemon::artifact::ArtifactSource;
use crate::daemon::release::DeploymentRecord;
use crate::daemon::target::{Observed, Switched};
use crate::daemon::view::{ModelView, SyncStatus};
use chrono::TimeZone;
use git2::{IndexAddOption, RepositoryInitOptions, Signature};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

/// What every fake target of a test shares: what runs where, and what it was asked to do.
#[derive(Default)]
struct World {
    /// (environment, model) -> the record of what runs.
    runs: BTreeMap<(String, String), DeploymentRecord>,
    /// Every switch attempted, failed ones too: (environment, model, label).
    switches: Vec<(String, String, String)>,
    undeploys: Vec<(String, String)>,
    /// (environment, model) whose switches fail.
    fail_switch: BTreeSet<(String, String)>,
}

impl World {
    fn running(&self, env: &str, model: &str) -> Option<String> {
        self.runs
            .get(&(env.to_owned(), model.to_owned()))
            .map(|r| r.release.label())
    }

    fn switches_of(&self, env: &str, model: &str) -> usize {
        self.switches
            .iter()
            .filter(|(e, m, _)| e == env && m == model)
            .count()
    }
}

type Shared = Arc<Mutex<World>>;

/// A target that keeps what it runs in the shared [`World`].
struct FakeTarget {
    env: String,
    world: Shared,
}

fn fake_error(msg: String) -> TargetError {
    TargetError::Other(msg)
}

impl Target for FakeTarget {
    fn describe(&self) -> String {
        format!("fake {}", self.env)
    }

    fn observe(&mut self) -> Result<BTreeMap<String, Observed>, TargetError> {
        let w = self.world.lock().unwrap();
        Ok(w.runs
            .iter()
            .filter(|((e, _), _)| *e == self.env)
            .map(|((_, m), r)| {
                let o = Observed {
                    record: Some(Arc::new(r.clone())),
                    current: Some(r.release.primary().sha256.clone()),
                    drift: Vec::new(),
                };
                (m.clone(), o)
            })
            .collect())
    }

    /// Read every artifact from the registry and check its digest, as a real target does.
    fn stage(&mut self, release: &Release, source: &dyn ArtifactSource) -> Result<(), TargetError> {
        for v in &release.versions {
            let mut bytes = Vec::new();
            source
                .open(release, v)?
                .read_to_end(&mut bytes)
                .map_err(|e| fake_error(e.to_string()))?;
            let got = hex::encode(Sha256::digest(&bytes));
            if got != v.sha256 {
                return Err(fake_error(format!("fake: sha256 mismatch for {}", v.uri)));
            }
        }
        Ok(())
    }

    fn switch(&mut self, release: &Release, now: DateTime<Utc>) -> Result<Switched, TargetError> {
        let mut w = self.world.lock().unwrap();
        let key = (self.env.clone(), release.model.clone());
        w.switches
            .push((key.0.clone(), key.1.clone(), release.label()));
        if w.fail_switch.contains(&key) {
            return Err(fake_error(format!(
                "fake: switch of {} refused",
                release.model
            )));
        }
        let rec = DeploymentRecord::new(&self.env, release, now);
        let previous = w.runs.insert(key, rec);
        Ok(Switched {
            previous,
            artifact: release.primary().uri.clone(),
        })
    }

    fn undeploy(&mut self, model: &str) -> Result<(), TargetError> {
        let mut w = self.world.lock().unwrap();
        w.undeploys.push((self.env.clone(), model.to_owned()));
        w.runs.remove(&(self.env.clone(), model.to_owned()));
        Ok(())
    }
}

/// Stages development -> staging -> production (-> archived); staging and production deploy.
fn policy(production_gates: &str) -> String {
    format!(
        "version: 1
stages:
  - name: development
  - name: staging
  - name: production
    gates:
{production_gates}  - name: archived
    terminal: true
environments:
  staging:
    stage: staging
    target: {{kind: local, path: staging}}
  production:
    stage: production
    target: {{kind: local, path: production}}
"
    )
}

const SOAK_1H: &str = "      - soak: {stage: staging, for: 1h}\n";

/// Monday 2026-11-23, 10:00 UTC: where every test clock starts.
fn monday_10h() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

/// A registry in a git repository, a controller on it with a fake target and a moved clock.
struct Harness {
    tmp: tempfile::TempDir,
    repo: Repository,
    clock: Arc<Mutex<DateTime<Utc>>>,
    world: Shared,
    ctrl: Option<Controller>,
    interval: Duration,
}

impl Harness {
    /// The trusted head: alpha 1 in production, 2 in staging, 3 in development; beta 1 in
    /// production, 2 in staging, 3 in development (committed at `start`).
    fn new(policy: &str, interval: Duration, start: DateTime<Utc>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("repo");
        let mut opts = RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(&work, &opts).unwrap();
        let h = Harness {
            tmp,
            repo,
            clock: Arc::new(Mutex::new(start)),
            world: Arc::default(),
            ctrl: None,
            interval,
        };
        h.write("baton.yaml", policy.as_bytes());
        for m in ["alpha", "beta"] {
            h.write(
                &format!("models/{m}/model.yaml"),
                format!("name: {m}\ndescription: test model {m}\n").as_bytes(),
            );
            h.version(m, "1", "production", "");
            h.version(m, "2", "staging", "");
            h.version(m, "3", "development", "");
        }
        h
    }

    fn work(&self) -> &Path {
        self.repo.workdir().unwrap()
    }

    fn write(&self, rel: &str, content: &[u8]) {
        let p = self.work().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.work().join(rel)).unwrap()
    }

    /// A version manifest with its in-registry artifact (sha256 and size of the bytes);
    /// `extra` is appended (e.g. `requires:`).
    fn version(&self, model: &str, v: &str, stage: &str, extra: &str) {
        let bytes = format!("{model} build {v}\n").into_bytes();
        let uri = format!("artifacts/{model}/{v}.bin");
        self.write(&uri, &bytes);
        let sha = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len();
        self.write(
            &format!("models/{model}/versions/{v}.yaml"),
            format!(
                "model: {model}\nversion: \"{v}\"\nstage: {stage}\nartifact:\n  uri: {uri}\n  sha256: {sha}\n  size: {size}\ncreated: 2026-11-01T10:00:00Z\n{extra}"
            )
            .as_bytes(),
        );
    }

    /// Promotion: edit the manifest's `stage:` line.
    fn set_stage(&self, model: &str, v: &str, stage: &str) {
        let rel = format!("models/{model}/versions/{v}.yaml");
        let text = self.read(&rel);
        let line = text.lines().find(|l| l.starts_with("stage: ")).unwrap();
        let edited = text.replacen(line, &format!("stage: {stage}"), 1);
        self.write(&rel, edited.as_bytes());
    }

    /// Commit the work tree on `main`, dated by the test clock; returns the commit id.
    fn commit(&self, msg: &str) -> String {
        let mut idx = self.repo.index().unwrap();
        idx.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        idx.write().unwrap();
        let tree = self.repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let when = git2::Time::new(self.now().timestamp(), 0);
        let sig = Signature::new("Test Author", "author@acme.com", &when).unwrap();
        let parent = self.repo.head().ok().map(|h| h.peel_to_commit().unwrap());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
            .unwrap()
            .to_string()
    }

    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn set_clock(&self, t: DateTime<Utc>) {
        *self.clock.lock().unwrap() = t;
    }

    fn advance(&self, d: chrono::Duration) {
        *self.clock.lock().unwrap() += d;
    }

    /// The controller (opened at the first call, on an empty state dir: the head then is
    /// the trusted baseline).
    fn ctrl(&mut self) -> &mut Controller {
        if self.ctrl.is_none() {
            let cfg = ControllerConfig {
                repo: self.work().to_path_buf(),
                branch: "main".into(),
                path: None,
                interval: self.interval,
                trust: None,
                fetch_timeout: Duration::from_secs(10),
                github: None,
                artifacts: Default::default(),
                public_url: None,
                rollback: Default::default(),
            };
            let dir = StateDir::open(&self.tmp.path().join("state")).unwrap();
            let clock = self.clock.clone();
            let world = self.world.clone();
            let build: TargetBuilder = Arc::new(move |env, _spec, _cx| {
                Ok(Box::new(FakeTarget {
                    env: env.to_owned(),
                    world: world.clone(),
                }) as Box<dyn Target>)
            });
            let c = Controller::new(cfg, dir, Arc::new(AtomicBool::new(false)))
                .unwrap()
                .with_clock(Arc::new(move || *clock.lock().unwrap()))
                .with_targets(build);
            self.ctrl = Some(c);
        }
        self.ctrl.as_mut().unwrap()
    }

    fn pass(&mut self) -> PassOutcome {
        self.ctrl().reconcile().expect("the pass runs")
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    fn running(&self, env: &str, model: &str) -> Option<String> {
        self.world().running(env, model)
    }

    fn switches(&self) -> usize {
        self.world().switches.len()
    }

    fn view(&mut self, env: &str, model: &str) -> ModelView {
        let status = self.ctrl().status.clone();
        status
            .environments
            .iter()
            .find(|e| e.name == env)
            .unwrap_or_else(|| panic!("no environment {env} in {status:?}"))
            .models
            .iter()
            .find(|m| m.model == model)
            .unwrap_or_else(|| panic!("no model {model} in {env}: {status:?}"))
            .clone()
    }
}

/// What the trusted baseline of [`Harness::new`] runs.
fn assert_baseline_runs(h: &Harness) {
    for m in ["alpha", "beta"] {
        assert_eq!(h.running("production", m).as_deref(), Some("1"), "{m}");
        assert_eq!(h.running("staging", m).as_deref(), Some("2"), "{m}");
    }
}

/// How long the runner sleeps until `t`, seen from `now` (the pass's end on the test clock).
fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (t - now).to_std().unwrap() + WAKE_SLACK
}

#[test]
fn a_change_that_passes_its_gates_deploys_and_the_next_pass_is_a_noop() {
    let mut h = Harness::new(&policy(SOAK_1H), Duration::from_secs(30), monday_10h());
    let trusted = h.commit("registry with alpha and beta");

    let out = h.pass();
    assert!(!out.failed && !out.interrupted);
    assert_baseline_runs(&h);
    assert_eq!(h.switches(), 4, "one switch per environment and model");
    assert_eq!(
        h.world().runs[&("production".into(), "alpha".into())].commit,
        trusted
    );
    assert!(h.ctrl().status.all_synced(), "{:?}", h.ctrl().status);
    assert_eq!(h.ctrl().status.head.as_deref(), Some(trusted.as_str()));

    // A change no gate holds (into staging) lands after the trusted head: judged, deployed.
    h.advance(chrono::Duration::minutes(5));
    h.set_stage("alpha", "3", "staging");
    h.set_stage("alpha", "2", "archived");
    let head = h.commit("alpha 3 to staging");
    let out = h.pass();
    assert!(!out.failed);
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("3"));
    assert_eq!(h.switches(), 5, "only alpha in staging switched");
    let rec = h.world().runs[&("staging".into(), "alpha".into())].clone();
    assert_eq!(rec.commit, head);
    assert_eq!(rec.time, h.now(), "switched at the test clock's time");
    assert!(
        h.ctrl().status.held.is_empty(),
        "{:?}",
        h.ctrl().status.held
    );

    // Nothing changed: no switch, no undeploy, everything synced.
    let out = h.pass();
    assert!(!out.failed);
    assert_eq!(
        out.action.requeue_after, h.interval,
        "nothing to wake up for"
    );
    assert_eq!(h.switches(), 5);
    assert!(h.world().undeploys.is_empty());
    assert!(h.ctrl().status.all_synced(), "{:?}", h.ctrl().status);
    let v = h.view("staging", "alpha");
    assert_eq!(v.sync, SyncStatus::Synced);
    assert!(v.reasons.is_empty(), "{:?}", v.reasons);
    assert_eq!(v.deployed_commit.as_deref(), Some(head.as_str()));
    assert_eq!(h.ctrl().status.head.as_deref(), Some(head.as_str()));
}

#[test]
fn a_pass_parses_each_changed_manifest_once_for_judging_and_loading() {
    let mut h = Harness::new(&policy(""), Duration::from_secs(30), monday_10h());
    h.commit("registry with alpha and beta");
    h.pass();
    let before = h.ctrl().manifests_parsed();
    assert_eq!(before, 6, "the trusted head: 2 models x 3 versions, once");

    // Two manifests change: the judge reads both sides of alpha's folder, the store loads the
    // new head, the status reads it again: each new blob is parsed once, by whoever is first.
    h.set_stage("alpha", "3", "staging");
    h.set_stage("alpha", "2", "archived");
    h.commit("alpha 3 to staging");
    h.pass();
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("3"));
    assert_eq!(h.ctrl().manifests_parsed() - before, 2);

    // A pass with nothing new parses nothing.
    h.pass();
    assert_eq!(h.ctrl().manifests_parsed() - before, 2);
}

#[test]
fn a_promotion_waits_for_its_soak_and_deploys_when_the_clock_reaches_it() {
    let mut h = Harness::new(
        &policy(SOAK_1H),
        Duration::from_secs(24 * 3600),
        monday_10h(),
    );
    h.commit("registry with alpha and beta");
    h.pass();
    assert_baseline_runs(&h);

    // alpha 3 enters staging: the daemon accepts it now, and its soak starts now.
    h.advance(chrono::Duration::minutes(1));
    let entered = h.now();
    h.set_stage("alpha", "3", "staging");
    h.set_stage("alpha", "2", "archived");
    h.commit("alpha 3 to staging");
    h.pass();
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("3"));
    let soak_end = entered + chrono::Duration::hours(1);

    // Ten minutes later it is promoted to production: it waits for the rest of its soak.
    h.advance(chrono::Duration::minutes(10));
    h.set_stage("alpha", "3", "production");
    h.set_stage("alpha", "1", "archived");
    h.commit("alpha 3 to production");
    let switches = h.switches();
    let out = h.pass();
    assert!(!out.failed, "waiting is not a failure");
    assert_eq!(h.switches(), switches, "nothing switched");
    assert_eq!(h.running("production", "alpha").as_deref(), Some("1"));
    let v = h.view("production", "alpha");
    assert_eq!(v.sync, SyncStatus::Waiting, "{v:?}");
    assert_eq!(v.waiting_until, Some(soak_end), "{v:?}");
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("soak") && r.contains("only 10m")),
        "measured from when the daemon accepted alpha 3 into staging: {v:?}"
    );
    assert_eq!(
        out.action.requeue_after,
        until(soak_end, h.now()),
        "the next pass runs when the soak ends, not after the 24h interval"
    );
    // Staging keeps alpha 3 (kept from production), beta is untouched.
    assert_eq!(h.view("staging", "alpha").sync, SyncStatus::Synced);
    assert_eq!(h.view("production", "beta").sync, SyncStatus::Synced);

    // A second before the soak ends it still waits.
    h.set_clock(soak_end - chrono::Duration::seconds(1));
    let out = h.pass();
    assert_eq!(h.running("production", "alpha").as_deref(), Some("1"));
    assert_eq!(h.view("production", "alpha").sync, SyncStatus::Waiting);
    assert_eq!(out.action.requeue_after, until(soak_end, h.now()));

    // Once the clock reaches it, the next pass deploys.
    h.set_clock(soak_end);
    let out = h.pass();
    assert!(!out.failed);
    assert_eq!(h.running("production", "alpha").as_deref(), Some("3"));
    assert_eq!(
        h.switches(),
        switches + 1,
        "one switch: alpha in production"
    );
    let v = h.view("production", "alpha");
    assert_eq!(v.sync, SyncStatus::Synced, "{v:?}");
    assert_eq!(v.waiting_until, None);
    assert!(
        h.ctrl().status.held.is_empty(),
        "{:?}",
        h.ctrl().status.held
    );
    assert_eq!(out.action.requeue_after, h.interval);
}

#[test]
fn a_deploy_window_holds_until_it_opens() {
    let window = "      - window: {days: [tue], from: \"09:00\", to: \"17:00\", tz: UTC}\n";
    let interval = Duration::from_secs(24 * 3600);
    let mut h = Harness::new(&policy(window), interval, monday_10h());
    h.commit("registry with alpha and beta");
    h.pass();
    assert_baseline_runs(&h);

    // Monday: promoted to production, outside the window.
    h.set_stage("alpha", "2", "production");
    h.set_stage("alpha", "1", "archived");
    h.commit("alpha 2 to production");
    let switches = h.switches();
    let out = h.pass();
    assert!(!out.failed);
    assert_eq!(h.switches(), switches);
    assert_eq!(h.running("production", "alpha").as_deref(), Some("1"));
    let opens = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
    let v = h.view("production", "alpha");
    assert_eq!(v.sync, SyncStatus::Waiting, "{v:?}");
    assert_eq!(v.waiting_until, Some(opens), "{v:?}");
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("window") && r.contains("closed")),
        "{v:?}"
    );
    assert_eq!(out.action.requeue_after, until(opens, h.now()));

    // Tuesday 08:59:59: still closed.
    h.set_clock(opens - chrono::Duration::seconds(1));
    h.pass();
    assert_eq!(h.running("production", "alpha").as_deref(), Some("1"));
    assert_eq!(h.view("production", "alpha").sync, SyncStatus::Waiting);

    // Tuesday 09:00: open (from is inclusive), deployed.
    h.set_clock(opens);
    let out = h.pass();
    assert!(!out.failed);
    assert_eq!(h.running("production", "alpha").as_deref(), Some("2"));
    assert_eq!(h.switches(), switches + 1);
    assert_eq!(h.view("production", "alpha").sync, SyncStatus::Synced);
    assert!(
        h.ctrl().status.held.is_empty(),
        "{:?}",
        h.ctrl().status.held
    );
}

/// `window` promoted alpha 2 into production at `t`: what `baton check` says of the change
/// (window verdict passed, not_before) and what the daemon did (deployed, waiting_until).
fn window_verdicts(window: &str, t: DateTime<Utc>) -> [(bool, Option<DateTime<Utc>>); 2] {
    let gates = format!("      - window: {{{window}}}\n");
    let mut h = Harness::new(&policy(&gates), Duration::from_secs(3600), monday_10h());
    let trusted = h.commit("registry with alpha and beta");
    h.pass();
    h.set_clock(t);
    h.set_stage("alpha", "2", "production");
    h.set_stage("alpha", "1", "archived");
    let head = h.commit("alpha 2 to production");

    let opts = check::CheckOptions {
        path: None,
        now: t,
        github: None,
        rules: None,
        clock: None,
    };
    let oid = |s: &str| git2::Oid::from_str(s).unwrap();
    let report = check::judge(&h.repo, oid(&trusted), oid(&head), &opts).unwrap();
    let tr = report
        .transitions
        .iter()
        .find(|t| t.model == "alpha" && t.version == "2")
        .unwrap();
    let window_passed = tr
        .verdicts
        .iter()
        .find(|v| v.rule == check::Rule::Window)
        .unwrap()
        .passed;
    let by_check = (window_passed, tr.not_before);

    h.pass();
    let deployed = h.running("production", "alpha").as_deref() == Some("2");
    let by_daemon = (deployed, h.view("production", "alpha").waiting_until);
    [by_check, by_daemon]
}

#[test]
fn the_daemon_and_check_agree_on_overnight_windows_with_days_and_from_equal_to() {
    // 2026-11-27 is a Friday; the window belongs to the day it starts (docs/gates.md).
    let at = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
    let next_friday = Utc.with_ymd_and_hms(2026, 12, 4, 22, 0, 0).unwrap();
    let overnight = "days: [fri], from: \"22:00\", to: \"02:00\", tz: UTC";
    let whole_day = "days: [fri], from: \"22:00\", to: \"22:00\", tz: UTC";
    for (window, t, open) in [
        (overnight, at(28, 1, 0), true),   // Saturday 01:00: Friday's window
        (overnight, at(28, 23, 0), false), // Saturday 23:00: closed
        (whole_day, at(28, 21, 59), true), // Saturday 21:59: still Friday's day
        (whole_day, at(28, 22, 0), false), // Saturday 22:00: the day is over
    ] {
        let [by_check, by_daemon] = window_verdicts(window, t);
        let want = if open {
            (true, None)
        } else {
            (false, Some(next_friday))
        };
        assert_eq!(by_check, want, "check: {window} at {t}");
        assert_eq!(by_daemon, want, "daemon: {window} at {t}");
    }
}

#[test]
fn a_failed_switch_is_retried_with_backoff() {
    let interval = Duration::from_secs(10);
    let mut h = Harness::new(&policy(SOAK_1H), interval, monday_10h());
    h.commit("registry with alpha and beta");
    h.pass();
    assert_baseline_runs(&h);

    h.world()
        .fail_switch
        .insert(("staging".into(), "alpha".into()));
    h.set_stage("alpha", "3", "staging");
    h.set_stage("alpha", "2", "archived");
    h.commit("alpha 3 to staging");

    // The switch fails: the pass says so, alpha 2 keeps running, status says why.
    let out = h.pass();
    assert!(out.failed);
    assert_eq!(
        h.world().switches_of("staging", "alpha"),
        2,
        "baseline + 1 attempt"
    );
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("2"));
    let v = h.view("staging", "alpha");
    assert_eq!(v.sync, SyncStatus::OutOfSync, "{v:?}");
    assert_eq!(v.reasons, ["fake: switch of alpha refused"], "{v:?}");
    let first = h.ctrl().state.environments["staging"]["alpha"]
        .failure
        .clone()
        .unwrap();
    assert_eq!(first.attempts, 1);
    assert_eq!(
        first.next_at,
        h.now() + chrono::Duration::from_std(interval).unwrap()
    );
    // Other models are not concerned.
    assert_eq!(h.view("staging", "beta").sync, SyncStatus::Synced);

    // Before the backoff ends (the clock did not move): no new attempt.
    let out = h.pass();
    assert!(!out.failed, "nothing was attempted");
    assert_eq!(h.world().switches_of("staging", "alpha"), 2);
    let v = h.view("staging", "alpha");
    assert_eq!(v.sync, SyncStatus::OutOfSync);
    assert_eq!(v.reasons, ["fake: switch of alpha refused"]);

    h.set_clock(first.next_at - chrono::Duration::milliseconds(1));
    h.pass();
    assert_eq!(h.world().switches_of("staging", "alpha"), 2, "1ms early");

    // When it ends: retried, fails again, and the next wait doubles.
    h.set_clock(first.next_at);
    let out = h.pass();
    assert!(out.failed);
    assert_eq!(h.world().switches_of("staging", "alpha"), 3);
    let second = h.ctrl().state.environments["staging"]["alpha"]
        .failure
        .clone()
        .unwrap();
    assert_eq!(second.attempts, 2);
    assert_eq!(second.next_at, h.now() + chrono::Duration::seconds(20));
    h.advance(chrono::Duration::seconds(19));
    h.pass();
    assert_eq!(
        h.world().switches_of("staging", "alpha"),
        3,
        "within the 20s backoff"
    );

    // The target recovers: the retry after the backoff deploys.
    h.world().fail_switch.clear();
    h.set_clock(second.next_at);
    let out = h.pass();
    assert!(!out.failed);
    assert_eq!(h.world().switches_of("staging", "alpha"), 4);
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("3"));
    let v = h.view("staging", "alpha");
    assert_eq!(v.sync, SyncStatus::Synced, "{v:?}");
    assert!(v.reasons.is_empty());
    assert!(h.ctrl().state.environments["staging"]["alpha"]
        .failure
        .is_none());
}

#[test]
fn a_model_that_requires_another_is_held_with_it() {
    let mut h = Harness::new(&policy(SOAK_1H), Duration::from_secs(30), monday_10h());
    // alpha 4 (development) requires beta 3, which is in development too.
    h.version("alpha", "4", "development", "requires:\n  beta: \"3\"\n");
    h.commit("registry with alpha and beta");
    h.pass();
    assert_baseline_runs(&h);

    // alpha 4 into staging alone: staging would run it without beta 3. Held.
    h.advance(chrono::Duration::minutes(1));
    h.set_stage("alpha", "4", "staging");
    h.set_stage("alpha", "2", "archived");
    let offending = h.commit("alpha 4 to staging");
    let switches = h.switches();
    let out = h.pass();
    assert!(!out.failed, "a hold is not a failure");
    assert_eq!(h.switches(), switches, "nothing switched");
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("2"));
    assert_eq!(h.running("staging", "beta").as_deref(), Some("2"));
    let v = h.view("staging", "alpha");
    assert_eq!(v.sync, SyncStatus::Blocked, "{v:?}");
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("requires") && r.contains("beta")),
        "{v:?}"
    );
    let held = &h.ctrl().status.held;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].model, "alpha");
    assert_eq!(held[0].offending.as_deref(), Some(offending.as_str()));
    assert_eq!(h.view("staging", "beta").sync, SyncStatus::Synced);

    // beta 3 joins staging: alpha goes ahead with it, beta switched first.
    h.advance(chrono::Duration::minutes(1));
    h.set_stage("beta", "3", "staging");
    h.set_stage("beta", "2", "archived");
    h.commit("beta 3 to staging");
    let out = h.pass();
    assert!(!out.failed);
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("4"));
    assert_eq!(h.running("staging", "beta").as_deref(), Some("3"));
    let done: Vec<_> = h.world().switches[switches..].to_vec();
    assert_eq!(
        done,
        [
            ("staging".to_owned(), "beta".to_owned(), "3".to_owned()),
            ("staging".to_owned(), "alpha".to_owned(), "4".to_owned()),
        ],
        "the requirement first"
    );
    assert!(
        h.ctrl().status.held.is_empty(),
        "{:?}",
        h.ctrl().status.held
    );
    assert!(h.ctrl().status.all_synced(), "{:?}", h.ctrl().status);
}

#[test]
fn a_git_read_error_never_undeploys() {
    let mut h = Harness::new(&policy(SOAK_1H), Duration::from_secs(30), monday_10h());
    h.commit("registry with alpha and beta");
    h.pass();
    assert_baseline_runs(&h);

    // A new head whose alpha manifest cannot be read: its blob is missing from the store.
    h.set_stage("alpha", "3", "staging");
    h.set_stage("alpha", "2", "archived");
    let head = h.commit("alpha 3 to staging");
    let blob = {
        let c = h
            .repo
            .find_commit(git2::Oid::from_str(&head).unwrap())
            .unwrap();
        c.tree()
            .unwrap()
            .get_path(Path::new("models/alpha/versions/3.yaml"))
            .unwrap()
            .id()
    };
    let id = blob.to_string();
    let loose = h.repo.path().join("objects").join(&id[..2]).join(&id[2..]);
    let saved = std::fs::read(&loose).unwrap();
    std::fs::remove_file(&loose).unwrap();

    let switches = h.switches();
    for _ in 0..2 {
        let e = h.ctrl().reconcile().unwrap_err();
        assert!(
            matches!(
                &e,
                ControllerError::Git(g) | ControllerError::Repo(RepoError::Git(g))
                    if g.code() == git2::ErrorCode::NotFound
            ),
            "a pass that cannot read the head fails, it does not read it as absent: {e}"
        );
        assert!(h.world().undeploys.is_empty());
        assert_eq!(h.switches(), switches);
        assert_baseline_runs(&h);
    }

    // The object is back: the pass goes ahead and deploys the change.
    std::fs::write(&loose, saved).unwrap();
    let out = h.pass();
    assert!(!out.failed);
    assert!(h.world().undeploys.is_empty());
    assert_eq!(h.running("staging", "alpha").as_deref(), Some("3"));
    assert!(h.ctrl().status.all_synced(), "{:?}", h.ctrl().status);
}
