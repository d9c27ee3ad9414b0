//! The approvals behind each landed stage transition, for `baton history`: verified signed
//! `Baton-Approve:` commits among the commits that landed the transition's commit.

use crate::check::approvals::signers::AllowedSigners;
use crate::check::approvals::{collect, trailers, Source, Target};
use crate::history::StageEvent;
use crate::manifest::parse_policy;
use crate::registry::invariants::safe_relative;
use crate::repo::join;
use git2::{ObjectType, Oid, Repository, Tree};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One approval that counted for a landed transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandedApproval {
    /// The signed approval commit.
    #[serde(serialize_with = "ser_oid")]
    pub commit: Oid,
    /// Principals the allowed-signers file (at the transition's base) vouches for.
    pub principals: Vec<String>,
}

fn ser_oid<S: serde::Serializer>(o: &Oid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&o.to_string())
}

/// Finds the approvals of landed transitions on one branch's first-parent history.
pub struct Approvals<'r> {
    repo: &'r Repository,
    root: String,
    /// First-parent child of each commit on the branch.
    next: HashMap<Oid, Oid>,
    policies: HashMap<Oid, Option<String>>,
    signers: HashMap<Oid, Arc<AllowedSigners>>,
}

impl<'r> Approvals<'r> {
    /// For the first-parent history of `head`, with the registry at folder `root`.
    pub fn new(repo: &'r Repository, head: Oid, root: &str) -> Result<Self, git2::Error> {
        let mut walk = repo.revwalk()?;
        walk.push(head)?;
        walk.simplify_first_parent()?;
        let mut next = HashMap::new();
        let mut child: Option<Oid> = None;
        for id in walk {
            let id = id?;
            if let Some(c) = child {
                next.insert(id, c);
            }
            child = Some(id);
        }
        Ok(Approvals {
            repo,
            root: root.to_owned(),
            next,
            policies: HashMap::new(),
            signers: HashMap::new(),
        })
    }

    /// The approvals of each event (same order), counted like docs/approvals.md signed approvals:
    /// the commit carries `Baton-Approve: <model>@<version> -> <to>`, its SSH signature
    /// verifies against the allowed-signers file of the registry at the transition's first
    /// parent (its base), and it approved the manifest as it landed (not stale).
    ///
    /// The commits searched are those the transition's commit brought to the branch: for a
    /// merge commit, everything it merged; for any other commit, itself and the empty
    /// commits that directly follow it on the branch (a rebase-merged pull request).
    /// Deletions and registrations in a root commit have none. Each event's approvals are
    /// oldest first, one per principal.
    pub fn for_events(
        &mut self,
        events: &[StageEvent],
    ) -> Result<Vec<Vec<LandedApproval>>, git2::Error> {
        let mut by_commit: HashMap<Oid, crate::check::approvals::Evidence> = HashMap::new();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let Some(to) = &e.to else {
                out.push(Vec::new());
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = by_commit.entry(e.commit) {
                let paths: Vec<String> = events
                    .iter()
                    .filter(|x| x.commit == e.commit)
                    .map(|x| x.path.clone())
                    .collect();
                slot.insert(self.evidence(e.commit, &paths)?);
            }
            let ev = &by_commit[&e.commit];
            let target = Target::Version {
                model: e.model.clone(),
                version: e.version.clone(),
                stage: to.clone(),
            };
            let mut found: Vec<LandedApproval> = Vec::new();
            for a in &ev.approvals {
                let Source::Commit(commit) = a.source else {
                    continue;
                };
                let fresh = a.blobs.get(&e.path).copied().flatten()
                    == ev.head_blobs.get(&e.path).copied().flatten();
                let seen = found
                    .iter()
                    .any(|f| f.principals.iter().any(|p| a.identities.contains(p)));
                if a.targets.contains(&target) && fresh && !seen {
                    found.push(LandedApproval {
                        commit,
                        principals: a.identities.clone(),
                    });
                }
            }
            // Oldest first: the order the approvals were given in.
            let mut timed = Vec::with_capacity(found.len());
            for f in found {
                let t = self
                    .repo
                    .find_commit(f.commit)?
                    .committer()
                    .when()
                    .seconds();
                timed.push((t, f));
            }
            timed.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| a.1.principals.cmp(&b.1.principals))
            });
            out.push(timed.into_iter().map(|(_, f)| f).collect());
        }
        Ok(out)
    }

    fn evidence(
        &mut self,
        commit: Oid,
        paths: &[String],
    ) -> Result<crate::check::approvals::Evidence, git2::Error> {
        let c = self.repo.find_commit(commit)?;
        let Ok(base) = c.parent(0) else {
            return Ok(Default::default());
        };
        let mut end = commit;
        // Most landed commits carry no approvals: skip the tree work for them.
        let mut any = has_trailer(&c);
        if c.parent_count() == 1 {
            let tree = c.tree_id();
            while let Some(n) = self.next.get(&end).copied() {
                let nc = self.repo.find_commit(n)?;
                if nc.parent_count() != 1 || nc.tree_id() != tree {
                    break;
                }
                any |= has_trailer(&nc);
                end = n;
            }
        } else {
            any = any || self.any_trailer(base.id(), end)?;
        }
        if !any {
            return Ok(Default::default());
        }
        let Some(signers) = self.signers_at(&base.tree()?)? else {
            return Ok(Default::default());
        };
        // An audit of what landed: keys are judged at the landing commit's time.
        let landed = crate::history::to_utc(c.committer().when());
        collect(self.repo, base.id(), end, Some(&signers), paths, landed)
    }

    /// Whether some commit in `base..end` has a `Baton-Approve:` trailer.
    fn any_trailer(&self, base: Oid, end: Oid) -> Result<bool, git2::Error> {
        let mut walk = self.repo.revwalk()?;
        walk.push(end)?;
        walk.hide(base)?;
        for id in walk {
            if has_trailer(&self.repo.find_commit(id?)?) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The allowed signers named by the policy in `tree`, cached by blob ids.
    fn signers_at(&mut self, tree: &Tree) -> Result<Option<Arc<AllowedSigners>>, git2::Error> {
        let Some(policy_blob) = blob_at(tree, &join(&self.root, "baton.yaml")) else {
            return Ok(None);
        };
        let rel = match self.policies.get(&policy_blob) {
            Some(r) => r.clone(),
            None => {
                let blob = self.repo.find_blob(policy_blob)?;
                let rel = parse_policy(blob.content())
                    .ok()
                    .and_then(|p| p.signers)
                    .and_then(|s| safe_relative(&s).ok());
                self.policies.insert(policy_blob, rel.clone());
                rel
            }
        };
        let Some(rel) = rel else { return Ok(None) };
        let Some(sblob) = blob_at(tree, &join(&self.root, &rel)) else {
            return Ok(None);
        };
        if let Some(s) = self.signers.get(&sblob) {
            return Ok(Some(s.clone()));
        }
        let text = String::from_utf8_lossy(self.repo.find_blob(sblob)?.content()).into_owned();
        let s = Arc::new(AllowedSigners::parse(&text));
        self.signers.insert(sblob, s.clone());
        Ok(Some(s))
    }
}

fn has_trailer(c: &git2::Commit) -> bool {
    !trailers(c.message().unwrap_or_default()).is_empty()
}

fn blob_at(tree: &Tree, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path))
        .ok()
        .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000)
        .map(|e| e.id())
}
