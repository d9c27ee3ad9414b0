//! The model page's audit trail: each landed stage transition (`baton history`) with its
//! approvers and what became of it — deployed where, blocked, rolled back — from the daemon's records.

use super::view::short;
use crate::audit::LandedApproval;
use crate::daemon::events::{Event, EventKind};
use crate::daemon::view::{HeldView, StatusView};
use crate::history::StageEvent;
use std::collections::HashMap;

/// What became of one transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `deployed`, `blocked`, `rolled-back`, `pending`, `superseded` or `no-environment`.
    pub word: &'static str,
    pub detail: String,
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailRow {
    pub date: String,
    pub commit: String,
    pub commit_short: String,
    pub version: String,
    pub from: String,
    pub to: String,
    pub author: String,
    pub approvers: Vec<String>,
    pub subject: String,
    pub outcomes: Vec<Outcome>,
}

/// What the trail is judged from.
pub struct TrailInput<'a> {
    pub model: &'a str,
    /// Newest first, as [`crate::history::HistoryWalker::model_history`] returns them.
    pub transitions: &'a [StageEvent],
    /// The approvals of each transition (same order).
    pub approvals: &'a [Vec<LandedApproval>],
    pub status: &'a StatusView,
    /// The daemon's events about this model (any order).
    pub events: &'a [Event],
    /// Reverted commit -> the commit that reverted it (`Baton-Rollback-Of:` or `This
    /// reverts commit`), on the branch's first-parent history.
    pub reverted_by: &'a HashMap<String, String>,
}

/// The trail, newest first. `descends(a, b)` says whether commit `a` is `b` or a descendant
/// of it on the branch.
pub fn trail(inp: &TrailInput, descends: &mut dyn FnMut(&str, &str) -> bool) -> Vec<TrailRow> {
    let held: Option<&HeldView> = inp.status.held.iter().find(|h| h.model == inp.model);
    let accepted = inp.status.head.as_deref();
    let mut rows = Vec::with_capacity(inp.transitions.len());
    for (i, t) in inp.transitions.iter().enumerate() {
        let commit = t.commit.to_string();
        // The next (newer) transition of the same version: deploys after it are not this one's.
        let newer = inp.transitions[..i]
            .iter()
            .rev()
            .find(|x| x.version == t.version)
            .map(|x| x.commit.to_string());
        let mut outcomes = Vec::new();
        if let Some(by) = inp.reverted_by.get(&commit) {
            outcomes.push(Outcome {
                word: "rolled-back",
                detail: format!("reverted by {}", short(by)),
            });
        }
        let is_offending = held.is_some_and(|h| h.offending.as_deref() == Some(commit.as_str()));
        if is_offending {
            let h = held.expect("checked");
            outcomes.push(Outcome {
                word: if h.kind == crate::daemon::gate::HoldKind::Waiting {
                    "pending"
                } else {
                    "blocked"
                },
                detail: h.reasons.join("; "),
            });
        }
        let envs: Vec<&str> = match &t.to {
            Some(to) => inp
                .status
                .environments
                .iter()
                .filter(|e| &e.stage == to)
                .map(|e| e.name.as_str())
                .collect(),
            None => Vec::new(),
        };
        let mut deployed_any = false;
        for env in &envs {
            let mut in_window =
                |d: &str| descends(d, &commit) && newer.as_deref().is_none_or(|n| !descends(d, n));
            let by_event = inp.events.iter().any(|e| {
                e.kind == EventKind::Deployed
                    && e.environment.as_deref() == Some(env)
                    && e.version.as_deref() == Some(t.version.as_str())
                    && e.commit.as_deref().is_some_and(&mut in_window)
            });
            let now_running = inp
                .status
                .environments
                .iter()
                .find(|e| e.name == *env)
                .and_then(|e| e.models.iter().find(|m| m.model == inp.model))
                .is_some_and(|m| {
                    m.deployed.iter().any(|v| v.version == t.version)
                        && m.deployed_commit.as_deref().is_some_and(&mut in_window)
                });
            if by_event || now_running {
                deployed_any = true;
                outcomes.push(Outcome {
                    word: "deployed",
                    detail: format!("to {env}"),
                });
            }
        }
        if !deployed_any && !is_offending {
            let was_blocked = inp.events.iter().any(|e| {
                e.kind == EventKind::Blocked && e.commit.as_deref() == Some(commit.as_str())
            });
            let landed = accepted.is_some_and(|a| descends(a, &commit));
            let o = if t.to.is_some() && envs.is_empty() {
                Outcome {
                    word: "no-environment",
                    detail: "no environment deploys this stage".into(),
                }
            } else if t.to.is_none() {
                Outcome {
                    word: "no-environment",
                    detail: "manifest deleted".into(),
                }
            } else if was_blocked {
                Outcome {
                    word: "blocked",
                    detail: "was blocked; a later change superseded it".into(),
                }
            } else if !landed {
                Outcome {
                    word: "pending",
                    detail: "not yet accepted by the daemon".into(),
                }
            } else {
                Outcome {
                    word: "superseded",
                    detail:
                        "not deployed (before the daemon's baseline, or replaced before a deploy)"
                            .into(),
                }
            };
            outcomes.push(o);
        }
        rows.push(TrailRow {
            date: t.time.format("%Y-%m-%d %H:%M UTC").to_string(),
            commit_short: short(&commit),
            commit,
            version: t.version.clone(),
            from: t.from.clone().unwrap_or_else(|| "(new)".into()),
            to: t.to.clone().unwrap_or_else(|| "(deleted)".into()),
            author: t.author.clone(),
            approvers: inp
                .approvals
                .get(i)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.principals.first().cloned())
                        .collect()
                })
                .unwrap_or_default(),
            subject: t.subject.clone(),
            outcomes,
        });
    }
    rows
}

