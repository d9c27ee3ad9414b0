//! The admission stage: judge each commit that landed since the accepted head (the check
//! engine, under the policy in force), then the head's own validation and `requires` holds.

use super::{short, Controller, ControllerError};
use crate::daemon::admission;
use crate::daemon::admission::Ancestry;
use crate::daemon::events::Event;
use crate::daemon::events::EventKind;
use crate::daemon::gate;
use crate::daemon::gate::HoldKind;
use crate::daemon::state::Hold;
use crate::diag::Diagnostic;
use crate::registry::files::GitFiles;
use crate::registry::invariants;
use chrono::DateTime;
use chrono::Utc;
use git2::Oid;
use std::collections::BTreeMap;
use std::time::Instant;

/// The model a repository-relative path under `<root>/models/<model>/` belongs to.
fn model_of(root: &str, file: &str) -> Option<String> {
    let prefix = crate::repo::join(root, "models/");
    file.strip_prefix(&prefix)
        .and_then(|rest| rest.split('/').next())
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
}

impl Controller {
    /// The admission stage: judge what is new or still held at `head` under the policy in
    /// force, with notifications routed by that policy before and after (admission may
    /// change it).
    pub(super) fn admit(&mut self, head: Oid, now: DateTime<Utc>) -> Result<(), ControllerError> {
        self.configure_notifier()?;
        if self.state.head.as_deref() != Some(head.to_string().as_str())
            || !self.state.held.is_empty()
            || !self.state.policy_pending.is_empty()
            || self.state.diverged.is_some()
        {
            self.recheck(head, now)?;
        }
        self.configure_notifier()
    }

