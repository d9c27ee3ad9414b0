//! The rollback written to git: the revert of the commit that brought a failing version into
//! its stage (never HEAD), the failed measurement as evidence, trailers, signed, and landed.
//!
//! The revert is computed in memory (libgit2's revert against the branch head); when it does
//! not apply, the equivalent manifest edit (each manifest the commit changed gets the stage and
//! traffic it had before). The commit is made with `git commit-tree` (signed with
//! `-c gpg.format=ssh -c user.signingkey=KEY -S` when a key is given) and lands by a
//! compare-and-swap of the branch ref (retried on a moved head), by a push to `--url`, or
//! on `baton/rollback/<model>-<version>` (mode `branch`).

use crate::authoring::edit;
use crate::history::HistoryWalker;
use crate::manifest::verify::RollbackMode;
use git2::{Oid, Repository};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The trailer naming the reverted commit.
pub const ROLLBACK_OF: &str = "Baton-Rollback-Of";
/// The trailer saying why.
pub const REASON: &str = "Baton-Reason";

/// Commits of the branch searched for an existing revert (idempotence) and for the entry.
const SEARCH_DEPTH: usize = 2000;

#[derive(Debug, Error)]
pub enum RollbackError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error("`git {args}` failed: {stderr}")]
    Command { args: String, stderr: String },
    /// A guardrail: nothing to write, and why (not an error to retry).
    #[error("{0}")]
    Refused(String),
}

/// Where and how the daemon lands a revert (`--signing-key`, `--url`).
#[derive(Debug, Clone, Default)]
pub struct RollbackConfig {
    /// An SSH private key: the revert is signed with it.
    pub signing_key: Option<PathBuf>,
    /// `--url`: push there instead of writing the local branch.
    pub url: Option<String>,
}

/// One rollback to write.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The repository the daemon reads (the watched one, or the clone of `--url`).
    pub repo: &'a Path,
    pub branch: &'a str,
    /// Registry folder inside the repository.
    pub root: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    pub stage: &'a str,
    /// `Baton-Reason`: one line.
    pub reason: &'a str,
    /// The evidence report: the failed measurement.
    pub report: &'a str,
    pub mode: RollbackMode,
    pub config: &'a RollbackConfig,
}

/// What was landed (or found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub commit: String,
    pub reverted: String,
    /// The ref it is on: `refs/heads/main` or `refs/heads/baton/rollback/m-4`.
    pub on: String,
    /// An existing revert for the same commit was found and reused.
    pub reused: bool,
}

/// The ref a `branch`-mode rollback lands on.
pub fn rollback_branch(model: &str, version: &str) -> String {
    format!("baton/rollback/{model}-{version}")
}

/// `Baton-Rollback-Of` of a commit message's final trailer block, if any.
pub fn rollback_of(message: &str) -> Option<String> {
    let block = message.trim_end().rsplit("\n\n").next().unwrap_or("");
    block.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim().eq_ignore_ascii_case(ROLLBACK_OF)).then(|| v.trim().to_owned())
    })
}

/// The commit message of the revert of `subject` (`sha`).
pub fn message(subject: &str, sha: &str, stage: &str, reason: &str) -> String {
    let reason = one_line(reason);
    format!(
        "Revert \"{subject}\"\n\nThis reverts commit {sha}.\n\nLive verification in `{stage}` failed; baton contained the version and records the failed measurement as evidence (verification-{stage}).\n\n{ROLLBACK_OF}: {sha}\n{REASON}: {reason}\n"
    )
}

fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `text` (a version manifest) with `evidence.verification-<stage>` set to a failed one.
/// Block-style or absent `evidence:` is edited in place; anything else is re-serialized.
pub fn with_evidence(text: &str, stage: &str, report: &str) -> String {
    let key = format!("verification-{stage}");
    let value = format!(
        "{{passed: false, report: {}}}",
        serde_json::to_string(&one_line(report)).unwrap_or_else(|_| "\"\"".into())
    );
    let lines: Vec<&str> = text.lines().collect();
    let ev = lines.iter().position(|l| l.trim_end() == "evidence:");
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    match ev {
        Some(i) => {
            let mut end = i + 1;
            let mut indent = "  ".to_owned();
            while end < out.len() && (out[end].starts_with(' ') || out[end].trim().is_empty()) {
                if end == i + 1 {
                    indent = out[end][..out[end].len() - out[end].trim_start().len()].to_owned();
                }
                end += 1;
            }
            let prefix = format!("{indent}{key}:");
            out.retain({
                let mut idx = 0usize;
                move |l| {
                    idx += 1;
                    !(idx - 1 > i && idx - 1 < end && l.starts_with(&prefix))
                }
            });
            let end = end.min(out.len());
            let end = (i + 1..end)
                .find(|&j| j >= out.len() || !(out[j].starts_with(' ') || out[j].trim().is_empty()))
                .unwrap_or(end);
            out.insert(end, format!("{indent}{key}: {value}"));
        }
        None if !lines.iter().any(|l| l.starts_with("evidence:")) => {
            out.push("evidence:".into());
            out.push(format!("  {key}: {value}"));
        }
        None => return reserialized(text, &key, report).unwrap_or_else(|| text.to_owned()),
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn reserialized(text: &str, key: &str, report: &str) -> Option<String> {
    let mut m: crate::manifest::VersionManifest = serde_yaml::from_str(text).ok()?;
    m.evidence.insert(
        key.to_owned(),
        crate::manifest::Evidence {
            passed: false,
            report: Some(one_line(report)),
        },
    );
    serde_yaml::to_string(&m).ok()
}

/// `git <args>` in `repo` as baton (trimmed stdout), through the one git-CLI wrapper.
fn git(repo: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, RollbackError> {
    crate::gitcli::GitCli::in_dir(repo)
        .identity("baton", "baton@localhost")
        .run_input(args, stdin.map(str::as_bytes))
        .map(|out| out.trim().to_owned())
        .map_err(|e| {
            let (args, stderr) = e.into_parts(args);
            RollbackError::Command { args, stderr }
        })
}

/// An existing revert of `sha` on the first-parent history of `tip`.
fn existing_revert(repo: &Repository, tip: Oid, sha: &str) -> Result<Option<Oid>, RollbackError> {
    let mut walk = repo.revwalk()?;
    walk.push(tip)?;
    walk.simplify_first_parent()?;
    for oid in walk.take(SEARCH_DEPTH) {
        let c = repo.find_commit(oid?)?;
        if rollback_of(c.message().unwrap_or("")).as_deref() == Some(sha) {
            return Ok(Some(c.id()));
        }
    }
    Ok(None)
}

/// The commit that brought `version` of `model` into `stage` (the newest such entry).
pub fn entering_commit(
    repo: &Repository,
    head: Oid,
    root: &str,
    model: &str,
    version: &str,
    stage: &str,
) -> Result<Oid, RollbackError> {
    let events = HistoryWalker::new().model_history(repo, head, root, model, Some(version))?;
    events
        .into_iter()
        .find(|e| {
            e.version == version
                && e.to.as_deref() == Some(stage)
                && e.from.as_deref() != Some(stage)
        })
        .map(|e| e.commit)
        .ok_or_else(|| {
            RollbackError::Refused(format!(
                "no commit on the first-parent history brought {model} {version} into `{stage}`"
            ))
        })
}

/// The tree of the revert of `entry` on top of `head`, with the evidence added; falls back to
/// the equivalent manifest edit when the revert does not apply.
fn revert_tree(
    repo: &Repository,
    entry: &git2::Commit<'_>,
    head: &git2::Commit<'_>,
    manifest: &str,
    stage: &str,
    report: &str,
) -> Result<Oid, RollbackError> {
    let mainline = if entry.parent_count() > 1 { 1 } else { 0 };
    let mut index = repo.revert_commit(entry, head, mainline, None)?;
    if index.has_conflicts() {
        index = equivalent_edit(repo, entry, head)?;
    }
    let blob_text = match index.get_path(Path::new(manifest), 0) {
        Some(e) => {
            let b = repo.find_blob(e.id)?;
            String::from_utf8_lossy(b.content()).into_owned()
        }
        None => {
            return Err(RollbackError::Refused(format!(
                "{manifest} does not exist after the revert"
            )))
        }
    };
    let text = with_evidence(&blob_text, stage, report);
    let oid = repo.blob(text.as_bytes())?;
    let mut e = index
        .get_path(Path::new(manifest), 0)
        .expect("checked above");
    e.id = oid;
    e.file_size = text.len() as u32;
    index.add(&e)?;
    Ok(index.write_tree_to(repo)?)
}

/// The revert as a manifest edit: every version manifest `entry` changed gets, at `head`, the
/// stage and traffic it had in `entry`'s first parent (a manifest `entry` added is archived
/// back to its previous stage only when it had one; otherwise it keeps the head's).
fn equivalent_edit(
    repo: &Repository,
    entry: &git2::Commit<'_>,
    head: &git2::Commit<'_>,
) -> Result<git2::Index, RollbackError> {
    let parent = entry.parent(0)?;
    let diff = repo.diff_tree_to_tree(Some(&parent.tree()?), Some(&entry.tree()?), None)?;
    let head_tree = head.tree()?;
    let mut index = git2::Index::new()?;
    index.read_tree(&head_tree)?;
    for d in diff.deltas() {
        let Some(path) = d.new_file().path().or(d.old_file().path()) else {
            continue;
        };
        let p = path.to_string_lossy();
        if !p.contains("/versions/") || !p.ends_with(".yaml") {
            continue;
        }
        let (Ok(before), Ok(now)) = (
            parent
                .tree()?
                .get_path(path)
                .and_then(|e| repo.find_blob(e.id())),
            head_tree
                .get_path(path)
                .and_then(|e| repo.find_blob(e.id())),
        ) else {
            continue;
        };
        let Ok(old) = crate::manifest::parse_version(before.content()) else {
            continue;
        };
        let text = String::from_utf8_lossy(now.content());
        let text = edit::set_traffic(&edit::set_stage(&text, &old.stage), old.traffic);
        let oid = repo.blob(text.as_bytes())?;
        if let Some(mut e) = index.get_path(path, 0) {
            e.id = oid;
            e.file_size = text.len() as u32;
            index.add(&e)?;
        }
    }
    Ok(index)
}

/// Write (or find) the rollback of `req.version`'s entry into `req.stage`.
pub fn write(req: &Request<'_>) -> Result<Done, RollbackError> {
    let repo = crate::repo::open(req.repo)?;
    let branch_ref = format!("refs/heads/{}", req.branch);
    let side_ref = format!("refs/heads/{}", rollback_branch(req.model, req.version));
    let manifest = crate::repo::join(
        req.root,
        &format!("models/{}/versions/{}.yaml", req.model, req.version),
    );
    for _attempt in 0..5 {
        let head = repo.find_reference(&branch_ref)?.peel_to_commit()?;
        let entry_oid = entering_commit(
            &repo,
            head.id(),
            req.root,
            req.model,
            req.version,
            req.stage,
        )?;
        let entry = repo.find_commit(entry_oid)?;
        let sha = entry_oid.to_string();
        if rollback_of(entry.message().unwrap_or("")).is_some() {
            return Err(RollbackError::Refused(format!(
                "{} is itself a rollback: a rollback is never rolled back",
                &sha[..10]
            )));
        }
        if entry.parent_count() == 0 {
            return Err(RollbackError::Refused(format!(
                "{} {} has been in `{}` since the first commit: there is nothing to revert to",
                req.model, req.version, req.stage
            )));
        }
        // Idempotent: a revert of the same commit, on the branch or on the rollback branch.
        let mut found = existing_revert(&repo, head.id(), &sha)?.map(|c| (c, branch_ref.clone()));
        if found.is_none() {
            if let Ok(side) = repo
                .find_reference(&side_ref)
                .and_then(|r| r.peel_to_commit())
            {
                if rollback_of(side.message().unwrap_or("")).as_deref() == Some(sha.as_str()) {
                    found = Some((side.id(), side_ref.clone()));
                }
            }
        }
        if let Some((c, on)) = found {
            return Ok(Done {
                commit: c.to_string(),
                reverted: sha,
                on,
                reused: true,
            });
        }
        let tree = revert_tree(&repo, &entry, &head, &manifest, req.stage, req.report)?;
        let subject = entry.summary().unwrap_or("").to_owned();
        let msg = message(&subject, &sha, req.stage, req.reason);
        let tree_s = tree.to_string();
        let head_s = head.id().to_string();
        let key = req
            .config
            .signing_key
            .as_ref()
            .map(|k| k.display().to_string());
        let signing = key.as_ref().map(|k| format!("user.signingkey={k}"));
        let mut args: Vec<&str> = Vec::new();
        if let Some(s) = &signing {
            args.extend(["-c", "gpg.format=ssh", "-c", s.as_str()]);
        }
        args.extend(["commit-tree", tree_s.as_str(), "-p", head_s.as_str()]);
        if signing.is_some() {
            args.push("-S");
        }
        args.extend(["-F", "-"]);
        let commit = git(req.repo, &args, Some(&msg))?;
        let new = Oid::from_str(&commit)?;
        let on = match req.mode {
            RollbackMode::Branch => side_ref.clone(),
            RollbackMode::Push => branch_ref.clone(),
        };
        match (&req.config.url, req.mode) {
            (Some(url), _) => {
                let spec = format!("{commit}:{on}");
                if let Err(e) = git(req.repo, &["push", "--quiet", url, &spec], None) {
                    if req.mode == RollbackMode::Push {
                        // The remote moved: fetch and try again on its new head.
                        let fetch = format!("+{branch_ref}:{branch_ref}");
                        git(req.repo, &["fetch", "--quiet", url, &fetch], None)?;
                        tracing::info!("rollback push refused ({e}); retrying on the new head");
                        continue;
                    }
                    return Err(e);
                }
                if req.mode == RollbackMode::Push {
                    // The clone follows the remote: take the pushed commit at once.
                    let _ = repo.reference_matching(
                        &branch_ref,
                        new,
                        true,
                        head.id(),
                        "baton: rollback pushed",
                    );
                }
            }
            (None, RollbackMode::Push) => {
                if repo
                    .reference_matching(&branch_ref, new, true, head.id(), "baton: rollback")
                    .is_err()
                {
                    // The branch moved since it was read: retry on its new head.
                    continue;
                }
            }
            (None, RollbackMode::Branch) => {
                repo.reference(&side_ref, new, false, "baton: rollback branch")?;
            }
        }
        return Ok(Done {
            commit,
            reverted: sha,
            on,
            reused: false,
        });
    }
    Err(RollbackError::Refused(format!(
        "branch {} kept moving; the rollback is retried at the next pass",
        req.branch
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_and_message() {
        let m = message(
            "promote m 2 to production",
            "abc",
            "production",
            "error-rate: 0.5 is above max 0.01\nx",
        );
        assert!(m.starts_with("Revert \"promote m 2 to production\"\n\n"));
        assert_eq!(rollback_of(&m).as_deref(), Some("abc"));
        assert!(m.contains("\nBaton-Reason: error-rate: 0.5 is above max 0.01 x\n"));
        assert_eq!(rollback_of("Baton-Rollback-Of: abc\n\nbody only"), None);
    }

    #[test]
    fn evidence_is_added_to_block_absent_and_flow_maps() {
        let base = "model: m\nversion: \"2\"\nstage: staging\nartifact:\n  uri: a\n  sha256: x\ncreated: 2026-11-01T10:00:00Z\n";
        let t = with_evidence(base, "production", "err \"0.5\"");
        assert!(t.ends_with("evidence:\n  verification-production: {passed: false, report: \"err \\\"0.5\\\"\"}\n"), "{t}");
        let m: crate::manifest::VersionManifest = serde_yaml::from_str(&t).unwrap();
        assert!(!m.evidence["verification-production"].passed);
        let block = base.replace("created:", "evidence:\n    eval: {passed: true}\ncreated:");
        let t = with_evidence(&block, "production", "r");
        let m: crate::manifest::VersionManifest = serde_yaml::from_str(&t).unwrap();
        assert!(
            m.evidence["eval"].passed && !m.evidence["verification-production"].passed,
            "{t}"
        );
        // Again: replaced, not duplicated.
        let t2 = with_evidence(&t, "production", "r2");
        let m: crate::manifest::VersionManifest = serde_yaml::from_str(&t2).unwrap();
        assert_eq!(
            m.evidence["verification-production"].report.as_deref(),
            Some("r2")
        );
        let flow = base.replace("created:", "evidence: {eval: {passed: true}}\ncreated:");
        let m: crate::manifest::VersionManifest =
            serde_yaml::from_str(&with_evidence(&flow, "production", "r")).unwrap();
        assert_eq!(m.evidence.len(), 2);
    }
}
