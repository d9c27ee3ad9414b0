//! The gates engine (docs/gates.md, docs/approvals.md): judge the change base...head, one verdict per gate per
//! transition. Shared by `baton check` (pre-merge) and the controller (what landed).

pub mod approvals;
pub mod change;
pub mod clock;
pub mod gates;
pub mod index;
pub mod publish;
pub mod render;
pub mod report;
pub mod rule;
pub mod snapshot;

pub use report::{CheckReport, TransitionReport, Verdict};
pub use rule::Rule;

use crate::history::{HistoryWalker, StageEvent};
use crate::manifest::Policy;
use crate::registry::files::{artifact_file, ArtifactFile, GitFiles};
use crate::registry::invariants::{artifact_location, ArtifactLocation};
use crate::registry::{invariants, Cache, Registry};
use crate::repo::{join, RepoError};
use approvals::signers::AllowedSigners;
use approvals::Evidence;
use chrono::{DateTime, Utc};
use gates::Facts;
use git2::{Oid, Repository};
use snapshot::{ModelView, Snapshot};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use thiserror::Error;

/// Errors that stop a check from producing a verdict (exit 2 at the CLI).
#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("github: {0}")]
    Github(#[from] approvals::github::GithubError),
    /// `check` reads the merge base and the base branch's history (soak, rollbacks, labels
    /// ever used); a shallow clone has neither in full.
    #[error("the repository is a shallow clone{detail}: `baton check` needs the full history; fetch it with `git fetch --unshallow` (in GitHub Actions: `fetch-depth: 0` in actions/checkout)")]
    Shallow { detail: String },
}

pub use approvals::github::{GithubSource, Pull};

/// Inputs of a check besides the two revisions.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Registry folder (`--path`); discovered at base when `None`.
    pub path: Option<String>,
    /// The clock for `window` and `soak`.
    pub now: DateTime<Utc>,
    pub github: Option<GithubSource>,
    /// The commit whose policy, groups, owners and signers judge the change (the daemon's
    /// policy in force); the base when `None`.
    pub rules: Option<Oid>,
    /// The daemon's acceptance times for `soak`; commit dates when `None` (`check` in CI).
    pub clock: Option<Arc<clock::AcceptedClock>>,
}

/// How deep the rollback rule may look back through tenures whose entering change was itself
/// a rollback; deeper chains are judged as promotions.
const MAX_TENURE_DEPTH: u32 = 8;

/// Judge the change `merge-base(base, head)...head` (a one-shot [`Judge`]).
pub fn judge(
    repo: &Repository,
    base: Oid,
    head: Oid,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    Judge::new().judge(repo, base, head, opts)
}

/// A reusable gates engine: keeps parsed manifests (in the registry [`Cache`], which the daemon
/// shares with its loader), the `requires` index and the history walker's cache between
/// checks, so a daemon re-judging each new head pays only for what changed.
#[derive(Default)]
pub struct Judge {
    cache: Cache,
    history: HistoryWalker,
    /// Per model tree: its versions that carry `requires` (the reverse scan).
    requires: index::RequiresIndex,
    /// Per model tree: its versions whose artifact lives in the registry.
    artifact_refs: index::ArtifactIndex,
    /// sha256 of in-registry artifact blobs, by blob id.
    digests: HashMap<Oid, String>,
    /// Skip the registry-wide scan for versions that require a version leaving its stage.
    skip_reverse_requires: bool,
    /// Whether each judged tenure (entering commit, manifest path) was accepted.
    tenures: HashMap<(Oid, String), bool>,
}

impl Judge {
    pub fn new() -> Self {
        crate::gitopts::init();
        Self::default()
    }

    /// A judge reading model folders through `cache` (the daemon's, shared with its loader).
    pub fn with_cache(cache: Cache) -> Self {
        Judge {
            cache,
            ..Self::new()
        }
    }

    /// Whether to look for versions elsewhere in the registry that require a version leaving
    /// a deployed stage (default on). The scan reads every manifest once per judge (then
    /// caches by model tree); off, `requires` checks only the moving versions' own entries.
    pub fn reverse_requires(mut self, on: bool) -> Self {
        self.skip_reverse_requires = !on;
        self
    }

