//! Admission: which landed commits the daemon accepts, model by model. Each first-parent commit
//! after the last accepted head is judged in order by the check engine, under the policy in force.
//!
//! docs/daemon.md ("Re-check what landed"): a commit is judged as the change first parent...commit
//! (what was reviewed, approvals from the branch it merged); a model whose step fails is held at
//! its last accepted state and judged from there at every later step and pass, so a revert or
//! approvals landed afterwards unblock it. The policy (`baton.yaml` and the signers file) has a
//! baseline of its own: the last accepted policy commit; a pending policy change is re-judged
//! from it at every pass. A commit the daemon did not judge never becomes the policy in force.

use super::controller::ControllerError;
use super::gate::{self, HoldKind, ModelVerdict};
use super::state::{Entered, Hold, PersistedState};
use crate::check::clock::AcceptedClock;
use crate::check::{CheckOptions, CheckReport, GithubSource, Judge};
use crate::manifest::Policy;
use crate::repo::join;
use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// Longest run of new first-parent commits judged one by one; a longer jump (a huge push, or
/// a daemon down for months) is judged as one change from the accepted head.
const MAX_STEPS: usize = 2_000;

/// How the branch head relates to the accepted head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ancestry {
    /// The head descends from the accepted head: the new first-parent commits, oldest first
    /// (empty when the head did not move).
    Descends(Vec<Oid>),
    /// A force-push moved the branch to a commit that does not descend from the accepted head.
    Diverged,
}

/// The first-parent commits from `accepted` (exclusive) to `head` (inclusive), or
/// [`Ancestry::Diverged`].
pub fn ancestry(repo: &Repository, accepted: Oid, head: Oid) -> Result<Ancestry, git2::Error> {
    if accepted == head {
        return Ok(Ancestry::Descends(Vec::new()));
    }
    if !repo.graph_descendant_of(head, accepted)? {
        return Ok(Ancestry::Diverged);
    }
    let mut chain = Vec::new();
    let mut cur = repo.find_commit(head)?;
    loop {
        if cur.id() == accepted {
            chain.reverse();
            return Ok(Ancestry::Descends(chain));
        }
        if chain.len() >= MAX_STEPS {
            break;
        }
        chain.push(cur.id());
        match cur.parent(0) {
            Ok(p) => cur = p,
            Err(_) => break,
        }
    }
    // The accepted head is not on the first-parent chain (it came in through a merge's second
    // parent): judge the whole jump as one change.
    Ok(Ancestry::Descends(vec![head]))
}

/// Everything admission reads besides the persisted state.
pub struct Context<'a> {
    pub repo: &'a Repository,
    /// Registry folder.
    pub root: &'a str,
    pub now: DateTime<Utc>,
    /// Forge reviews (`serve --github`).
    pub github: Option<GithubSource>,
}

/// What admission decided in one pass.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The head judged up to (the new accepted head).
    pub head: Oid,
    /// The policy in force after this pass.
    pub policy_commit: Oid,
    pub held: BTreeMap<String, Hold>,
    /// Stage entries accepted in this pass (the daemon's soak clock).
    pub entered: Vec<Entered>,
    /// Why a pending change of the policy is not in force (empty when none is pending).
    pub policy_pending: Vec<String>,
}

/// The blobs of `baton.yaml` and the signers file at `commit` (the policy's identity).
fn policy_files(
    repo: &Repository,
    commit: Oid,
    root: &str,
    signers: Option<&str>,
) -> Result<(Option<Oid>, Option<Oid>), git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    let blob = |rel: &str| {
        tree.get_path(Path::new(&join(root, rel)))
            .ok()
            .map(|e| (e.id(), e.filemode()))
    };
    let policy = blob("baton.yaml").map(|b| b.0);
    let signers = signers.and_then(blob).map(|b| b.0);
    Ok((policy, signers))
}

/// Models a report says something about (a transition, or a model-wide verdict).
fn models_in(report: &CheckReport) -> BTreeSet<String> {
    report
        .transitions
        .iter()
        .map(|t| t.model.clone())
        .chain(report.models.keys().cloned())
        .collect()
}

fn short(o: &Oid) -> String {
    o.to_string()[..10].to_owned()
}

/// `Name <email>` of a commit's author, for blocked reasons.
fn author_of(repo: &Repository, c: Oid) -> Option<String> {
    let commit = repo.find_commit(c).ok()?;
    let a = commit.author();
    Some(format!(
        "{} <{}>",
        a.name().unwrap_or("?"),
        a.email().unwrap_or("?")
    ))
}