/// The commit a revert message names: a `Baton-Rollback-Of:` trailer, or git's `This reverts
/// commit <sha>.` line.
pub fn reverted_commit(message: &str) -> Option<String> {
    let hex40 = |s: &str| {
        let s = s.trim().trim_end_matches('.');
        (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_lowercase())
    };
    for line in message.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Baton-Rollback-Of:") {
            if let Some(c) = hex40(rest) {
                return Some(c);
            }
        }
        if let Some(rest) = line.strip_prefix("This reverts commit ") {
            if let Some(c) = hex40(rest.split(',').next().unwrap_or("")) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::view::{EnvironmentView, ModelView, SyncStatus, VersionView};
    use chrono::Utc;
    use git2::Oid;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn t(n: u8, v: &str, from: Option<&str>, to: &str) -> StageEvent {
        StageEvent {
            commit: oid(n),
            time: Utc::now(),
            author: "A <a@x>".into(),
            author_name: "A".into(),
            author_email: "a@x".into(),
            subject: format!("c{n}"),
            moved: crate::stage_move::StageMove {
                model: "m".into(),
                version: v.into(),
                from: from.map(str::to_owned),
                to: Some(to.into()),
                path: format!("models/m/versions/{v}.yaml"),
            },
            parents: 1,
        }
    }

    /// Commits are numbered in history order: a descends from b when a >= b.
    fn descends(a: &str, b: &str) -> bool {
        a >= b
    }

    #[test]
    fn outcomes_from_deploy_events_holds_and_reverts() {
        let c = |n: u8| oid(n).to_string();
        // Newest first: 1 -> production at c3 (blocked), 2 -> production at c2 (deployed,
        // then reverted by c4), 1 registered to staging at c1 (deployed).
        let transitions = vec![
            t(3, "1", Some("staging"), "production"),
            t(2, "2", Some("staging"), "production"),
            t(1, "1", None, "staging"),
        ];
        let status = StatusView {
            head: Some(c(2)),
            environments: vec![EnvironmentView {
                name: "prod".into(),
                stage: "production".into(),
                target: String::new(),
                models: vec![ModelView {
                    model: "m".into(),
                    desired: vec![],
                    deployed: vec![VersionView {
                        version: "2".into(),
                        traffic: 100,
                        sha256: String::new(),
                    }],
                    sync: SyncStatus::Blocked,
                    health: crate::daemon::view::Health::Healthy,
                    reasons: vec![],
                    waiting_until: None,
                    deployed_commit: Some(c(2)),
                    deployed_at: None,
                    verification: None,
                }],
            }],
            held: vec![HeldView {
                model: "m".into(),
                kind: crate::daemon::gate::HoldKind::Blocked,
                baseline: c(2),
                reasons: vec!["approvals: 0 of 1".into()],
                until: None,
                offending: Some(c(3)),
                author: None,
                since: None,
            }],
            ..Default::default()
        };
        let mut reverted = HashMap::new();
        reverted.insert(c(2), c(4));
        let rows = trail(
            &TrailInput {
                model: "m",
                transitions: &transitions,
                approvals: &[vec![], vec![], vec![]],
                status: &status,
                events: &[],
                reverted_by: &reverted,
            },
            &mut descends,
        );
        let words = |r: &TrailRow| r.outcomes.iter().map(|o| o.word).collect::<Vec<_>>();
        assert_eq!(words(&rows[0]), vec!["blocked"]);
        assert_eq!(rows[0].outcomes[0].detail, "approvals: 0 of 1");
        assert_eq!(words(&rows[1]), vec!["rolled-back", "deployed"]);
        assert_eq!(
            rows[1].outcomes[0].detail,
            format!("reverted by {}", &c(4)[..10])
        );
        // Staging has no environment here.
        assert_eq!(words(&rows[2]), vec!["no-environment"]);
        assert_eq!(rows[2].from, "(new)");
    }

    #[test]
    fn revert_messages_name_the_commit() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            reverted_commit(&format!("Revert \"x\"\n\nThis reverts commit {sha}.\n")),
            Some(sha.into())
        );
        assert_eq!(
            reverted_commit(&format!(
                "Revert\n\nBaton-Rollback-Of: {}\nBaton-Reason: r\n",
                sha.to_uppercase()
            )),
            Some(sha.into())
        );
        assert_eq!(reverted_commit("This reverts commit abc."), None);
    }
}
