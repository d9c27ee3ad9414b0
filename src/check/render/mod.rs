//! Renderings of a [`CheckReport`](super::CheckReport): text for terminals, stable JSON,
//! a Markdown PR comment and GitHub Actions annotations. Library code so the daemon reuses it.

use crate::check::Rule;
pub mod github;
pub mod json;
pub mod markdown;
pub mod text;

use super::report::{CheckReport, TransitionReport};

/// `fraud-detector@4`.
pub fn name(t: &TransitionReport) -> String {
    format!("{}@{}", t.model, t.version)
}

/// `staging -> production`, `(new) -> development`, `archived -> (deleted)`.
pub fn movement(t: &TransitionReport, arrow: &str) -> String {
    let from = t.from.as_deref().unwrap_or("(new)");
    let to = t.to.as_deref().unwrap_or(
        if t.from.is_some() && t.verdicts.iter().any(|v| v.rule == Rule::Delete) {
            "(deleted)"
        } else {
            "(unparsable)"
        },
    );
    format!("{from} {arrow} {to}")
}

/// One summary sentence: `2 transitions, 1 failed: fraud-detector@4 (approvals, window)`.
pub fn summary(r: &CheckReport) -> String {
    let n = r.transitions.len();
    let failed: Vec<String> = r
        .transitions
        .iter()
        .filter(|t| !t.passed())
        .map(|t| {
            let mut rules: Vec<&str> = t
                .verdicts
                .iter()
                .filter(|v| !v.passed)
                .map(|v| v.rule.as_str())
                .collect();
            rules.dedup();
            format!("{} ({})", name(t), rules.join(", "))
        })
        .collect();
    let mut other: Vec<String> = r
        .change
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.rule.to_string())
        .collect();
    for (m, vs) in &r.models {
        for v in vs.iter().filter(|v| !v.passed) {
            other.push(format!("{m}: {}", v.rule));
        }
    }
    let plural = if n == 1 { "" } else { "s" };
    if r.passed() {
        return format!("{n} transition{plural}, all gates pass");
    }
    let mut s = format!("{n} transition{plural}, {} failed", failed.len());
    if !failed.is_empty() {
        s.push_str(&format!(": {}", failed.join(", ")));
    }
    if !other.is_empty() {
        s.push_str(&format!("; change-wide: {}", other.join(", ")));
    }
    s
}
