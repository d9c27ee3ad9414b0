//! Pure view-models of the dashboard's pages, built from the published status, the registry
//! at the accepted head and the audit trail; filtering and paging happen here, server side.

use super::trail::TrailRow;
use crate::check::gates::soak::human;
use crate::check::gates::window;
use crate::daemon::events::{Event, EventKind, Severity};
use crate::daemon::state::Entered;
use crate::daemon::verify::VerificationView;
use crate::daemon::view::{HeldView, ModelView, StatusView, SyncStatus, VersionView};
use crate::manifest::policy::{Gate, Policy};
use crate::manifest::VersionManifest;
use crate::registry::Registry;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Models per page of the pipeline.
pub const PAGE_SIZE: usize = 50;
/// Events shown by the events page (the newest).
pub const EVENTS_SHOWN: usize = 200;

/// The sync words a filter may name.
pub const SYNC_WORDS: [&str; 6] = [
    "synced",
    "out-of-sync",
    "degraded",
    "blocked",
    "waiting",
    "diverged",
];

/// `?q=&sync=&env=&page=` of the pipeline page (all optional; bad values are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PipelineQuery {
    /// A substring of the model name (case-insensitive).
    pub q: Option<String>,
    /// Only models with this sync state in some shown environment.
    pub sync: Option<String>,
    /// Only this environment's column (or this stage's).
    pub env: Option<String>,
    /// 1-based page.
    pub page: Option<String>,
}

impl PipelineQuery {
    fn q(&self) -> Option<String> {
        self.q
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
    }
    fn sync(&self) -> Option<&str> {
        self.sync.as_deref().filter(|s| SYNC_WORDS.contains(s))
    }
    fn env(&self) -> Option<&str> {
        self.env.as_deref().filter(|s| !s.is_empty())
    }
    fn page(&self) -> usize {
        self.page
            .as_deref()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(1)
            .max(1)
    }

    /// The query string for `page` (other filters kept), `?` included.
    pub fn with_page(&self, page: usize) -> String {
        let mut parts = Vec::new();
        if let Some(q) = self.q.as_deref().filter(|s| !s.trim().is_empty()) {
            parts.push(format!("q={}", encode(q.trim())));
        }
        if let Some(s) = self.sync() {
            parts.push(format!("sync={s}"));
        }
        if let Some(e) = self.env() {
            parts.push(format!("env={}", encode(e)));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            "?".into()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// Percent-encode a query value (unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Author and subject of a commit, looked up in git.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitMeta {
    pub author: String,
    pub subject: String,
}

/// What the pipeline page is built from.
pub struct PipelineInput<'a> {
    pub status: &'a StatusView,
    /// The registry at the accepted head (None before the first pass, or when unreadable).
    pub registry: Option<&'a Registry>,
    /// The daemon's soak clock: when it accepted each version into each stage.
    pub entered: &'a [Entered],
    /// Author and subject of the offending commits of holds.
    pub commits: &'a HashMap<String, CommitMeta>,
    pub now: DateTime<Utc>,
}

/// A column of the pipeline: an environment (with the stage it deploys) or a stage no
/// environment deploys (candidates on the promotion path).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub stage: String,
    pub environment: bool,
    /// Where it deploys (`local /abs/path`).
    pub target: String,
    pub canary: bool,
    /// The stage's deploy window(s) now, in words.
    pub window: Vec<String>,
}

/// One version in a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Chip {
    pub version: String,
    /// Percent of traffic.
    pub traffic: u32,
    pub primary: bool,
}

impl Chip {
    /// `3` or `3 (10%)`.
    pub fn label(&self) -> String {
        if self.traffic == 100 || self.traffic == 0 {
            self.version.clone()
        } else {
            format!("{} ({}%)", self.version, self.traffic)
        }
    }
}

fn chips(vs: &[VersionView]) -> Vec<Chip> {
    let primary = vs.iter().map(|v| v.traffic).max().unwrap_or(0);
    let mut seen = false;
    vs.iter()
        .map(|v| {
            let p = !seen && v.traffic == primary;
            seen |= p;
            Chip {
                version: v.version.clone(),
                traffic: v.traffic,
                primary: p,
            }
        })
        .collect()
}

/// One (model, column) cell.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    pub column: String,
    pub environment: bool,
    /// What runs (environments) or what sits in the stage (stage columns).
    pub versions: Vec<Chip>,
    /// What the branch says, when it differs from what runs.
    pub desired: Vec<Chip>,
    /// Stage columns: versions left out of `versions`.
    pub more: usize,
    /// `synced`, `blocked`... (empty for stage columns and absent models).
    pub sync: String,
    pub health: String,
    /// `in staging for 3h 20m` (daemon's clock).
    pub since: Option<String>,
    /// `soak for production: 20h 40m left` / `... done`.
    pub soak: Option<String>,
    pub waiting_until: Option<String>,
    pub reasons: Vec<String>,
    pub deployed_commit: Option<String>,
    /// Commands that move it on (read-only: the dashboard only shows them).
    pub actions: Vec<String>,
    /// The newest live verification here (docs/verification.md), when the stage verifies.
    pub verification: Option<VerificationLine>,
}

