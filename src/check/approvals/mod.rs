//! Approvals (docs/approvals.md): signed `Baton-Approve:` commits in merge-base..head and GitHub reviews,
//! gathered at the edge into [`Evidence`], then counted per gate by the pure [`tally`].

pub mod github;
pub mod signers;
pub mod verify;

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use serde::Serialize;
use signers::AllowedSigners;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// The trailer key of an approval commit.
pub const TRAILER: &str = "Baton-Approve";

/// What an approval approves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// `<model>@<version> -> <stage>`.
    Version {
        model: String,
        version: String,
        stage: String,
    },
    /// `policy`: changes to baton.yaml, model.yaml or the signers file.
    Policy,
}

impl Target {
    /// Parse a trailer value: `fraud-detector@4 -> production` or `policy`.
    pub fn parse(value: &str) -> Option<Target> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("policy") {
            return Some(Target::Policy);
        }
        let (mv, stage) = v.split_once("->")?;
        let (model, version) = mv.trim().split_once('@')?;
        let stage = stage.trim();
        if model.is_empty() || version.is_empty() || stage.is_empty() {
            return None;
        }
        Some(Target::Version {
            model: model.trim().to_owned(),
            version: version.trim().to_owned(),
            stage: stage.to_owned(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Version {
                model,
                version,
                stage,
            } => write!(f, "{model}@{version} -> {stage}"),
            Target::Policy => write!(f, "policy"),
        }
    }
}

/// `Baton-Approve:` values in a commit message: only trailers of the message's final trailer
/// block count (`git interpret-trailers` semantics, libgit2's parser; key case-insensitive), so
/// a line quoted in the body's prose approves nothing (docs/approvals.md).
pub fn trailers(message: &str) -> Vec<String> {
    let Ok(found) = git2::message_trailers_strs(message) else {
        return Vec::new();
    };
    found
        .iter()
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(TRAILER))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// Where a counted approval came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A signed approval commit.
    Commit(Oid),
    /// An APPROVED GitHub review on the PR's head commit.
    Github { login: String },
}

/// An approval whose origin verified (signature or forge); not yet counted for any gate.
#[derive(Debug, Clone)]
pub struct Approval {
    pub source: Source,
    /// Identities: allowed-signers principals, or `github:<login>`.
    pub identities: Vec<String>,
    /// Key fingerprint for signed approvals (one key counts once).
    pub key: Option<String>,
    /// Fingerprints of other keys of the same person (a GitHub reviewer's SSH signing keys), so
    /// that a signed commit and a review by one person count once.
    pub linked_keys: Vec<String>,
    /// What it approves; `None` (a forge review) approves the whole change.
    pub targets: Vec<Target>,
    /// Blob of each path of interest at the approval commit (staleness); empty for reviews.
    pub blobs: HashMap<String, Option<Oid>>,
}

/// An approval trailer that does not count, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub commit: Oid,
    pub target: Target,
    pub why: String,
}

/// Everything the approvals and policy-change gates need, gathered once per check.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub approvals: Vec<Approval>,
    pub rejected: Vec<Rejected>,
    /// Identities (lower-cased) that authored changes to each path of interest: author and
    /// committer e-mails, and the principals of the key that signed the commit.
    pub authors: HashMap<String, BTreeSet<String>>,
    /// Blob of each path of interest at head.
    pub head_blobs: HashMap<String, Option<Oid>>,
    /// Problems with the signers setup (missing file, skipped lines), for reasons.
    pub notes: Vec<String>,
    /// Whether a signers file was available at base.
    pub has_signers: bool,
    /// Identities that authored the whole change (the pull request's author on the forge).
    pub change_authors: BTreeSet<String>,
    /// Fingerprints of the keys that signed commits changing each path of interest (every
    /// valid signature, whether or not the allowed signers list the key).
    pub author_keys: HashMap<String, BTreeSet<String>>,
}

fn blob_at(tree: &git2::Tree, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path))
        .ok()
        .filter(|e| e.kind() == Some(git2::ObjectType::Blob))
        .map(|e| e.id())
}

