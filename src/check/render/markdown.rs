//! Markdown rendering for a pull-request comment: a table of transitions × gates, then the
//! reasons of every failing gate.

use super::{movement, name, summary};
use crate::check::report::{CheckReport, Verdict};
use crate::check::Rule;
use std::fmt::Write;

fn cell(vs: &[&Verdict]) -> &'static str {
    if vs.is_empty() {
        "–"
    } else if vs.iter().all(|v| v.passed) {
        "✅"
    } else {
        "❌"
    }
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A failing verdict's hint as a nested item: its first line a sentence, any further lines
/// literal text (YAML to add) in a fenced block.
fn hint(v: &Verdict) -> String {
    let Some(h) = v.hint.as_deref().filter(|_| !v.passed) else {
        return String::new();
    };
    let mut lines = h.lines();
    let mut s = format!("\n  - to pass: {}", lines.next().unwrap_or_default());
    let rest: Vec<&str> = lines.collect();
    if !rest.is_empty() {
        s.push_str("\n\n    ```yaml\n");
        for l in rest {
            s.push_str(&format!("    {l}\n"));
        }
        s.push_str("    ```");
    }
    s
}

pub fn render(r: &CheckReport) -> String {
    let mut out = String::new();
    let head = if r.passed() {
        "✅ baton check passed"
    } else {
        "❌ baton check failed"
    };
    let _ = writeln!(out, "### {head}\n\n{}\n", summary(r));
    let used: Vec<Rule> = Rule::ALL
        .iter()
        .copied()
        .filter(|rule| {
            r.transitions
                .iter()
                .any(|t| t.verdicts.iter().any(|v| v.rule == *rule))
        })
        .collect();
    if !r.transitions.is_empty() {
        let names: Vec<&str> = used.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(out, "| transition | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(used.len()));
        for t in &r.transitions {
            let cells: Vec<&str> = used
                .iter()
                .map(|rule| {
                    let vs: Vec<&Verdict> = t.verdicts.iter().filter(|v| v.rule == *rule).collect();
                    cell(&vs)
                })
                .collect();
            let _ = writeln!(
                out,
                "| `{}` {}{} | {} |",
                name(t),
                movement(t, "→"),
                if t.rollback { " (rollback)" } else { "" },
                cells.join(" | ")
            );
        }
        out.push('\n');
    }
    let mut failures: Vec<String> = Vec::new();
    for t in &r.transitions {
        for v in t.verdicts.iter().filter(|v| !v.passed) {
            failures.push(format!(
                "- `{}` **{}**: {}{}",
                name(t),
                v.rule,
                esc(&v.reason),
                hint(v)
            ));
        }
    }
    for v in r.change.iter().filter(|v| !v.passed) {
        failures.push(format!(
            "- change **{}**: {}{}",
            v.rule,
            esc(&v.reason),
            hint(v)
        ));
    }
    for (m, vs) in &r.models {
        for v in vs.iter().filter(|v| !v.passed) {
            failures.push(format!(
                "- model `{m}` **{}**: {}{}",
                v.rule,
                esc(&v.reason),
                hint(v)
            ));
        }
    }
    for t in &r.transitions {
        if let Some(at) = t.not_before {
            failures.push(format!(
                "- `{}` is waiting: only time gates fail; it passes from {} without a change",
                name(t),
                at.format("%Y-%m-%dT%H:%M:%SZ")
            ));
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "**Failing gates**\n");
        for f in failures {
            let _ = writeln!(out, "{f}");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "<sub>base `{}` · merge base `{}` · head `{}`</sub>",
        &r.base.get(..10).unwrap_or(&r.base),
        &r.merge_base.get(..10).unwrap_or(&r.merge_base),
        &r.head.get(..10).unwrap_or(&r.head)
    );
    out
}