/// One line on a cell for a live verification: the phase (a CSS class too) and what it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationLine {
    /// `running`, `passed`, `failed`, `inconclusive`, `contained`, `rolled-back`.
    pub phase: &'static str,
    /// `verifying 4 (canary): 2 good, 1 failed; error-rate=0.2 (max 0.01); revert 1a2b3c4d5e`.
    pub text: String,
}

impl VerificationLine {
    /// The line for `v` (pure).
    pub fn of(v: &VerificationView) -> Self {
        use crate::daemon::verify::analysis::Outcome;
        let count = |o: Outcome| v.measurements.iter().filter(|m| m.outcome == o).count();
        let mut text = format!(
            "verification of {} ({}): {}, {} good, {} failed, {} errors",
            v.version,
            v.role.as_str(),
            v.phase.as_str(),
            count(Outcome::Good),
            count(Outcome::Failed),
            count(Outcome::Error),
        );
        if let Some(r) = &v.reason {
            text.push_str(&format!("; {r}"));
        } else if let Some(m) = v.measurements.last() {
            text.push_str(&format!("; latest {}", m.summary()));
        }
        if let Some(c) = &v.revert {
            text.push_str(&format!("; revert {}", short(c)));
        }
        VerificationLine {
            phase: v.phase.as_str(),
            text,
        }
    }
}

impl Cell {
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.desired.is_empty() && self.sync.is_empty()
    }
}

/// A hold, with its located reasons and the offending commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// `blocked` or `waiting`.
    pub kind: String,
    pub reasons: Vec<String>,
    pub offending: Option<String>,
    pub offending_short: Option<String>,
    pub author: Option<String>,
    pub subject: Option<String>,
    pub baseline_short: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub model: String,
    pub cells: Vec<Cell>,
    pub hold: Option<Hold>,
}

/// The pipeline page.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelinePage {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// Models known in all.
    pub total: usize,
    /// Models that pass the filters.
    pub matched: usize,
    pub page: usize,
    pub pages: usize,
    /// 1-based index of the first row shown (0 when none).
    pub first: usize,
    pub last: usize,
    pub q: String,
    pub sync: String,
    pub env: String,
    /// Every column name, for the environment filter.
    pub env_options: Vec<String>,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// This page's query string (for the live fragment).
    pub query: String,
    pub head: Option<String>,
    pub branch: String,
    pub updated: Option<String>,
    pub ready: bool,
    pub errors: Vec<String>,
    pub held_count: usize,
}

pub fn short(c: &str) -> String {
    c.chars().take(10).collect()
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Stages of `policy` in order, each with the environments deploying it.
fn columns(status: &StatusView, policy: Option<&Policy>, now: DateTime<Utc>) -> Vec<Column> {
    let env_col =
        |e: &crate::daemon::view::EnvironmentView, canary: bool, window: Vec<String>| Column {
            name: e.name.clone(),
            stage: e.stage.clone(),
            environment: true,
            target: e.target.clone(),
            canary,
            window,
        };
    let mut out = Vec::new();
    let mut placed = BTreeSet::new();
    if let Some(p) = policy {
        for st in &p.stages {
            let window = windows(p, &st.name, now);
            let envs: Vec<_> = status
                .environments
                .iter()
                .filter(|e| e.stage == st.name)
                .collect();
            if envs.is_empty() {
                let deployed = p.environments.values().any(|e| e.stage == st.name);
                if !st.terminal && !deployed {
                    out.push(Column {
                        name: st.name.clone(),
                        stage: st.name.clone(),
                        environment: false,
                        target: String::new(),
                        canary: st.canary,
                        window: window.clone(),
                    });
                }
            }
            for e in envs {
                placed.insert(e.name.clone());
                out.push(env_col(e, st.canary, window.clone()));
            }
        }
    }
    for e in &status.environments {
        if !placed.contains(&e.name) {
            out.push(env_col(e, false, Vec::new()));
        }
    }
    out
}

/// The stage's window gates now, in words.
fn windows(p: &Policy, stage: &str, now: DateTime<Utc>) -> Vec<String> {
    let Some(st) = p.stages.iter().find(|s| s.name == stage) else {
        return Vec::new();
    };
    st.gates
        .iter()
        .filter_map(|g| match g {
            Gate::Window(w) => Some(w),
            _ => None,
        })
        .map(|w| {
            let s = window::evaluate(w, now);
            let fmt = |d: DateTime<Utc>| {
                d.with_timezone(&w.tz.0)
                    .format("%a %Y-%m-%d %H:%M %Z")
                    .to_string()
            };
            match (s.open, s.opens_at, s.closes_at) {
                (true, _, Some(c)) => format!("window open until {}", fmt(c)),
                (true, _, None) => "window open".to_owned(),
                (false, Some(o), _) => format!("window closed until {}", fmt(o)),
                (false, None, _) => "window closed".to_owned(),
            }
        })
        .collect()
}

/// When the daemon accepted `version` of `model` into `stage` (the newest entry).
fn entered_at(
    entered: &[Entered],
    model: &str,
    version: &str,
    stage: &str,
) -> Option<DateTime<Utc>> {
    entered
        .iter()
        .filter(|e| e.model == model && e.version == version && e.stage == stage)
        .map(|e| e.at)
        .max()
}

/// `in staging for 3h` and, for every later stage with a soak gate on `stage`, what is left.
fn since_and_soak(
    policy: Option<&Policy>,
    stage: &str,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Option<String>, Option<String>) {
    let Some(at) = at else {
        return (None, None);
    };
    let sat = now - at;
    let since = Some(format!("in {stage} for {}", human(sat)));
    let soak = policy.and_then(|p| {
        let parts: Vec<String> = p
            .stages
            .iter()
            .flat_map(|s| {
                s.gates.iter().filter_map(move |g| match g {
                    Gate::Soak(k) if k.stage == stage => Some((s.name.as_str(), k)),
                    _ => None,
                })
            })
            .map(|(next, k)| {
                let need = chrono::Duration::from_std(k.duration.0).unwrap_or_default();
                if sat >= need {
                    format!("soak for {next}: done")
                } else {
                    format!("soak for {next}: {} left", human(need - sat))
                }
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    });
    (since, soak)
}

/// The next non-terminal stage after `stage`.
fn next_stage<'p>(p: &'p Policy, stage: &str) -> Option<&'p str> {
    let i = p.stages.iter().position(|s| s.name == stage)?;
    p.stages[i + 1..]
        .iter()
        .find(|s| !s.terminal)
        .map(|s| s.name.as_str())
}

fn cell_actions(
    policy: Option<&Policy>,
    model: &str,
    env: Option<&str>,
    stage: &str,
    primary: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(p), Some(v)) = (policy, primary) {
        if let Some(next) = next_stage(p, stage) {
            out.push(format!("baton promote {model} {v} --to {next} --commit"));
        }
    }
    if let Some(env) = env {
        out.push(format!("baton rollback {model} --env {env} --commit"));
    }
    out
}