/// Walk every commit in merge_base..head (merged branches included): record who touched each
/// path in `paths`, and verify every commit carrying a `Baton-Approve:` trailer. Key validity
/// (`valid-after` / `valid-before`) is judged at `now`, the time of judging, never at a
/// commit's own date, which whoever makes the commit sets (docs/approvals.md).
pub fn collect(
    repo: &Repository,
    merge_base: Oid,
    head: Oid,
    signers: Option<&AllowedSigners>,
    paths: &[String],
    now: DateTime<Utc>,
) -> Result<Evidence, git2::Error> {
    let mut ev = Evidence {
        has_signers: signers.is_some(),
        ..Evidence::default()
    };
    let head_tree = repo.find_commit(head)?.tree()?;
    for p in paths {
        ev.head_blobs.insert(p.clone(), blob_at(&head_tree, p));
    }
    let empty = AllowedSigners::default();
    let signers = signers.unwrap_or(&empty);
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    if merge_base != head {
        walk.hide(merge_base)?;
    } else {
        return Ok(ev);
    }
    for oid in walk {
        let oid = oid?;
        let commit = repo.find_commit(oid)?;
        let tree = commit.tree()?;
        let parents: Vec<git2::Tree> = commit
            .parents()
            .map(|p| p.tree())
            .collect::<Result<_, _>>()?;
        let blobs: HashMap<String, Option<Oid>> = paths
            .iter()
            .map(|p| (p.clone(), blob_at(&tree, p)))
            .collect();
        // A path a commit changed: it differs from every parent (for a merge, content the
        // merge itself introduced).
        let touched: Vec<&String> = paths
            .iter()
            .filter(|p| {
                let b = blobs[*p];
                parents.iter().all(|pt| blob_at(pt, p) != b)
            })
            .collect();
        let message = commit.message().unwrap_or_default().to_owned();
        let values = trailers(&message);
        if touched.is_empty() && values.is_empty() {
            continue;
        }
        let committer_email = commit.committer().email().unwrap_or_default().to_owned();
        let claimed = [committer_email.as_str()];
        let signature = verify::commit_signature(repo, oid);
        if !touched.is_empty() {
            // The authors of a change: its author and committer e-mails (unauthenticated, they
            // stop honest mistakes) and whoever's key signed it, in any allowed-signers line
            // (whatever its validity) or by fingerprint alone (docs/approvals.md).
            let mut who: BTreeSet<String> = BTreeSet::new();
            for e in [commit.author().email(), commit.committer().email()]
                .into_iter()
                .flatten()
                .filter(|e| !e.is_empty())
            {
                who.insert(e.to_lowercase());
            }
            if let Ok(s) = &signature {
                who.extend(s.owners(signers, &claimed).iter().map(|i| i.to_lowercase()));
            }
            for p in touched {
                ev.authors.entry(p.clone()).or_default().extend(who.clone());
                if let Ok(s) = &signature {
                    ev.author_keys
                        .entry(p.clone())
                        .or_default()
                        .insert(s.fingerprint.clone());
                }
            }
        }
        let verified = signature.and_then(|s| s.authorize(signers, &claimed, now));
        let targets: Vec<Target> = values.iter().filter_map(|v| Target::parse(v)).collect();
        if targets.is_empty() {
            continue;
        }
        match verified {
            Ok(v) => ev.approvals.push(Approval {
                source: Source::Commit(oid),
                identities: v.identities,
                key: Some(v.fingerprint),
                linked_keys: Vec::new(),
                targets,
                blobs,
            }),
            Err(why) => {
                for t in targets {
                    ev.rejected.push(Rejected {
                        commit: oid,
                        target: t,
                        why: why.to_string(),
                    });
                }
            }
        }
    }
    Ok(ev)
}

/// The outcome of counting approvals for one gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Distinct approvers that count, in order found.
    pub counted: Vec<String>,
    /// Approvals that did not count, each with why.
    pub ignored: Vec<String>,
}

fn short(o: &Oid) -> String {
    o.to_string()[..7].to_owned()
}

