//! The desired stage: what each environment runs after holds, every model read at its
//! accepted commit and interpreted by the policy in force (docs/daemon.md).

use super::{Controller, ControllerError};
use crate::daemon::gate;
use crate::daemon::release::releases_of;
use crate::manifest::Policy;
use crate::registry::desired::desired_state;
use crate::registry::Registry;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

/// environment -> model -> release the environment should run (after holds).
pub(super) type Effective = gate::Effective;

/// What the effective state is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EffectiveKey {
    pub(super) head: String,
    pub(super) policy: String,
    pub(super) held: Vec<(String, String)>,
}

/// The policy when the policy commit has none: no stages, nothing deployed.
fn empty_policy() -> Policy {
    Policy {
        version: 1,
        stages: vec![],
        rollback: Default::default(),
        groups: Default::default(),
        policy_owners: vec![],
        signers: None,
        environments: Default::default(),
        notifications: vec![],
    }
}

/// What the desired stage hands the per-environment stages.
pub(super) struct Desired {
    /// The policy in force.
    pub policy: Arc<Policy>,
    /// Environment -> model -> the release it should run (holds applied).
    pub effective: Arc<Effective>,
    /// The same as the accepted head alone says it (`None`: no registry there).
    pub head: Option<Arc<Effective>>,
}

impl Controller {
    /// The desired stage: what each environment runs (holds applied) under the policy in
    /// force, and what the accepted head alone says (for status).
    pub(super) fn desired(&mut self, head: git2::Oid) -> Result<Desired, ControllerError> {
        let accepted = self.state.head.clone().unwrap_or_else(|| head.to_string());
        let (policy, effective) = self.effective()?;
        // Without holds the effective state is what the accepted head says: share it.
        let head = if self.state.held.is_empty() && self.state.policy_commit == accepted {
            self.head_cache = None;
            Some(effective.clone())
        } else {
            self.head_desired(&accepted)?
        };
        Ok(Desired {
            policy,
            effective,
            head,
        })
    }

    /// The policy in force and each environment's releases after holds: every model read at
    /// its accepted commit (the accepted head, or its hold's baseline) and interpreted by the
    /// policy in force. Cached per (accepted head, policy commit, holds).
    pub(super) fn effective(&mut self) -> Result<(Arc<Policy>, Arc<Effective>), ControllerError> {
        let head = self.state.head.clone().unwrap_or_default();
        let key = EffectiveKey {
            head: head.clone(),
            policy: self.state.policy_commit.clone(),
            held: self
                .state
                .held
                .iter()
                .map(|(m, h)| (m.clone(), h.baseline.clone()))
                .collect(),
        };
        if let Some((k, p, e)) = &self.cache {
            if *k == key {
                return Ok((p.clone(), e.clone()));
            }
        }
        let pc = self.state.policy_commit.clone();
        let policy = self
            .load(&pc)?
            .and_then(|r| r.policy.clone())
            .unwrap_or_else(|| Arc::new(empty_policy()));
        let mut commits: BTreeSet<String> = self
            .state
            .held
            .values()
            .map(|h| h.baseline.clone())
            .collect();
        commits.insert(head.clone());
        let mut by_commit: BTreeMap<String, Effective> = BTreeMap::new();
        for c in commits {
            let Some(reg) = self.load(&c)? else {
                continue;
            };
            let reg = with_policy(reg, &policy);
            let d = desired_state(&reg)
                .iter()
                .map(|(env, ed)| (env.clone(), releases_of(ed, &c, &reg.root)))
                .collect();
            by_commit.insert(c, d);
        }
        let mut out: Effective = BTreeMap::new();
        for env in policy.environments.keys() {
            let mut rels = BTreeMap::new();
            let mut models: BTreeSet<&String> = BTreeSet::new();
            for d in by_commit.values() {
                if let Some(e) = d.get(env) {
                    models.extend(e.keys());
                }
            }
            for m in models {
                let c = self
                    .state
                    .held
                    .get(m)
                    .map(|h| h.baseline.as_str())
                    .unwrap_or(&head);
                if let Some(r) = by_commit
                    .get(c)
                    .and_then(|d| d.get(env))
                    .and_then(|e| e.get(m))
                {
                    rels.insert(m.clone(), r.clone());
                }
            }
            out.insert(env.clone(), rels);
        }
        let out = Arc::new(out);
        self.cache = Some((key, policy.clone(), out.clone()));
        Ok((policy, out))
    }

    /// What the accepted head says per environment under the policy in force (for status).
    pub(super) fn head_desired(
        &mut self,
        head: &str,
    ) -> Result<Option<Arc<Effective>>, ControllerError> {
        if let Some((h, d)) = &self.head_cache {
            if h == head {
                return Ok(d.clone());
            }
        }
        let pc = self.state.policy_commit.clone();
        let policy = self.load(&pc)?.and_then(|r| r.policy.clone());
        let d = match (self.load(head)?, policy) {
            (Some(reg), Some(p)) => {
                let reg = with_policy(reg, &p);
                Some(Arc::new(
                    desired_state(&reg)
                        .iter()
                        .map(|(env, ed)| (env.clone(), releases_of(ed, head, &reg.root)))
                        .collect(),
                ))
            }
            _ => None,
        };
        self.head_cache = Some((head.to_owned(), d.clone()));
        Ok(d)
    }
}

/// `reg` interpreted by the policy in force (shared as is when it already holds it).
fn with_policy(reg: Arc<Registry>, policy: &Arc<Policy>) -> Arc<Registry> {
    if reg.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy)) {
        return reg;
    }
    let mut r = Registry::clone(&reg);
    r.policy = Some(policy.clone());
    Arc::new(r)
}