/// A model's hold, for display.
pub fn hold_view(h: &HeldView, commits: &HashMap<String, CommitMeta>, now: DateTime<Utc>) -> Hold {
    let meta = h.offending.as_ref().and_then(|c| commits.get(c));
    let mut actions = Vec::new();
    if let Some(c) = &h.offending {
        if h.kind == crate::daemon::gate::HoldKind::Blocked {
            actions.push(format!("git revert {}", short(c)));
        }
    }
    Hold {
        kind: h.kind.as_str().into(),
        reasons: h.reasons.clone(),
        offending_short: h.offending.as_deref().map(short),
        offending: h.offending.clone(),
        author: h.author.clone().or_else(|| meta.map(|m| m.author.clone())),
        subject: meta.map(|m| m.subject.clone()),
        baseline_short: short(&h.baseline),
        since: h.since.map(|s| format!("held for {}", human(now - s))),
        until: h.until.map(when),
        actions,
    }
}

/// The versions of `model` in `stage` at the accepted head, primary first.
fn in_stage<'r>(reg: &'r Registry, model: &str, stage: &str) -> Vec<&'r VersionManifest> {
    let Some(m) = reg.model(model) else {
        return Vec::new();
    };
    let mut vs: Vec<&VersionManifest> = m
        .parsed()
        .map(|v| v.manifest.as_ref())
        .filter(|v| v.stage == stage)
        .collect();
    // Newest first (the natural order of labels, reversed), the primary before canaries.
    vs.reverse();
    vs.sort_by_key(|v| v.traffic.is_some());
    vs
}

/// Stage columns show this many versions, then `+N more`.
const STAGE_CHIPS: usize = 3;

fn env_cell(
    inp: &PipelineInput,
    col: &Column,
    model: &str,
    mv: Option<&ModelView>,
    held: bool,
) -> Cell {
    let policy = inp.registry.and_then(|r| r.policy.as_deref());
    let Some(mv) = mv else {
        return Cell {
            column: col.name.clone(),
            environment: true,
            ..Default::default()
        };
    };
    let versions = chips(&mv.deployed);
    let desired = if mv.desired == mv.deployed {
        Vec::new()
    } else {
        chips(&mv.desired)
    };
    let primary = versions
        .iter()
        .find(|c| c.primary)
        .map(|c| c.version.clone());
    let at = primary
        .as_deref()
        .and_then(|v| entered_at(inp.entered, model, v, &col.stage));
    let (since, soak) = since_and_soak(policy, &col.stage, at, inp.now);
    // A hold's reasons are shown once, with the hold; the cell keeps its own (health, drift).
    let reasons = if held && matches!(mv.sync, SyncStatus::Blocked | SyncStatus::Waiting) {
        Vec::new()
    } else {
        mv.reasons.clone()
    };
    Cell {
        column: col.name.clone(),
        environment: true,
        actions: cell_actions(
            policy,
            model,
            (!versions.is_empty()).then_some(col.name.as_str()),
            &col.stage,
            primary.as_deref(),
        ),
        versions,
        desired,
        more: 0,
        sync: mv.sync.as_str().to_owned(),
        health: mv.health.as_str().into(),
        since,
        soak,
        waiting_until: mv.waiting_until.map(when),
        reasons,
        deployed_commit: mv.deployed_commit.as_deref().map(short),
        verification: mv.verification.as_ref().map(VerificationLine::of),
    }
}