/// Count the approvals of `target` by identities in `allowed` (lower-cased principals /
/// `github:` logins), bound to `paths` (repository-relative) as they are at head.
pub fn tally(ev: &Evidence, target: &Target, paths: &[String], allowed: &[String]) -> Tally {
    let mut t = Tally::default();
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let authors: BTreeSet<&String> = paths
        .iter()
        .filter_map(|p| ev.authors.get(p))
        .flatten()
        .chain(ev.change_authors.iter())
        .collect();
    let is_allowed = |id: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(id));
    for a in &ev.approvals {
        let applies = match a.source {
            Source::Github { .. } => true,
            Source::Commit(_) => a.targets.contains(target),
        };
        if !applies {
            continue;
        }
        let origin = match &a.source {
            Source::Commit(o) => format!("commit {}", short(o)),
            Source::Github { login } => format!("GitHub review by {login}"),
        };
        let who = a.identities.join(", ");
        if let Source::Commit(_) = a.source {
            let stale = paths.iter().any(|p| {
                a.blobs.get(p).copied().flatten() != ev.head_blobs.get(p).copied().flatten()
            });
            if stale {
                t.ignored.push(format!(
                    "{who} ({origin}): stale, the manifest changed after it"
                ));
                continue;
            }
        }
        let Some(id) = a.identities.iter().find(|i| is_allowed(i)) else {
            t.ignored
                .push(format!("{who} ({origin}): not an allowed approver"));
            continue;
        };
        let signed_change = a.key.iter().chain(a.linked_keys.iter()).any(|k| {
            paths
                .iter()
                .any(|p| ev.author_keys.get(p).is_some_and(|s| s.contains(k)))
        });
        if signed_change
            || a.identities
                .iter()
                .any(|i| authors.contains(&i.to_lowercase()))
        {
            t.ignored.push(format!(
                "{id} ({origin}): an author of the change cannot approve it"
            ));
            continue;
        }
        let own_keys: Vec<&String> = a.key.iter().chain(a.linked_keys.iter()).collect();
        let dup_key = own_keys.iter().any(|k| keys.contains(*k));
        if dup_key || t.counted.iter().any(|c| c.eq_ignore_ascii_case(id)) {
            t.ignored.push(format!("{id} ({origin}): already counted"));
            continue;
        }
        keys.extend(own_keys.into_iter().cloned());
        t.counted.push(id.clone());
    }
    for r in ev.rejected.iter().filter(|r| &r.target == target) {
        t.ignored
            .push(format!("commit {}: {}", short(&r.commit), r.why));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trailers_and_targets() {
        let msg = "approve\n\nBaton-Approve: fraud-detector@4 -> production\nbaton-approve: policy\nOther: x\n";
        let v = trailers(msg);
        assert_eq!(v.len(), 2);
        assert_eq!(
            Target::parse(&v[0]),
            Some(Target::Version {
                model: "fraud-detector".into(),
                version: "4".into(),
                stage: "production".into()
            })
        );
        assert_eq!(Target::parse(&v[1]), Some(Target::Policy));
        assert_eq!(Target::parse("nonsense"), None);
    }

    #[test]
    fn only_the_final_trailer_block_counts() {
        // Quoted in a paragraph that more prose follows: not a trailer.
        let quoted = "notes\n\nWe will add\nBaton-Approve: fraud-detector@4 -> production\nonce the eval is in.\n\nThanks.\n";
        assert!(trailers(quoted).is_empty());
        // A trailer-only paragraph that is not the last one.
        let early = "notes\n\nBaton-Approve: fraud-detector@4 -> production\n\nMore prose.\n";
        assert!(trailers(early).is_empty());
        // The subject line is never a trailer block.
        assert!(trailers("Baton-Approve: policy\n").is_empty());
        // The final block, after prose that mentions one.
        let last = "notes\n\nBaton-Approve: policy is what we need\nsoon.\n\nBaton-Approve: policy\nSigned-off-by: A <a@x>\n";
        assert_eq!(trailers(last), vec!["policy".to_owned()]);
    }
}