    /// Manifests parsed by this judge so far, by the gates and the reverse-`requires` scan
    /// (tests and benchmarks).
    pub fn parsed(&self) -> usize {
        self.cache.parsed() + self.requires.parsed
    }

    /// Judge the change `merge-base(base, head)...head`.
    pub fn judge(
        &mut self,
        repo: &Repository,
        base: Oid,
        head: Oid,
        opts: &CheckOptions,
    ) -> Result<CheckReport, CheckError> {
        let report = self.judge_at_depth(repo, base, head, opts, 0);
        // Each judgement is a generation of the cache: what no judgement (or load) used for a
        // few is dropped, unless a registry somebody keeps still holds it.
        let mut objects = self.cache.lock();
        objects.next_generation();
        objects.prune(usize::MAX);
        report
    }

    fn judge_at_depth(
        &mut self,
        repo: &Repository,
        base: Oid,
        head: Oid,
        opts: &CheckOptions,
        depth: u32,
    ) -> Result<CheckReport, CheckError> {
        let merge_base = merge_base(repo, base, head)?;
        let base_commit = repo.find_commit(base)?;
        let root = crate::repo::registry_root(
            repo,
            &base_commit,
            &base.to_string(),
            opts.path.as_deref(),
        )?;
        let mut rules = Snapshot::open(repo, opts.rules.unwrap_or(base), &root, &self.cache)?;
        let mut old = Snapshot::open(repo, merge_base, &root, &self.cache)?;
        let mut new = Snapshot::open(repo, head, &root, &self.cache)?;
        let mut report = CheckReport {
            base: base.to_string(),
            merge_base: merge_base.to_string(),
            head: head.to_string(),
            registry: root.clone(),
            transitions: Vec::new(),
            change: Vec::new(),
            models: BTreeMap::new(),
            errors: Vec::new(),
        };
        let policy_path = join(&root, "baton.yaml");
        let policy: Arc<Policy> = match &rules.policy {
            Some(Ok(p)) => p.clone(),
            other => {
                let why = match other {
                    Some(Err(e)) => {
                        report.errors.push(e.clone().into_diagnostic(&policy_path));
                        format!("baton.yaml at base does not parse: {e}")
                    }
                    _ => "no baton.yaml at base".to_owned(),
                };
                let mut v = gates::verdict(Rule::Schema, false, why);
                v.file = Some(policy_path);
                report.change.push(v);
                return Ok(report);
            }
        };

        // Signers and the change.
        let signers_rel = policy
            .signers
            .as_deref()
            .and_then(|s| invariants::safe_relative(s).ok());
        let signers = match &signers_rel {
            Some(rel) => match rules.blob(rel) {
                Some(b) => Some(AllowedSigners::parse(&String::from_utf8_lossy(
                    repo.find_blob(b)?.content(),
                ))),
                None => None,
            },
            None => None,
        };
        let mut change = change::diff(repo, &mut old, &mut new, signers_rel.as_deref())?;
        // Files the change altered that are the in-registry artifacts of versions in a
        // deployed stage: those versions are judged too, even with unchanged manifests.
        if !change.altered_files.is_empty() {
            let paths: BTreeSet<String> = change.altered_files.iter().cloned().collect();
            let refs: Vec<(String, String)> = self
                .artifact_refs
                .referencing(repo, &new, &paths)?
                .into_iter()
                .filter(|(_, r)| policy.is_deployed(&r.stage))
                .map(|(m, r)| (m, r.version))
                .collect();
            change::add_artifact_changes(repo, &mut old, &mut new, &mut change, &refs)?;
        }
        for d in &change.layout {
            report.errors.push(d.clone());
            let mut v = gates::verdict(Rule::Schema, false, d.message.clone());
            v.file = Some(d.file.clone());
            report.change.push(v);
        }

        // Models the gates look at: changed ones (head), what they require, owners at base.
        let mut head_models: BTreeMap<String, Arc<ModelView>> = BTreeMap::new();
        for (name, (_, h)) in &change.models {
            if let Some(h) = h {
                head_models.insert(name.clone(), h.clone());
            }
        }
        self.load_heads(
            repo,
            &mut new,
            gates::requires::partners(&change.models),
            &mut head_models,
        )?;
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in change.models.keys() {
            let o = rules
                .model(repo, name)?
                .map(|m| m.owners().to_vec())
                .unwrap_or_default();
            owners.insert(name.clone(), o);
        }

        // Reverse `requires`: only when some environment stops running a version.
        let stopped = gates::requires::stopped(&policy, &change.models);
        let dependents = if !stopped.is_empty() && !self.skip_reverse_requires {
            self.requires.dependents(repo, &new, &stopped)?
        } else {
            Vec::new()
        };
        self.load_heads(
            repo,
            &mut new,
            dependents.iter().map(|d| d.model.clone()).collect(),
            &mut head_models,
        )?;

        // In-registry artifacts of the versions in a deployed stage after the change.
        let mut artifacts: BTreeMap<String, ArtifactFile> = BTreeMap::new();
        if let Some(tree) = &new.tree {
            for m in change
                .transitions
                .iter()
                .filter_map(|t| t.new.as_ref()?.manifest())
                .filter(|m| policy.is_deployed(&m.stage))
            {
                if let Ok(ArtifactLocation::Registry(rel)) = artifact_location(&m.artifact.uri) {
                    for rel in index::artifact_paths(&rel, &m.artifact) {
                        let path = join(&root, &rel);
                        if let std::collections::btree_map::Entry::Vacant(e) = artifacts.entry(path)
                        {
                            e.insert(artifact_file(repo, tree, &rel, &mut self.digests)?);
                        }
                    }
                }
            }
        }
        if self.digests.len() > 100_000 {
            self.digests.clear();
        }

        // History of moving versions on the base branch (soak, rollback, labels ever used).
        let mut history: HashMap<String, Vec<StageEvent>> = HashMap::new();
        let mut labels: HashMap<String, BTreeSet<String>> = HashMap::new();
        // Only where it is used: a new version (labels), or a move into a non-terminal stage
        // (soak, rollback). Moves to a terminal stage and same-stage edits need none.
        let needs_history = |t: &change::Transition| {
            t.is_new()
                || (t.moves()
                    && t.to()
                        .and_then(|to| policy.stage(to))
                        .is_some_and(|s| !s.terminal))
        };
        for t in change
            .transitions
            .iter()
            .filter(|t| t.new.is_some() && needs_history(t))
        {
            if !history.contains_key(&t.model) {
                let (mut h, l) = self
                    .history
                    .model_history_and_labels(repo, base, &root, &t.model, None)?;
                if let Some(clock) = &opts.clock {
                    for e in h.iter_mut() {
                        if let Some(to) = e.to.clone() {
                            e.time = clock.entered_at(
                                repo,
                                e.commit,
                                e.time,
                                (&e.model, &e.version, &to),
                                opts.now,
                            );
                        }
                    }
                }
                history.insert(t.model.clone(), h);
                labels.insert(t.model.clone(), l);
            }
        }

        // Rollback candidates: the newest earlier tenure of the same build in the target
        // stage whose entering change passed that stage's gates.
        let mut tenures: HashMap<(String, String), gates::rollback::Held> = HashMap::new();
        for t in &change.transitions {
            let (Some(to), Some(new_m)) = (t.to(), t.new.as_ref().and_then(|n| n.manifest()))
            else {
                continue;
            };
            if !t.moves() || t.from() == Some(to) || policy.stage(to).is_none_or(|s| s.terminal) {
                continue;
            }
            let events: Vec<StageEvent> = history
                .get(&t.model)
                .map(|h| {
                    h.iter()
                        .filter(|e| e.version == t.version)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for (i, e) in events.iter().enumerate() {
                if e.to.as_deref() != Some(to) {
                    continue;
                }
                if !same_build(repo, e.commit, &e.path, &new_m.artifact.sha256)? {
                    continue;
                }
                // The tenure lasted until the next (newer) event of this version.
                let until = if i == 0 {
                    Tenure::Current(base)
                } else {
                    Tenure::EndedBy(events[i - 1].commit)
                };
                if self.tenure_accepted(repo, e, until, &root, opts, depth)? {
                    tenures.insert(
                        (t.model.clone(), t.version.clone()),
                        gates::rollback::Held {
                            commit: e.commit,
                            time: e.time,
                        },
                    );
                    break;
                }
            }
        }

        // Approvals.
        let mut policy_paths: Vec<String> = Vec::new();
        if change.policy_changed {
            policy_paths.push(policy_path.clone());
        }
        if change.signers_changed {
            if let Some(rel) = &signers_rel {
                policy_paths.push(join(&root, rel));
            }
        }
        let model_paths: BTreeMap<&String, String> = change
            .model_manifests
            .iter()
            .map(|m| (m, join(&root, &format!("models/{m}/model.yaml"))))
            .collect();
        let mut paths: Vec<String> = change.transitions.iter().map(|t| t.path.clone()).collect();
        paths.extend(policy_paths.iter().cloned());
        paths.extend(model_paths.values().cloned());
        let mut evidence =
            approvals::collect(repo, merge_base, head, signers.as_ref(), &paths, opts.now)?;
        if let Some(s) = &signers {
            for (line, why) in &s.problems {
                evidence
                    .notes
                    .push(format!("allowed signers line {line}: {why}"));
            }
        } else {
            evidence
                .notes
                .push("no allowed-signers file at base".into());
        }
        if let Some(gh) = &opts.github {
            add_github(&mut evidence, gh, &repo.find_commit(head)?)?;
        }

        // Judge every transition.
        let empty_hist: Vec<StageEvent> = Vec::new();
        let no_labels = BTreeSet::new();
        for t in &change.transitions {
            let (om, hm) = change.models.get(&t.model).cloned().unwrap_or((None, None));
            let hist: Vec<StageEvent> = history
                .get(&t.model)
                .map(|h| {
                    h.iter()
                        .filter(|e| e.version == t.version)
                        .cloned()
                        .collect()
                })
                .unwrap_or_else(|| empty_hist.clone());
            let facts = Facts {
                policy: &policy,
                owners: owners.get(&t.model).map_or(&[], |o| o.as_slice()),
                old_model: om.as_deref(),
                head_model: hm.as_deref(),
                head_models: &head_models,
                dependents: &dependents,
                history: &hist,
                labels_ever: labels.get(&t.model).unwrap_or(&no_labels),
                accepted_tenure: tenures.get(&(t.model.clone(), t.version.clone())),
                daemon_clock: opts.clock.is_some(),
                now: opts.now,
                evidence: &evidence,
                root: &root,
                changed: &change.models,
                artifacts: &artifacts,
            };
            let tr = gates::judge_transition(t, &facts);
            for v in tr
                .verdicts
                .iter()
                .filter(|v| v.rule == Rule::Schema && !v.passed)
            {
                // A parse error keeps serde's column; other schema problems have a line.
                let d = match t.new.as_ref().map(|n| &n.parsed) {
                    Some(Err(e)) => e.clone().into_diagnostic(&t.path),
                    _ => crate::diag::Diagnostic::new(&t.path, v.reason.clone()).at(v.line, None),
                };
                report.errors.push(d);
            }
            report.transitions.push(tr);
        }

        // Change-wide: the policy at head, and approval of policy changes.
        if change.policy_changed {
            self.head_policy(repo, &new, &root, &policy_path, &mut report)?;
            report.change.push(gates::policy_change::judge(
                &policy,
                &evidence,
                &policy_paths,
                "baton.yaml",
            ));
        } else if change.signers_changed {
            report.change.push(gates::policy_change::judge(
                &policy,
                &evidence,
                &policy_paths,
                "the allowed-signers file",
            ));
        }

        // Model-wide: model.yaml changes and layout problems of changed models.
        for (name, (_, h)) in &change.models {
            let mut vs = Vec::new();
            if let Some(h) = h {
                for d in &h.layout {
                    report.errors.push(d.clone());
                    let mut v = gates::verdict(Rule::Schema, false, d.message.clone());
                    v.file = Some(d.file.clone());
                    vs.push(v);
                }
                if let Some(Err(e)) = &h.manifest {
                    let file = join(&root, &format!("models/{name}/model.yaml"));
                    report.errors.push(e.clone().into_diagnostic(&file));
                    let mut v = gates::verdict(Rule::Schema, false, e.message.clone());
                    v.file = Some(file);
                    v.line = e.line;
                    vs.push(v);
                }
                if h.manifest.is_none() && !h.versions.is_empty() {
                    let file = join(&root, &format!("models/{name}/model.yaml"));
                    let mut v = gates::verdict(
                        Rule::Schema,
                        false,
                        "missing: every model folder needs a model.yaml",
                    );
                    v.file = Some(file);
                    vs.push(v);
                }
            }
            if let Some(p) = model_paths.get(name) {
                vs.push(gates::policy_change::judge(
                    &policy,
                    &evidence,
                    std::slice::from_ref(p),
                    &format!("models/{name}/model.yaml"),
                ));
            }
            if !vs.is_empty() {
                report.models.insert(name.clone(), vs);
            }
        }
        report.errors.sort();
        report.errors.dedup();
        Ok(report)
    }

    /// Whether the tenure that `entered` began passed its stage's gates (time gates aside),
    /// judged as its own change `first parent...commit` under that change's base policy and
    /// approvals; approvals that landed later in the same tenure (a rebase merge puts them
    /// after the promotion) count through `first parent...(parent of until)`. A tenure begun
    /// at the registry's first commit counts as accepted.
    fn tenure_accepted(
        &mut self,
        repo: &Repository,
        entered: &StageEvent,
        until: Tenure,
        root: &str,
        opts: &CheckOptions,
        depth: u32,
    ) -> Result<bool, CheckError> {
        // The manifest's path names the registry folder, the model and the version.
        let key = (entered.commit, entered.path.clone());
        if let Some(hit) = self.tenures.get(&key) {
            return Ok(*hit);
        }
        if depth >= MAX_TENURE_DEPTH {
            return Ok(false);
        }
        let commit = repo.find_commit(entered.commit)?;
        let Ok(parent) = commit.parent_id(0) else {
            self.tenures.insert(key, true);
            return Ok(true);
        };
        let parent_commit = repo.find_commit(parent)?;
        let policy_at_parent = parent_commit
            .tree()?
            .get_path(std::path::Path::new(&join(root, "baton.yaml")))
            .is_ok();
        if !policy_at_parent {
            self.tenures.insert(key, true);
            return Ok(true);
        }
        let sub = CheckOptions {
            path: Some(root.to_owned()),
            now: opts.now,
            github: None,
            rules: None,
            clock: None,
        };
        // The last commit of the tenure: through `base` while it lasts, else the first parent
        // of the commit that ended it.
        let last = match until {
            Tenure::Current(base) => base,
            Tenure::EndedBy(end) => repo.find_commit(end)?.parent_id(0).unwrap_or(end),
        };
        let mut heads = vec![entered.commit];
        if last != entered.commit && repo.graph_descendant_of(last, entered.commit)? {
            heads.push(last);
        }
        let mut accepted = false;
        for head in heads {
            let report = self.judge_at_depth(repo, parent, head, &sub, depth + 1)?;
            let stage = entered.to.as_deref();
            let passed = report.change.iter().all(|v| v.passed)
                && report
                    .models
                    .get(&entered.model)
                    .is_none_or(|vs| vs.iter().all(|v| v.passed))
                && report.transitions.iter().any(|t| {
                    t.model == entered.model
                        && t.version == entered.version
                        && t.to.as_deref() == stage
                        && t.verdicts.iter().all(|v| v.passed || v.rule.is_time())
                });
            if passed {
                accepted = true;
                break;
            }
        }
        self.tenures.insert(key, accepted);
        Ok(accepted)
    }

    /// The head's baton.yaml must parse and validate; otherwise nothing new may deploy.
    fn head_policy(
        &mut self,
        repo: &Repository,
        new: &Snapshot,
        root: &str,
        policy_path: &str,
        report: &mut CheckReport,
    ) -> Result<(), CheckError> {
        let problems = match &new.policy {
            None => vec![crate::diag::Diagnostic::new(
                policy_path,
                "baton.yaml is missing at head",
            )],
            Some(Err(e)) => vec![e.clone().into_diagnostic(policy_path)],
            Some(Ok(p)) => {
                let reg = Registry {
                    commit: new.commit,
                    root: root.to_owned(),
                    tree: new.tree.as_ref().map(|t| t.id()).unwrap_or(Oid::zero()),
                    policy: Some(p.clone()),
                    policy_blob: new.policy_blob,
                    models: BTreeMap::new(),
                    diagnostics: Vec::new(),
                };
                let files = GitFiles::new(repo, new.commit)?;
                invariants::validate(&reg, &files)
                    .into_iter()
                    .filter(|d| d.file == policy_path)
                    .collect()
            }
        };
        let v = match problems.first() {
            None => {
                let mut v = gates::verdict(Rule::Schema, true, "baton.yaml at head is valid");
                v.file = Some(policy_path.to_owned());
                v
            }
            Some(d) => {
                let mut v = gates::verdict(
                    Rule::Schema,
                    false,
                    format!("baton.yaml at head is invalid: {}", d.message),
                );
                v.file = Some(policy_path.to_owned());
                v.line = d.line;
                v
            }
        };
        report.errors.extend(problems);
        report.change.push(v);
        Ok(())
    }

    /// Load the head folders of `names` not loaded yet into `into`.
    fn load_heads(
        &mut self,
        repo: &Repository,
        new: &mut Snapshot,
        names: BTreeSet<String>,
        into: &mut BTreeMap<String, Arc<ModelView>>,
    ) -> Result<(), CheckError> {
        for name in names {
            if let std::collections::btree_map::Entry::Vacant(e) = into.entry(name) {
                if let Some(m) = new.model(repo, e.key())? {
                    e.insert(m);
                }
            }
        }
        Ok(())
    }
}

/// `merge-base(base, head)`, refusing a shallow clone (whose history is cut off, so the merge
/// base may be missing and the base branch's history is incomplete).
fn merge_base(repo: &Repository, base: Oid, head: Oid) -> Result<Oid, CheckError> {
    if repo.is_shallow() {
        let detail = match repo.merge_base(base, head) {
            Ok(_) => String::new(),
            Err(_) => " and the merge base of base and head is not in it".to_owned(),
        };
        return Err(CheckError::Shallow { detail });
    }
    Ok(repo.merge_base(base, head)?)
}

/// How far an earlier tenure reached on the base branch.
#[derive(Debug, Clone, Copy)]
enum Tenure {
    /// Still in the stage at this commit (the base).
    Current(Oid),
    /// Ended by this commit (the version's next stage change).
    EndedBy(Oid),
}

/// Whether the manifest at `path` in `commit` names the build `sha256` (its artifact digest).
fn same_build(
    repo: &Repository,
    commit: Oid,
    path: &str,
    sha256: &str,
) -> Result<bool, CheckError> {
    let tree = repo.find_commit(commit)?.tree()?;
    let Ok(entry) = tree.get_path(std::path::Path::new(path)) else {
        return Ok(false);
    };
    if entry.kind() != Some(git2::ObjectType::Blob) {
        return Ok(false);
    }
    let blob = repo.find_blob(entry.id())?;
    Ok(crate::manifest::parse_version(blob.content())
        .is_ok_and(|m| m.artifact.sha256.eq_ignore_ascii_case(sha256)))
}

/// Add GitHub reviews to the evidence: those that count for the judged `head`, the pull
/// request's author as an author of the change.
fn add_github(ev: &mut Evidence, gh: &GithubSource, head: &git2::Commit) -> Result<(), CheckError> {
    let judged = approvals::github::JudgedHead {
        sha: head.id().to_string(),
        merge_parents: if head.parent_count() > 1 {
            head.parent_ids().map(|p| p.to_string()).collect()
        } else {
            Vec::new()
        },
    };
    let forge = approvals::github::gather(gh, &judged)?;
    if let Some(author) = forge.author {
        ev.change_authors
            .insert(format!("github:{}", author.to_lowercase()));
    }
    ev.approvals.extend(forge.approvals);
    ev.notes.extend(forge.notes);
    Ok(())
}