/// Judge every commit after the accepted head up to `head` (which must descend from it; see
/// [`ancestry`]), step by step, and return the new holds and policy in force. With no new
/// commit, held models and a pending policy change are judged again at `head`.
/// Where admission starts from: the accepted head, the policy in force, the models held by
/// their gates, and the soak clock.
#[derive(Debug, Clone)]
pub struct Baselines {
    pub accepted: Oid,
    pub policy_commit: Oid,
    pub held: BTreeMap<String, Hold>,
    pub clock: AcceptedClock,
}

pub fn admit(
    judge: &mut Judge,
    cx: &Context,
    from: Baselines,
    policy: &Policy,
    steps: Vec<Oid>,
    head: Oid,
) -> Result<Outcome, ControllerError> {
    let accepted = from.accepted;
    let mut policy_commit = from.policy_commit;
    let signers = policy.signers.clone();
    let mut held = from.held;
    let mut entered = Vec::new();
    let mut policy_pending = Vec::new();
    let clock = Arc::new(from.clock);
    let steps = if steps.is_empty() { vec![head] } else { steps };
    let mut prev = accepted;
    for c in steps {
        let rules = policy_commit;
        let opts = CheckOptions {
            path: Some(cx.root.to_owned()),
            now: cx.now,
            github: cx.github.clone(),
            rules: Some(rules),
            clock: Some(clock.clone()),
        };

        // The policy: judged from the policy in force whenever it differs there.
        let at_c = policy_files(cx.repo, c, cx.root, signers.as_deref())?;
        let policy_changed_here = at_c != policy_files(cx.repo, prev, cx.root, signers.as_deref())?;
        let mut policy_block: Option<Vec<String>> = None;
        policy_pending.clear();
        if at_c != policy_files(cx.repo, rules, cx.root, signers.as_deref())? {
            let failing = match judge_step(judge, cx.repo, rules, c, &opts)? {
                Ok(j) => j
                    .report
                    .change
                    .iter()
                    .filter(|v| !v.passed)
                    .map(|v| format!("{}: {}", v.rule, v.reason))
                    .collect(),
                Err(why) => vec![why],
            };
            if failing.is_empty() {
                policy_commit = c;
            } else {
                policy_pending = failing.clone();
                policy_block = Some(failing);
            }
        }

        // Models not held: the step's own change prev...c.
        let mut changed_here = BTreeSet::new();
        let mut just_held = BTreeSet::new();
        if prev != c {
            match judge_step(judge, cx.repo, prev, c, &opts)? {
                Ok(Judged { report, forge }) => {
                    changed_here = models_in(&report);
                    let free: Vec<String> = changed_here
                        .iter()
                        .filter(|m| !held.contains_key(*m))
                        .cloned()
                        .collect();
                    for m in &free {
                        let mut v = gate::classify(&report, m, Some(policy), cx.now, false);
                        if policy_changed_here {
                            if let Some(why) = &policy_block {
                                v = v.and_blocked(why.iter().map(|w| format!("policy: {w}")));
                            }
                        }
                        let v = v.with_note(forge.clone());
                        match v {
                            ModelVerdict::Pass => entered.extend(entries(&report, m, cx.now)),
                            ModelVerdict::Hold {
                                kind,
                                reasons,
                                until,
                            } => {
                                let h = new_hold(cx.repo, prev, c, kind, reasons, until, cx.now);
                                held.insert(m.clone(), h);
                                just_held.insert(m.clone());
                            }
                        }
                    }
                }
                Err(why) => {
                    // No verdict: hold every model present on either side.
                    let mut names = model_names(cx.repo, prev, cx.root)?;
                    names.extend(model_names(cx.repo, c, cx.root)?);
                    for m in names {
                        if let std::collections::btree_map::Entry::Vacant(e) = held.entry(m) {
                            just_held.insert(e.key().clone());
                            e.insert(new_hold(
                                cx.repo,
                                prev,
                                c,
                                HoldKind::Blocked,
                                vec![why.clone()],
                                None,
                                cx.now,
                            ));
                        }
                    }
                }
            }
        }

        // Held models: judged from their own baseline to c.
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (m, h) in &held {
            if h.baseline != c.to_string() && !just_held.contains(m) {
                groups
                    .entry(h.baseline.clone())
                    .or_default()
                    .push(m.clone());
            }
        }
        // A held change is judged under the policy in force now (an approved policy change
        // that just landed applies to changes that wait).
        let held_opts = CheckOptions {
            rules: Some(policy_commit),
            ..opts.clone()
        };
        for (base, models) in groups {
            let b = Oid::from_str(&base)?;
            let judged = judge_step(judge, cx.repo, b, c, &held_opts)?;
            let (report, forge) = match judged {
                Ok(j) => (j.report, j.forge),
                Err(why) => {
                    for m in models {
                        if let Some(h) = held.get_mut(&m) {
                            h.reasons = vec![why.clone()];
                            h.kind = HoldKind::Blocked;
                        }
                    }
                    continue;
                }
            };
            for m in models {
                let mut v = gate::classify(&report, &m, Some(policy), cx.now, false);
                if policy_changed_here && changed_here.contains(&m) {
                    if let Some(why) = &policy_block {
                        v = v.and_blocked(why.iter().map(|w| format!("policy: {w}")));
                    }
                }
                let v = v.with_note(forge.clone());
                match v {
                    ModelVerdict::Pass => {
                        held.remove(&m);
                        entered.extend(entries(&report, &m, cx.now));
                    }
                    ModelVerdict::Hold {
                        kind,
                        reasons,
                        until,
                    } => {
                        if let Some(h) = held.get_mut(&m) {
                            if changed_here.contains(&m) {
                                h.offending = Some(c.to_string());
                                h.author = author_of(cx.repo, c);
                            }
                            h.kind = kind;
                            h.reasons = reasons;
                            h.until = until;
                        }
                    }
                }
            }
        }
        prev = c;
    }
    Ok(Outcome {
        head,
        policy_commit,
        held,
        entered,
        policy_pending,
    })
}

