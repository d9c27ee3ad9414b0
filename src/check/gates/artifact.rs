//! `artifact` (docs/gates.md): a version in a deployed stage after the change whose artifact
//! lives in the registry has that file at head, a regular file with the manifest's sha256 and
//! size; a directory artifact has every listed file so, and `sha256` is the listing's digest.

use super::{located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::version::{listing_digest, ArtifactFile as ManifestFile};
use crate::registry::files::ArtifactFile;
use crate::registry::invariants::{artifact_location, ArtifactLocation};

/// The verdict for `t`, or `None` when the rule does not apply (not in a deployed stage at
/// head, or an artifact outside the registry).
pub fn judge(t: &Transition, f: &Facts) -> Option<Verdict> {
    let new = t.new.as_ref()?;
    let m = new.manifest()?;
    if !f.policy.is_deployed(&m.stage) {
        return None;
    }
    let rel = match artifact_location(&m.artifact.uri) {
        Ok(ArtifactLocation::External) => return None,
        Ok(ArtifactLocation::Registry(rel)) => rel,
        Err(why) => {
            return Some(located(
                verdict(
                    Rule::Artifact,
                    false,
                    format!("artifact.uri `{}`: {why}", m.artifact.uri),
                ),
                &t.path,
                &new.text,
                &["artifact", "uri"],
            ))
        }
    };
    let path = crate::repo::join(f.root, &rel);
    let fail = |reason: String, key: &str| {
        Some(located(
            verdict(Rule::Artifact, false, reason),
            &t.path,
            &new.text,
            &["artifact", key],
        ))
    };
    if let Some(listed) = &m.artifact.files {
        return judge_folder(&path, &m.artifact.sha256, listed, &m.stage, f, fail);
    }
    match f.artifacts.get(&path) {
        None | Some(ArtifactFile::Missing) => fail(
            format!("`{path}` is missing at head; `{}` deploys from it", m.stage),
            "uri",
        ),
        Some(ArtifactFile::NotRegular(what)) => fail(
            format!("`{path}` is {what} at head, not a regular file"),
            "uri",
        ),
        Some(ArtifactFile::Blob { size, sha256, .. }) => {
            if *sha256 != m.artifact.sha256 {
                return fail(
                    format!(
                        "`{path}` has sha256 {sha256} at head, but the manifest says {}",
                        m.artifact.sha256
                    ),
                    "sha256",
                );
            }
            if let Some(want) = m.artifact.size.filter(|w| w != size) {
                return fail(
                    format!("`{path}` is {size} bytes at head, but the manifest says {want}"),
                    "size",
                );
            }
            let short: String = sha256.chars().take(12).collect();
            Some(verdict(
                Rule::Artifact,
                true,
                format!("`{path}` is in the registry with sha256 {short}… and {size} bytes"),
            ))
        }
    }
}

/// The verdict for an in-registry directory artifact at `dir` (repository-relative): every
/// listed file a regular blob at head with its listed sha256 and size, the listing's digest
/// the manifest's `sha256`.
fn judge_folder(
    dir: &str,
    sha256: &str,
    listed: &[ManifestFile],
    stage: &str,
    f: &Facts,
    fail: impl Fn(String, &str) -> Option<Verdict>,
) -> Option<Verdict> {
    let digest = listing_digest(listed);
    if digest != sha256 {
        return fail(
            format!(
                "the listing of artifact.files hashes to {digest}, but the manifest says {sha256}"
            ),
            "files",
        );
    }
    for file in listed {
        let path = format!("{dir}/{}", file.path);
        match f.artifacts.get(&path) {
            None | Some(ArtifactFile::Missing) => {
                return fail(
                    format!("`{path}` is missing at head; `{stage}` deploys from it"),
                    "files",
                )
            }
            Some(ArtifactFile::NotRegular(what)) => {
                return fail(
                    format!("`{path}` is {what} at head, not a regular file"),
                    "files",
                )
            }
            Some(ArtifactFile::Blob { size, sha256, .. }) => {
                if *sha256 != file.sha256 {
                    return fail(
                        format!(
                            "`{path}` has sha256 {sha256} at head, but the listing says {}",
                            file.sha256
                        ),
                        "files",
                    );
                }
                if *size != file.size {
                    return fail(
                        format!(
                            "`{path}` is {size} bytes at head, but the listing says {}",
                            file.size
                        ),
                        "files",
                    );
                }
            }
        }
    }
    let short: String = sha256.chars().take(12).collect();
    let total: u64 = listed.iter().map(|x| x.size).sum();
    Some(verdict(
        Rule::Artifact,
        true,
        format!(
            "`{dir}/` is in the registry: {} files with listing sha256 {short}… and {total} bytes",
            listed.len()
        ),
    ))
}
