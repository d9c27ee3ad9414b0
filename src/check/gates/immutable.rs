//! `immutable` (docs/registry-format.md): model, version, artifact, lineage, requires and created never
//! change once on the branch; metrics and evidence may only gain keys. Only stage and traffic move.
//! A rollback (`git revert` of a promotion) may also drop metrics/evidence keys the reverted change added.

use super::{located, verdict};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::VersionManifest;
use std::collections::BTreeSet;

/// A new manifest may not reuse a label that ever existed on the branch: a label always
/// means one build (docs/registry-format.md, immutability).
pub fn judge_new_label(t: &Transition, labels_ever: &BTreeSet<String>) -> Verdict {
    if !labels_ever.contains(&t.version) {
        return verdict(
            Rule::Immutable,
            true,
            "a label never used before on the branch",
        );
    }
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    located(
        verdict(Rule::Immutable,
            false,
            format!(
                "label `{}` of {} was used before on the branch; a label always names one build, so register the new build under a new label",
                t.version, t.model
            ),
        ),
        &t.path,
        &text,
        &["version"],
    )
}

/// The immutable fields that differ between `old` and `new` (key paths for locating).
pub fn changed_fields(old: &VersionManifest, new: &VersionManifest) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut push = |name: &str, key: &[&str]| {
        out.push((name.to_owned(), key.iter().map(|k| k.to_string()).collect()))
    };
    if old.model != new.model {
        push("model", &["model"]);
    }
    if old.version != new.version {
        push("version", &["version"]);
    }
    if old.artifact.uri != new.artifact.uri {
        push("artifact.uri", &["artifact", "uri"]);
    }
    if old.artifact.sha256 != new.artifact.sha256 {
        push("artifact.sha256", &["artifact", "sha256"]);
    }
    if old.artifact.size != new.artifact.size {
        push("artifact.size", &["artifact", "size"]);
    }
    if old.artifact.format != new.artifact.format {
        push("artifact.format", &["artifact", "format"]);
    }
    if old.artifact.files != new.artifact.files {
        push("artifact.files", &["artifact", "files"]);
    }
    if old.lineage != new.lineage {
        push("lineage", &["lineage"]);
    }
    if old.requires != new.requires {
        push("requires", &["requires"]);
    }
    if old.created != new.created {
        push("created", &["created"]);
    }
    for (k, v) in &old.metrics {
        match new.metrics.get(k) {
            Some(n) if n == v => {}
            Some(_) => push(&format!("metrics.{k}"), &["metrics", k]),
            None => push(&format!("metrics.{k} (removed)"), &["metrics"]),
        }
    }
    for (k, v) in &old.evidence {
        match new.evidence.get(k) {
            Some(n) if n == v => {}
            Some(_) => push(&format!("evidence.{k}"), &["evidence", k]),
            None => push(&format!("evidence.{k} (removed)"), &["evidence"]),
        }
    }
    out
}

/// Judge immutability. In a rollback, removed metrics/evidence keys are allowed: reverting a
/// promotion that also added evidence restores the manifest as it was, which is not a mutation.
/// Changed values and every other field stay immutable.
pub fn judge(t: &Transition, rollback: bool) -> Verdict {
    let (Some(old), Some(new)) = (
        t.old.as_ref().and_then(|o| o.manifest()),
        t.new.as_ref().and_then(|n| n.manifest()),
    ) else {
        return verdict(Rule::Immutable, true, "nothing to compare");
    };
    let mut changed = changed_fields(old, new);
    let before = changed.len();
    if rollback {
        changed.retain(|(name, _)| !name.ends_with(" (removed)"));
    }
    if changed.is_empty() && before > changed.len() {
        return verdict(
            Rule::Immutable,
            true,
            "rollback: only stage, traffic and metrics/evidence keys the reverted change added",
        );
    }
    if changed.is_empty() {
        return verdict(
            Rule::Immutable,
            true,
            "only stage, traffic and new metrics/evidence keys changed",
        );
    }
    let names: Vec<&str> = changed.iter().map(|(n, _)| n.as_str()).collect();
    let key: Vec<&str> = changed[0].1.iter().map(String::as_str).collect();
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    located(
        verdict(
            Rule::Immutable,
            false,
            format!(
                "immutable field{} changed: {} (register a new version instead)",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ),
        ),
        &t.path,
        &text,
        &key,
    )
}