/// A step's report, and why forge reviews were left out of it (the forge did not answer).
struct Judged {
    report: CheckReport,
    forge: Option<String>,
}

/// Judge `base...c`. When the forge (GitHub) fails, judge again without its reviews: changes
/// that need no approval still go ahead, the others stay held, saying why, and are judged
/// again at the next pass. Git read errors fail the pass; other engine errors are a reason.
fn judge_step(
    judge: &mut Judge,
    repo: &Repository,
    base: Oid,
    c: Oid,
    opts: &CheckOptions,
) -> Result<Result<Judged, String>, ControllerError> {
    let failed = |e: crate::check::CheckError| {
        format!(
            "check: could not judge {}...{}: {e}",
            short(&base),
            short(&c)
        )
    };
    match judge.judge(repo, base, c, opts) {
        Ok(report) => Ok(Ok(Judged {
            report,
            forge: None,
        })),
        Err(crate::check::CheckError::Git(e)) => Err(e.into()),
        Err(crate::check::CheckError::Github(e)) => {
            let without = CheckOptions {
                github: None,
                ..opts.clone()
            };
            match judge.judge(repo, base, c, &without) {
                Ok(report) => Ok(Ok(Judged {
                    report,
                    forge: Some(format!(
                        "GitHub reviews unavailable ({e}); judged without them"
                    )),
                })),
                Err(crate::check::CheckError::Git(e)) => Err(e.into()),
                Err(e) => Ok(Err(failed(e))),
            }
        }
        Err(e) => Ok(Err(failed(e))),
    }
}

/// The model folder names under `models/` at `commit` (none when the folder is absent).
fn model_names(repo: &Repository, commit: Oid, root: &str) -> Result<Vec<String>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    // No `models/` folder (or a file by that name) is a value: no models. A failed read is an
    // error, never "no models" (which would hold nothing).
    let e = match tree.get_path(Path::new(&join(root, "models"))) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if e.kind() != Some(git2::ObjectType::Tree) {
        return Ok(Vec::new());
    }
    let models = repo.find_tree(e.id())?;
    Ok(models
        .iter()
        .filter_map(|e| e.name().map(str::to_owned))
        .collect())
}

/// A new hold at `baseline`, naming the offending commit and its author.
fn new_hold(
    repo: &Repository,
    baseline: Oid,
    offending: Oid,
    kind: HoldKind,
    reasons: Vec<String>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Hold {
    Hold {
        baseline: baseline.to_string(),
        kind,
        reasons,
        until,
        since: now,
        offending: Some(offending.to_string()),
        author: author_of(repo, offending),
        requires: false,
    }
}

/// The stage entries of model `m` a passing report accepts now.
fn entries(report: &CheckReport, m: &str, now: DateTime<Utc>) -> Vec<Entered> {
    report
        .transitions
        .iter()
        .filter(|t| t.model == m)
        .filter_map(|t| {
            Some(Entered {
                model: t.model.clone(),
                version: t.version.clone(),
                stage: t.to.clone()?,
                at: now,
            })
        })
        .collect()
}

/// The soak clock of `state` plus entries accepted earlier in this pass.
pub fn clock_of(state: &PersistedState, extra: &[Entered]) -> AcceptedClock {
    let mut c = AcceptedClock {
        trusted: Oid::from_str(&state.trusted).ok(),
        entered: BTreeMap::new(),
    };
    for e in state.entered.iter().chain(extra) {
        c.entered
            .insert((e.model.clone(), e.version.clone(), e.stage.clone()), e.at);
    }
    c
}