fn stage_cell(inp: &PipelineInput, col: &Column, model: &str) -> Cell {
    let policy = inp.registry.and_then(|r| r.policy.as_deref());
    let vs = inp
        .registry
        .map(|r| in_stage(r, model, &col.stage))
        .unwrap_or_default();
    let newest = vs.first().map(|v| v.version.clone());
    let at = newest
        .as_deref()
        .and_then(|v| entered_at(inp.entered, model, v, &col.stage));
    let (since, soak) = since_and_soak(policy, &col.stage, at, inp.now);
    Cell {
        column: col.name.clone(),
        environment: false,
        versions: vs
            .iter()
            .take(STAGE_CHIPS)
            .map(|v| Chip {
                version: v.version.clone(),
                traffic: v.traffic.unwrap_or(100),
                primary: v.traffic.is_none(),
            })
            .collect(),
        more: vs.len().saturating_sub(STAGE_CHIPS),
        since,
        soak,
        actions: cell_actions(policy, model, None, &col.stage, newest.as_deref()),
        ..Default::default()
    }
}

/// The pipeline page for `query`: models matching the filters, one page of them.
pub fn pipeline(inp: &PipelineInput, query: &PipelineQuery) -> PipelinePage {
    let policy = inp.registry.and_then(|r| r.policy.as_deref());
    let all_columns = columns(inp.status, policy, inp.now);
    let env_options: Vec<String> = all_columns.iter().map(|c| c.name.clone()).collect();
    let env_filter = query.env().filter(|e| env_options.iter().any(|o| o == e));
    let columns: Vec<Column> = all_columns
        .into_iter()
        .filter(|c| env_filter.is_none_or(|e| c.name == e))
        .collect();

    // model -> its view in each environment, by environment name.
    let mut by_model: BTreeMap<&str, HashMap<&str, &ModelView>> = BTreeMap::new();
    for e in &inp.status.environments {
        for m in &e.models {
            by_model
                .entry(m.model.as_str())
                .or_default()
                .insert(e.name.as_str(), m);
        }
    }
    if let Some(r) = inp.registry {
        for name in r.models.keys() {
            by_model.entry(name.as_str()).or_default();
        }
    }
    for h in &inp.status.held {
        by_model.entry(h.model.as_str()).or_default();
    }
    let total = by_model.len();
    let q = query.q();
    let sync = query.sync();
    let shown_envs: Vec<&str> = columns
        .iter()
        .filter(|c| c.environment)
        .map(|c| c.name.as_str())
        .collect();
    let matched: Vec<(&str, &HashMap<&str, &ModelView>)> = by_model
        .iter()
        .filter(|(m, _)| q.as_deref().is_none_or(|q| m.contains(q)))
        .filter(|(_, envs)| {
            sync.is_none_or(|s| {
                shown_envs
                    .iter()
                    .any(|e| envs.get(e).is_some_and(|v| v.sync.as_str() == s))
            })
        })
        .map(|(m, e)| (*m, e))
        .collect();
    let pages = matched.len().div_ceil(PAGE_SIZE).max(1);
    let page = query.page().min(pages);
    let start = (page - 1) * PAGE_SIZE;
    let held: HashMap<&str, &HeldView> = inp
        .status
        .held
        .iter()
        .map(|h| (h.model.as_str(), h))
        .collect();
    let rows: Vec<Row> = matched
        .iter()
        .skip(start)
        .take(PAGE_SIZE)
        .map(|(model, envs)| {
            let hold = held.get(model).copied();
            Row {
                model: (*model).to_owned(),
                cells: columns
                    .iter()
                    .map(|c| {
                        if c.environment {
                            env_cell(
                                inp,
                                c,
                                model,
                                envs.get(c.name.as_str()).copied(),
                                hold.is_some(),
                            )
                        } else {
                            stage_cell(inp, c, model)
                        }
                    })
                    .collect(),
                hold: hold.map(|h| hold_view(h, inp.commits, inp.now)),
            }
        })
        .collect();
    let first = if rows.is_empty() { 0 } else { start + 1 };
    PipelinePage {
        last: start + rows.len(),
        first,
        rows,
        columns,
        total,
        matched: matched.len(),
        page,
        pages,
        q: query.q.clone().unwrap_or_default().trim().to_owned(),
        sync: sync.unwrap_or_default().to_owned(),
        env: env_filter.unwrap_or_default().to_owned(),
        env_options,
        prev: (page > 1).then(|| query.with_page(page - 1)),
        next: (page < pages).then(|| query.with_page(page + 1)),
        query: query.with_page(page),
        head: inp.status.head.as_deref().map(short),
        branch: inp.status.branch.clone(),
        updated: inp.status.updated.map(when),
        ready: inp.status.ready,
        errors: inp.status.errors.clone(),
        held_count: inp.status.held.len(),
    }
}