    /// Judge what landed since the accepted head, step by step (admission), then hold models
    /// whose head does not validate and cascade `requires` holds.
    pub(super) fn recheck(&mut self, head: Oid, now: DateTime<Utc>) -> Result<(), ControllerError> {
        let accepted_s = self.state.head.clone().unwrap_or_else(|| head.to_string());
        let accepted = Oid::from_str(&accepted_s)?;
        let steps = match admission::ancestry(&self.repo, accepted, head)? {
            Ancestry::Diverged => {
                if self.state.diverged.as_deref() != Some(head.to_string().as_str()) {
                    self.events.push(
                        Event::new(
                            EventKind::Diverged,
                            format!(
                                "branch {} moved to {}, which does not descend from the accepted head {}: every model keeps what it runs until the branch descends from it again, or baton serve is restarted with --trust",
                                self.cfg.branch,
                                short(&head.to_string()),
                                short(&accepted_s)
                            ),
                        )
                        .commit(&head.to_string()),
                    );
                    self.state.diverged = Some(head.to_string());
                }
                return Ok(());
            }
            Ancestry::Descends(steps) => steps,
        };
        if self.state.diverged.take().is_some() {
            self.events.push(
                Event::new(
                    EventKind::Head,
                    format!(
                        "branch {} descends from the accepted head again",
                        self.cfg.branch
                    ),
                )
                .commit(&head.to_string()),
            );
        }
        if !steps.is_empty() {
            self.events.push(
                Event::new(
                    EventKind::Head,
                    format!(
                        "branch {} moved to {} ({} new commit{})",
                        self.cfg.branch,
                        short(&head.to_string()),
                        steps.len(),
                        if steps.len() == 1 { "" } else { "s" }
                    ),
                )
                .commit(&head.to_string()),
            );
        }
        let old = self.state.held.clone();
        let (policy, before) = self.effective()?;
        let gate_holds: BTreeMap<String, Hold> = old
            .iter()
            .filter(|(_, h)| !h.requires)
            .map(|(m, h)| (m.clone(), h.clone()))
            .collect();
        let before_baseline = |m: &str| {
            old.get(m)
                .map(|h| h.baseline.clone())
                .unwrap_or_else(|| accepted_s.clone())
        };
        let root = self.state.registry.clone();
        let cx = admission::Context {
            repo: &self.repo,
            root: &root,
            now,
            github: self.cfg.github.clone(),
        };
        let clock = admission::clock_of(&self.state, &[]);
        let started = Instant::now();
        let n_steps = steps.len();
        let out = admission::admit(
            &mut self.judge,
            &cx,
            admission::Baselines {
                accepted,
                policy_commit: Oid::from_str(&self.state.policy_commit)?,
                held: gate_holds,
                clock,
            },
            &policy,
            steps,
            head,
        )?;
        self.last_admission = Some((n_steps, started.elapsed()));
        self.state.head = Some(out.head.to_string());
        self.state.policy_commit = out.policy_commit.to_string();
        self.state.held = out.held;
        self.state.policy_pending = out.policy_pending;
        for e in out.entered {
            self.state
                .entered
                .retain(|x| (&x.model, &x.version, &x.stage) != (&e.model, &e.version, &e.stage));
            self.state.entered.push(e);
        }

        // The head's own validation: a model whose files do not validate is blocked.
        let head_s = head.to_string();
        let diags = match self.load(&head_s)? {
            Some(reg) => {
                let files = GitFiles::new(&self.repo, reg.commit)?;
                invariants::validate(&reg, &files)
            }
            None => vec![Diagnostic::new(
                root.clone(),
                format!("no registry at {}", short(&head_s)),
            )],
        };
        let mut per_model: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in &diags {
            if let Some(m) = model_of(&root, &d.file) {
                per_model.entry(m).or_default().push(format!("schema: {d}"));
            }
        }
        let head_wide: Vec<&Diagnostic> = diags
            .iter()
            .filter(|d| model_of(&root, &d.file).is_none())
            .collect();
        if !head_wide.is_empty() && self.errors != diags {
            self.events.push(
                Event::new(
                    EventKind::BadHead,
                    format!(
                        "{}: {}",
                        short(&head_s),
                        head_wide
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                )
                .commit(&head_s),
            );
        }
        self.errors = diags;
        for (m, reasons) in per_model {
            match self.state.held.get_mut(&m) {
                Some(h) => {
                    h.kind = HoldKind::Blocked;
                    h.reasons.extend(reasons);
                }
                None => {
                    self.state.held.insert(
                        m.clone(),
                        Hold {
                            baseline: before_baseline(&m),
                            kind: HoldKind::Blocked,
                            reasons,
                            until: None,
                            since: old.get(&m).map(|h| h.since).unwrap_or(now),
                            offending: Some(head_s.clone()),
                            author: None,
                            requires: false,
                        },
                    );
                }
            }
        }

        // `requires` both ways: hold whichever side is about to break a requirement, until
        // no new hold appears (the effective state is read again with each round's holds).
        let mut held = std::mem::take(&mut self.state.held);
        let fixed = gate::requires_fixed_point(
            &before,
            &mut held,
            |h| {
                self.state.held = h.clone();
                self.effective().map(|(_, e)| e)
            },
            |m, reasons| Hold {
                baseline: before_baseline(m),
                kind: HoldKind::Blocked,
                reasons,
                until: None,
                since: old.get(m).map(|h| h.since).unwrap_or(now),
                offending: None,
                author: None,
                requires: true,
            },
        );
        self.state.held = held;
        fixed?;
        self.hold_events(&old, &head_s);
        Ok(())
    }

    /// Events for holds that appeared, changed kind or failing rules, or went away. Reason
    /// texts that only tick with time (a soak's "only 3h") do not repeat the event.
    pub(super) fn hold_events(&mut self, old: &BTreeMap<String, Hold>, head: &str) {
        let mut out = Vec::new();
        for (m, h) in &self.state.held {
            let changed = old
                .get(m)
                .is_none_or(|o| o.kind != h.kind || o.reasons.len() != h.reasons.len());
            if !changed {
                continue;
            }
            let (word, kind) = match h.kind {
                HoldKind::Blocked => ("blocked", EventKind::Blocked),
                HoldKind::Waiting => ("waiting", EventKind::Waiting),
            };
            let by = match (&h.offending, &h.author) {
                (Some(c), Some(a)) => format!(" by {} ({a})", short(c)),
                (Some(c), None) => format!(" by {}", short(c)),
                _ => String::new(),
            };
            let msg = match h.until {
                Some(t) => format!(
                    "{m} {word}{by} until {}: {}",
                    t.to_rfc3339(),
                    h.reasons.join("; ")
                ),
                None => format!("{m} {word}{by}: {}", h.reasons.join("; ")),
            };
            let commit = h.offending.as_deref().unwrap_or(&h.baseline);
            let (author, subject) = self.commit_meta(commit);
            out.push(
                Event::new(kind, msg)
                    .model(m)
                    .commit(commit)
                    .author(h.author.as_deref().or(author.as_deref()))
                    .subject(subject.as_deref())
                    .reasons(&h.reasons),
            );
        }
        for m in old.keys().filter(|m| !self.state.held.contains_key(*m)) {
            out.push(
                Event::new(
                    EventKind::Unblocked,
                    format!("{m} goes ahead at {}", short(head)),
                )
                .model(m)
                .commit(head),
            );
        }
        for e in out {
            self.events.push(e);
        }
    }
}
