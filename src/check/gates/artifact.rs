//! `artifact` (docs/gates.md): a version in a deployed stage after the change whose artifact
//! lives in the registry has that file at head, a regular file with the manifest's sha256 and size.

use super::{located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
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
                &t.file,
                &new.text,
                &["artifact", "uri"],
            ))
        }
    };
    let path = crate::repo::join(f.root, &rel);
    let fail = |reason: String, key: &str| {
        Some(located(
            verdict(Rule::Artifact, false, reason),
            &t.file,
            &new.text,
            &["artifact", key],
        ))
    };
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