// ---------------------------------------------------------------- model page

/// What the model page is built from.
pub struct ModelInput<'a> {
    pub model: &'a str,
    pub status: &'a StatusView,
    pub registry: Option<&'a Registry>,
    pub entered: &'a [Entered],
    pub commits: &'a HashMap<String, CommitMeta>,
    /// The audit trail, newest first.
    pub trail: Vec<TrailRow>,
    /// The newest events about this model, newest first.
    pub events: Vec<EventRow>,
    pub now: DateTime<Utc>,
}

/// One metric of a version, against the primary of each deployed stage.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub name: String,
    pub value: String,
    /// `production 1: 0.93 (+0.011)`, one per deployed stage with a primary.
    pub against: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub model: String,
    pub version: String,
    /// Where that version is (for `required by`: its stage).
    pub note: String,
}

/// One version of the model, with its manifest at the accepted head.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionBlock {
    pub version: String,
    pub stage: String,
    /// `primary`, `10% canary`, or empty outside canary stages.
    pub traffic: String,
    pub uri: String,
    pub sha256: String,
    pub size: String,
    pub format: String,
    pub files: usize,
    pub created: String,
    pub metrics: Vec<MetricRow>,
    /// `name: passed` / `name: FAILED`, with the report path.
    pub evidence: Vec<(String, bool, String)>,
    pub requires: Vec<Link>,
    pub required_by: Vec<Link>,
    pub lineage: Vec<(String, String)>,
    pub since: Option<String>,
    pub soak: Option<String>,
    pub actions: Vec<String>,
}

impl VersionBlock {
    pub fn sha256_short(&self) -> String {
        self.sha256.chars().take(12).collect()
    }
}

/// One stage along the promotion path and the versions in it (a terminal stage's are listed
/// compactly).
#[derive(Debug, Clone, PartialEq)]
pub struct StageBlock {
    pub name: String,
    pub canary: bool,
    pub terminal: bool,
    /// Environments deploying it.
    pub environments: Vec<String>,
    pub versions: Vec<VersionBlock>,
}

/// What one environment runs for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvRun {
    pub environment: String,
    pub stage: String,
    pub cell: Cell,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelPage {
    pub model: String,
    pub description: String,
    pub owners: Vec<String>,
    pub stages: Vec<StageBlock>,
    pub runs: Vec<EnvRun>,
    pub hold: Option<Hold>,
    pub trail: Vec<TrailRow>,
    pub events: Vec<EventRow>,
    /// The commit whose manifests are shown (a held model's baseline).
    pub head: Option<String>,
    pub versions: usize,
}

