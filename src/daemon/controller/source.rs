//! The source stage: the branch head, the trusted baseline of an empty state dir, the
//! registry at a commit (the pass's store) and who made a commit.

use super::{short, Controller, ControllerError};
use crate::daemon::events::Event;
use crate::daemon::events::EventKind;
use crate::daemon::state::PersistedState;
use crate::registry::Registry;
use git2::Oid;
use std::sync::Arc;

impl Controller {
    /// The branch head.
    pub fn head(&self) -> Result<Oid, ControllerError> {
        let name = format!("refs/heads/{}", self.cfg.branch);
        let r = self
            .repo
            .find_reference(&name)
            .map_err(|e| match e.code() {
                git2::ErrorCode::NotFound => ControllerError::NoBranch(self.cfg.branch.clone()),
                // Not "not found": say what failed (out of file descriptors, permissions...).
                _ => ControllerError::Git(e),
            })?;
        Ok(r.peel_to_commit()?.id())
    }

    /// The registry at `commit`; `None` when the registry folder is absent there (a value,
    /// not an error: read failures are errors and fail the pass).
    /// Loaded once per pass (the store).
    pub(super) fn load(&mut self, commit: &str) -> Result<Option<Arc<Registry>>, ControllerError> {
        let oid = Oid::from_str(commit)?;
        let root = self.state.registry.clone();
        Ok(self.store.get(&self.repo, oid, &root)?)
    }

    /// An empty state dir: take the head (or `--trust REV`, which must be on the branch) as
    /// the trusted baseline, and say so loudly.
    pub(super) fn start_from_trusted(&mut self, head: Oid) -> Result<(), ControllerError> {
        let trusted = match &self.cfg.trust {
            Some(rev) => {
                let t = crate::repo::resolve_commit(&self.repo, rev)?.id();
                if t != head && !self.repo.graph_descendant_of(head, t)? {
                    return Err(ControllerError::TrustNotOnBranch {
                        rev: rev.clone(),
                        branch: self.cfg.branch.clone(),
                    });
                }
                t
            }
            None => head,
        };
        let trusted = trusted.to_string();
        let commit = self.repo.find_commit(Oid::from_str(&trusted)?)?;
        let root =
            crate::repo::registry_root(&self.repo, &commit, &trusted, self.cfg.path.as_deref())?;
        self.state = PersistedState {
            version: 1,
            branch: self.cfg.branch.clone(),
            registry: root,
            head: Some(trusted.clone()),
            trusted: trusted.clone(),
            policy_commit: trusted.clone(),
            ..Default::default()
        };
        let msg = format!(
            "empty state dir: trusting {} ({}) as the baseline without judging it; commits after it are judged",
            short(&trusted),
            commit.summary().unwrap_or_default()
        );
        tracing::warn!(commit = %trusted, "{msg}");
        self.events
            .push(Event::new(EventKind::Trusted, msg).commit(&trusted));
        Ok(())
    }

    /// Who made `commit` and its subject line (for events people read).
    pub(super) fn commit_meta(&self, commit: &str) -> (Option<String>, Option<String>) {
        let Some(c) = Oid::from_str(commit)
            .ok()
            .and_then(|o| self.repo.find_commit(o).ok())
        else {
            return (None, None);
        };
        let a = c.author();
        let author = match (a.name(), a.email()) {
            (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
            (Some(n), None) => Some(n.to_owned()),
            (None, Some(e)) => Some(e.to_owned()),
            _ => None,
        };
        (author, c.summary().map(str::to_owned))
    }

    /// The source stage: start the pass's store, read the branch head, take it as the trusted
    /// baseline on an empty state dir, and note when a new head was first seen (latency).
    pub(super) fn source(&mut self) -> Result<Oid, ControllerError> {
        self.store.begin_pass();
        let head = self.head()?;
        if self.state.head.is_none() {
            self.start_from_trusted(head)?;
        }
        let id = head.to_string();
        if self.seen.as_ref().map(|s| &s.0) != Some(&id) {
            self.seen = Some((id, std::time::Instant::now()));
        }
        Ok(head)
    }

    /// Route notifications by the policy in force (read through the pass's store): the one
    /// place that decides which policy the notifier follows; called before admission (for
    /// its events) and after it.
    pub(super) fn configure_notifier(&mut self) -> Result<(), ControllerError> {
        let commit = self.state.policy_commit.clone();
        if commit.is_empty() {
            return Ok(());
        }
        let policy = self.load(&commit)?.and_then(|r| r.policy.clone());
        if let (Some(p), Some(n)) = (policy, &mut self.events.notifier) {
            n.configure(&p);
        }
        Ok(())
    }
}