fn fmt_num(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_owned()
    }
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The model page, or `None` for a model neither the status nor the registry knows.
pub fn model_page(inp: ModelInput) -> Option<ModelPage> {
    let policy = inp.registry.and_then(|r| r.policy.as_deref());
    let entry = inp.registry.and_then(|r| r.model(inp.model));
    let known = entry.is_some()
        || inp
            .status
            .environments
            .iter()
            .any(|e| e.models.iter().any(|m| m.model == inp.model))
        || inp.status.held.iter().any(|h| h.model == inp.model)
        || !inp.trail.is_empty();
    if !known {
        return None;
    }
    let deployed_stages: BTreeSet<&str> = inp
        .status
        .environments
        .iter()
        .map(|e| e.stage.as_str())
        .collect();
    // The primary of each deployed stage (the version without traffic, else the first).
    let primaries: Vec<(&str, &VersionManifest)> = match inp.registry {
        Some(r) => policy
            .map(|p| {
                p.stages
                    .iter()
                    .filter(|s| deployed_stages.contains(s.name.as_str()))
                    .filter_map(|s| {
                        in_stage(r, inp.model, &s.name)
                            .first()
                            .map(|v| (s.name.as_str(), *v))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    // Who requires which version of this model.
    let mut required_by: HashMap<&str, Vec<Link>> = HashMap::new();
    if let Some(r) = inp.registry {
        for v in r.versions() {
            if let Some(want) = v.manifest.requires.get(inp.model) {
                required_by.entry(want.as_str()).or_default().push(Link {
                    model: v.manifest.model.clone(),
                    version: v.manifest.version.clone(),
                    note: v.manifest.stage.clone(),
                });
            }
        }
    }
    let block = |v: &VersionManifest| -> VersionBlock {
        let stage = policy.and_then(|p| p.stages.iter().find(|s| s.name == v.stage));
        let canary = stage.is_some_and(|s| s.canary);
        let at = entered_at(inp.entered, inp.model, &v.version, &v.stage);
        let (since, soak) = since_and_soak(policy, &v.stage, at, inp.now);
        let metrics = v
            .metrics
            .iter()
            .map(|(name, x)| MetricRow {
                name: name.clone(),
                value: fmt_num(*x),
                against: primaries
                    .iter()
                    .filter(|(_, p)| p.version != v.version)
                    .filter_map(|(s, p)| {
                        let y = p.metrics.get(name)?;
                        let d = x - y;
                        let sign = if d >= 0.0 { "+" } else { "" };
                        Some(format!(
                            "{s} primary {}: {} ({sign}{})",
                            p.version,
                            fmt_num(*y),
                            fmt_num(d)
                        ))
                    })
                    .collect(),
            })
            .collect();
        let mut actions = Vec::new();
        if let Some(p) = policy {
            if let Some(next) = next_stage(p, &v.stage) {
                actions.push(format!(
                    "baton promote {} {} --to {next} --commit",
                    inp.model, v.version
                ));
                let gated = p
                    .stages
                    .iter()
                    .find(|s| s.name == next)
                    .is_some_and(|s| s.gates.iter().any(|g| matches!(g, Gate::Approvals(_))));
                if gated {
                    actions.push(format!(
                        "baton approve {} {} --stage {next}",
                        inp.model, v.version
                    ));
                }
            }
        }
        VersionBlock {
            version: v.version.clone(),
            stage: v.stage.clone(),
            traffic: match (canary, v.traffic) {
                (true, Some(t)) => format!("{t}% canary"),
                (true, None) => "primary".into(),
                _ => String::new(),
            },
            uri: v.artifact.uri.clone(),
            sha256: v.artifact.sha256.clone(),
            size: v.artifact.size.map(human_size).unwrap_or_default(),
            format: v.artifact.format.clone().unwrap_or_default(),
            files: v.artifact.files.as_ref().map(Vec::len).unwrap_or(0),
            created: when(v.created),
            metrics,
            evidence: v
                .evidence
                .iter()
                .map(|(k, e)| (k.clone(), e.passed, e.report.clone().unwrap_or_default()))
                .collect(),
            requires: v
                .requires
                .iter()
                .map(|(m, want)| Link {
                    model: m.clone(),
                    version: want.clone(),
                    note: inp
                        .registry
                        .and_then(|r| r.version(m, want))
                        .map(|x| x.manifest.stage.clone())
                        .unwrap_or_else(|| "missing".into()),
                })
                .collect(),
            required_by: required_by
                .get(v.version.as_str())
                .cloned()
                .unwrap_or_default(),
            lineage: v
                .lineage
                .iter()
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect(),
            since,
            soak,
            actions,
        }
    };
    let mut stages = Vec::new();
    if let (Some(p), Some(r)) = (policy, inp.registry) {
        for s in &p.stages {
            stages.push(StageBlock {
                name: s.name.clone(),
                canary: s.canary,
                terminal: s.terminal,
                environments: inp
                    .status
                    .environments
                    .iter()
                    .filter(|e| e.stage == s.name)
                    .map(|e| e.name.clone())
                    .collect(),
                versions: in_stage(r, inp.model, &s.name)
                    .into_iter()
                    .map(block)
                    .collect(),
            });
        }
    }
    let held = inp.status.held.iter().find(|h| h.model == inp.model);
    let pin = PipelineInput {
        status: inp.status,
        registry: inp.registry,
        entered: inp.entered,
        commits: inp.commits,
        now: inp.now,
    };
    let runs = inp
        .status
        .environments
        .iter()
        .map(|e| {
            let col = Column {
                name: e.name.clone(),
                stage: e.stage.clone(),
                environment: true,
                target: e.target.clone(),
                canary: false,
                window: Vec::new(),
            };
            let mv = e.models.iter().find(|m| m.model == inp.model);
            EnvRun {
                environment: e.name.clone(),
                stage: e.stage.clone(),
                cell: env_cell(&pin, &col, inp.model, mv, held.is_some()),
            }
        })
        .collect();
    Some(ModelPage {
        model: inp.model.to_owned(),
        description: entry
            .and_then(|e| e.model_manifest())
            .map(|m| m.description.clone())
            .unwrap_or_default(),
        owners: entry
            .and_then(|e| e.model_manifest())
            .map(|m| m.owners.clone())
            .unwrap_or_default(),
        versions: entry.map(|e| e.parsed().count()).unwrap_or(0),
        stages,
        runs,
        hold: held.map(|h| hold_view(h, inp.commits, inp.now)),
        trail: inp.trail,
        events: inp.events,
        head: inp
            .registry
            .map(|r| short(&r.commit.to_string()))
            .or_else(|| inp.status.head.as_deref().map(short)),
    })
}

// ---------------------------------------------------------------- events page

/// `?model=&environment=&kind=` of the events page and the stream.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventsQuery {
    pub model: Option<String>,
    pub environment: Option<String>,
    pub kind: Option<String>,
}

impl EventsQuery {
    fn get(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    pub fn keeps(&self, e: &Event) -> bool {
        Self::get(&self.model).is_none_or(|m| e.model.as_deref() == Some(m))
            && Self::get(&self.environment).is_none_or(|m| e.environment.as_deref() == Some(m))
            && Self::get(&self.kind).is_none_or(|k| e.kind.as_str() == k)
    }
}

/// One event, for display.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub time: String,
    pub kind: String,
    pub warning: bool,
    pub environment: String,
    pub model: String,
    pub version: String,
    pub commit: String,
    pub commit_short: String,
    pub author: String,
    pub message: String,
    pub reasons: Vec<String>,
}

pub fn event_row(e: &Event) -> EventRow {
    EventRow {
        time: e.time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        kind: e.kind.as_str().to_owned(),
        warning: e.kind.severity() == Severity::Warning,
        environment: e.environment.clone().unwrap_or_default(),
        model: e.model.clone().unwrap_or_default(),
        version: e.version.clone().unwrap_or_default(),
        commit_short: e.commit.as_deref().map(short).unwrap_or_default(),
        commit: e.commit.clone().unwrap_or_default(),
        author: e.author.clone().unwrap_or_default(),
        message: e.message.clone(),
        reasons: e.reasons.clone(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    /// Newest first.
    pub rows: Vec<EventRow>,
    pub model: String,
    pub environment: String,
    pub kind: String,
    pub kinds: Vec<&'static str>,
    /// The newest event's time (RFC 3339): the stream replays what came after it.
    pub since: String,
}

/// The events page: the newest [`EVENTS_SHOWN`] events of `ring` (oldest first) that pass.
pub fn events_page<'a>(
    ring: impl DoubleEndedIterator<Item = &'a Event>,
    q: &EventsQuery,
) -> EventsPage {
    let kept: Vec<&Event> = ring
        .rev()
        .filter(|e| q.keeps(e))
        .take(EVENTS_SHOWN)
        .collect();
    EventsPage {
        since: kept
            .first()
            .map(|e| e.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default(),
        rows: kept.into_iter().map(event_row).collect(),
        model: EventsQuery::get(&q.model).unwrap_or_default().to_owned(),
        environment: EventsQuery::get(&q.environment)
            .unwrap_or_default()
            .to_owned(),
        kind: EventsQuery::get(&q.kind).unwrap_or_default().to_owned(),
        kinds: EventKind::ALL.iter().map(|k| k.as_str()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::view::EnvironmentView;

    fn mv(model: &str, v: &str, sync: SyncStatus) -> ModelView {
        let vv = vec![VersionView {
            version: v.into(),
            traffic: 100,
            sha256: "x".into(),
        }];
        ModelView {
            model: model.into(),
            desired: vv.clone(),
            deployed: vv,
            sync,
            health: crate::daemon::view::Health::Healthy,
            reasons: vec![],
            waiting_until: None,
            deployed_commit: Some("0123456789abcdef".into()),
            deployed_at: None,
            verification: None,
        }
    }

    fn status(n: usize) -> StatusView {
        let models: Vec<ModelView> = (0..n)
            .map(|i| {
                let s = if i % 10 == 3 {
                    SyncStatus::Blocked
                } else {
                    SyncStatus::Synced
                };
                mv(&format!("m{i:04}"), "1", s)
            })
            .collect();
        StatusView {
            branch: "main".into(),
            environments: vec![
                EnvironmentView {
                    name: "staging".into(),
                    stage: "staging".into(),
                    target: "local /s".into(),
                    models: models.clone(),
                },
                EnvironmentView {
                    name: "production".into(),
                    stage: "production".into(),
                    target: "local /p".into(),
                    models: models
                        .iter()
                        .map(|m| ModelView {
                            sync: SyncStatus::Synced,
                            ..m.clone()
                        })
                        .collect(),
                },
            ],
            ..Default::default()
        }
    }

    fn page(st: &StatusView, q: PipelineQuery) -> PipelinePage {
        let commits = HashMap::new();
        pipeline(
            &PipelineInput {
                status: st,
                registry: None,
                entered: &[],
                commits: &commits,
                now: Utc::now(),
            },
            &q,
        )
    }

    #[test]
    fn a_cell_shows_the_live_verification_of_what_runs_there() {
        use crate::daemon::verify::analysis::{Measurement, MetricReading};
        use crate::daemon::verify::{Phase, Role};
        let mut st = status(2);
        let reading = |value: f64, failure: Option<&str>| MetricReading {
            name: "error-rate".into(),
            value: Some(value),
            primary: None,
            error: None,
            failure: failure.map(str::to_owned),
        };
        st.environments[1].models[0].verification = Some(VerificationView {
            version: "1".into(),
            role: Role::Canary,
            phase: Phase::RolledBack,
            started: Utc::now(),
            measurements: vec![
                Measurement::new(Utc::now(), vec![reading(0.001, None)]),
                Measurement::new(Utc::now(), vec![reading(0.2, Some("0.2 > max 0.01"))]),
            ],
            reason: None,
            revert: Some("1a2b3c4d5e6f7a8b9c0d".into()),
            rollback_note: None,
        });
        let p = page(&st, PipelineQuery::default());
        let cell = |model: &str, column: &str| {
            p.rows
                .iter()
                .find(|r| r.model == model)
                .and_then(|r| r.cells.iter().find(|c| c.column == column))
                .cloned()
                .unwrap()
        };
        let line = cell("m0000", "production").verification.expect("a line");
        assert_eq!(line.phase, "rolled-back");
        assert!(
            line.text.starts_with("verification of 1 (canary): rolled-back, 1 good, 1 failed, 0 errors; latest error-rate: 0.2 > max 0.01; revert "),
            "{}",
            line.text
        );
        assert_eq!(cell("m0000", "staging").verification, None);
        assert_eq!(cell("m0001", "production").verification, None);
        let html = crate::daemon::dashboard::render::pipeline(&p).unwrap();
        assert!(
            html.contains("class=\"verification verify-rolled-back\""),
            "the cell renders it"
        );
    }

    #[test]
    fn pages_hold_fifty_models_and_filters_narrow_them() {
        let st = status(120);
        let p = page(&st, PipelineQuery::default());
        assert_eq!(
            (p.total, p.matched, p.pages, p.rows.len()),
            (120, 120, 3, 50)
        );
        assert_eq!(p.rows[0].model, "m0000");
        assert_eq!(p.next.as_deref(), Some("?page=2"));
        let p3 = page(
            &st,
            PipelineQuery {
                page: Some("3".into()),
                ..Default::default()
            },
        );
        assert_eq!((p3.rows.len(), p3.first, p3.last), (20, 101, 120));
        assert_eq!(p3.prev.as_deref(), Some("?page=2"));
        // Past the end: the last page; junk: the first.
        let far = page(
            &st,
            PipelineQuery {
                page: Some("99".into()),
                ..Default::default()
            },
        );
        assert_eq!(far.page, 3);
        let junk = page(
            &st,
            PipelineQuery {
                page: Some("x".into()),
                ..Default::default()
            },
        );
        assert_eq!(junk.page, 1);

        let q = page(
            &st,
            PipelineQuery {
                q: Some(" M001".into()),
                ..Default::default()
            },
        );
        assert_eq!(q.matched, 10, "case-insensitive substring m001x");
        let blocked = page(
            &st,
            PipelineQuery {
                sync: Some("blocked".into()),
                ..Default::default()
            },
        );
        assert_eq!(blocked.matched, 12);
        assert!(blocked.rows.iter().all(|r| r.model.ends_with('3')));
        // Blocked only in staging: filtering to production leaves none.
        let prod = page(
            &st,
            PipelineQuery {
                sync: Some("blocked".into()),
                env: Some("production".into()),
                ..Default::default()
            },
        );
        assert_eq!(prod.matched, 0);
        assert_eq!(prod.columns.len(), 1);
        assert_eq!(prod.first, 0);
        assert_eq!(
            PipelineQuery {
                q: Some("a b&c".into()),
                sync: Some("blocked".into()),
                env: Some("prod".into()),
                page: None,
            }
            .with_page(2),
            "?q=a%20b%26c&sync=blocked&env=prod&page=2"
        );
    }

    #[test]
    fn a_hold_shows_its_offending_commit_author_and_a_revert() {
        let mut st = status(2);
        st.held.push(HeldView {
            model: "m0001".into(),
            kind: crate::daemon::gate::HoldKind::Blocked,
            baseline: "b".repeat(40),
            reasons: vec!["models/m0001/versions/2.yaml: approvals: 0 of 1".into()],
            until: None,
            offending: Some("c".repeat(40)),
            author: None,
            since: Some(Utc::now() - chrono::Duration::hours(2)),
        });
        let mut commits = HashMap::new();
        commits.insert(
            "c".repeat(40),
            CommitMeta {
                author: "Mallory <m@acme.com>".into(),
                subject: "promote".into(),
            },
        );
        let p = pipeline(
            &PipelineInput {
                status: &st,
                registry: None,
                entered: &[],
                commits: &commits,
                now: Utc::now(),
            },
            &PipelineQuery::default(),
        );
        let h = p.rows[1].hold.as_ref().unwrap();
        assert_eq!(h.author.as_deref(), Some("Mallory <m@acme.com>"));
        assert_eq!(h.offending_short.as_deref(), Some("cccccccccc"));
        assert_eq!(h.actions, vec!["git revert cccccccccc".to_owned()]);
        assert_eq!(h.since.as_deref(), Some("held for 2h"));
        assert!(p.rows[0].hold.is_none());
    }

    #[test]
    fn soak_counts_down_from_the_daemons_acceptance() {
        let p: Policy = crate::manifest::parse_policy(
            b"version: 1\nstages:\n  - name: staging\n  - name: production\n    gates:\n      - soak: {stage: staging, for: 24h}\nenvironments: {}\n",
        )
        .unwrap();
        let now = Utc::now();
        let (since, soak) = since_and_soak(
            Some(&p),
            "staging",
            Some(now - chrono::Duration::hours(4)),
            now,
        );
        assert_eq!(since.as_deref(), Some("in staging for 4h"));
        assert_eq!(soak.as_deref(), Some("soak for production: 20h left"));
        let (_, done) = since_and_soak(
            Some(&p),
            "staging",
            Some(now - chrono::Duration::hours(25)),
            now,
        );
        assert_eq!(done.as_deref(), Some("soak for production: done"));
        assert_eq!(since_and_soak(Some(&p), "staging", None, now), (None, None));
    }
}
